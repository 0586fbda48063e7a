"""Test helpers that run code in a fresh interpreter (``from tests.subprocesses import ...``):
a pytest module in a process of its own, a script call that must not import torch, a training
run killed at a given point."""

import signal
import subprocess
import sys
import time
from collections.abc import Callable
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


def train_and_kill_when(argv: list[str], ready: Callable[[], bool], stage: str) -> None:
    """Run ``run/Train.py argv`` and SIGKILL it as soon as ``ready()`` holds (polled; at most
    240 s, else the test fails naming ``stage``, the point training did not reach)."""
    command = [sys.executable, str(ROOT / "run" / "Train.py"), *argv]
    job = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while job.poll() is None and not ready():
        assert time.monotonic() < deadline, f"training did not reach {stage}"
        time.sleep(0.05)
    job.kill()
    job.wait()
    assert job.returncode == -signal.SIGKILL, job.stderr.read().decode()
    job.stderr.close()
