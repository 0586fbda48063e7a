"""Fixtures for the model-library tests: tiny fixture models built from their configs."""

from pathlib import Path

import pytest
import torch
import yaml

from lib import build_model
from utils.io.checkpoint import load_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def tiny_model_cfg(name: str) -> dict:
    """The Model section of tests/configs/<name>.yaml."""
    return yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())["Model"]


@pytest.fixture(scope="module", params=["tiny_swin", "tiny_res2net"])
def fixture_model(request, fixtures_dir):
    """(name, model with the golden weights loaded) for each tiny fixture model."""
    torch.manual_seed(0)
    model = build_model(tiny_model_cfg(request.param))
    load_checkpoint(model, fixtures_dir / "golden" / f"{request.param}_weights.pth")
    return request.param, model
