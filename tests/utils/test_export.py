"""Runs tests/utils/export_cases.py (run/Export.py and the exported engines end to end) in a
pytest process of its own: ONNX Runtime and OpenVINO stay out of the suite's process, where,
loaded next to everything else the suite loads, they crashed a full run with SIGSEGV."""

from pathlib import Path

import pytest

from tests.subprocesses import run_cases_in_own_process

CASES = Path(__file__).with_name("export_cases.py")


@pytest.mark.slow
def test_export_cases_in_their_own_process():
    """Every case of export_cases.py passes (its output is shown when one does not)."""
    run_cases_in_own_process(CASES)
