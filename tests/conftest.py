"""Shared test setup: the repository root on sys.path and the location of ../shared."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder (fixtures, peer data, docs) beside the checkout."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: CI must have ../shared beside the checkout")
    return SHARED
