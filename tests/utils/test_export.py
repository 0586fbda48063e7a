"""Runs tests/utils/export_cases.py (run/Export.py and the exported engines end to end) in a
pytest process of its own: ONNX Runtime and OpenVINO stay out of the suite's process, where,
loaded next to everything else the suite loads, they crashed a full run with SIGSEGV."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).with_name("export_cases.py")


@pytest.mark.slow
def test_export_cases_in_their_own_process():
    """Every case of export_cases.py passes (its output is shown when one does not)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CASES)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout[-3000:]
