"""The shape of the code base: light argument parsing, the editable install, one definition of
each shared helper, and nothing outside the repository read."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = [
    "run/Train.py",
    "run/Test.py",
    "run/Eval.py",
    "run/Inference.py",
    "run/Export.py",
    "Expr.py",
]
# Heavy modules that --help and argument errors must not wait for.
HEAVY = ["torch", "cv2", "timm", "numpy", "PIL"]
SOURCE_FOLDERS = ["lib", "utils", "data", "run", "bench"]


def _loaded_after(script: str, argv: list[str]) -> tuple[int, set[str], str]:
    """Run ``script``'s main(argv) in a fresh interpreter; (exit status, heavy modules loaded,
    output)."""
    code = f"""
import json, runpy, sys
sys.argv = [{script!r}, *{argv!r}]
try:
    runpy.run_path({str(ROOT / script)!r}, run_name="__main__")
except SystemExit as stop:
    status = stop.code
print(json.dumps([status, sorted(m for m in {HEAVY!r} if m in sys.modules)]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    status, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    return status, set(heavy), done.stdout + done.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_and_argument_errors_import_nothing_heavy(script):
    status, heavy, output = _loaded_after(script, ["--help"])
    assert status == 0 and "usage:" in output and not heavy, output
    status, heavy, output = _loaded_after(script, ["--no-such-flag"])
    assert status == 2 and "error:" in output and not heavy, output


def test_the_packages_import_from_anywhere(tmp_path):
    """The editable install (utils/make_env.sh): no sys.path tricks, any working folder."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import utils.inference.predictor, utils.engine, run.Train, data, lib, Expr; print('ok')"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.stdout.strip() == "ok", done.stderr


def _definitions() -> dict[str, list[str]]:
    """Top-level function and class names -> the modules defining them (source folders)."""
    found: dict[str, list[str]] = {}
    for folder in SOURCE_FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    found.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize(
    "helper",
    [
        "write_bytes_atomic",
        "atomic_output",
        "remove_stale_temporaries",
        "natural_key",
        "unwrap_model",
        "select_device",
        "disable_tf32",
        "tune_malloc",
        "setup_logging",
        "run_cli",
        "add_device_argument",
        "add_speed_arguments",
        "save_checkpoint",
        "read_state_dict",
    ],
)
def test_each_shared_helper_is_defined_once(helper):
    assert len(_definitions().get(helper, [])) == 1, _definitions().get(helper)


def test_nothing_reads_outside_the_repository():
    """No code or test names the shared folder beside the checkout (a fresh clone has none)."""
    needle = "../" + "shared"  # spelt so that this file does not name it
    offenders = []
    for folder in [*SOURCE_FOLDERS, "tests", "configs"]:
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".yaml", ".sh") and needle in path.read_text("utf-8"):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
