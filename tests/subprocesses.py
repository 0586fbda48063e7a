"""Test helpers that run code in a fresh interpreter (``from tests.subprocesses import ...``):
a pytest module in a process of its own, and a script call that must not import torch."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cases_in_own_process(cases: Path) -> None:
    """Run the pytest module ``cases`` in a process of its own; every case must pass (its
    output is shown when one does not). For modules that load ONNX Runtime or OpenVINO, kept
    out of the suite's process, where next to everything else it loads they crashed a full
    run with SIGSEGV."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(cases)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout, done.stdout[-3000:]


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` (which sets ``code`` to a script's exit status) in a fresh interpreter; it
    must exit 0 without having imported torch."""
    code = "import sys\n" + code + "print('TORCH', 'torch' in sys.modules)\nsys.exit(code)\n"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "TORCH False" in result.stdout, result.stdout
    return result
