"""Untrusted files are refused without running anything they hold: a config whose YAML tags
would call Python (every config is read with yaml.safe_load, utils/config.py) and a checkpoint
whose pickle would (torch.load(..., weights_only=True), utils/io/checkpoint.py).

Each payload, if it ran, would create a marker file: the tests check that it does not, and that
the same payload does create it when loaded unsafely (so the check could fail)."""

from pathlib import Path

import pytest
import torch
import yaml

from run import Test, Train

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "InSPyReNet_Tiny.yaml"


def yaml_that_runs_code(marker: Path) -> str:
    """A config whose model name yaml.unsafe_load would compute by open(marker, 'w')."""
    return f"Model:\n  name: !!python/object/apply:builtins.open [{str(marker)!r}, 'w']\n"


@pytest.mark.parametrize("main", [Train.main, Test.main], ids=["Train", "Test"])
def test_yaml_that_would_run_code_is_refused(main, tmp_path, run_script):
    marker = tmp_path / "ran"
    config = tmp_path / "evil.yaml"
    config.write_text(yaml_that_runs_code(marker), encoding="utf-8")
    run = run_script(main, ["--config", str(config), "--device", "cpu", "--no-progress"])
    assert run.status == 2  # a config error (the scripts' docstrings)
    assert run.lines == [
        f"error: {config}: invalid YAML at line 2, column 9: could not determine a constructor "
        "for the tag 'tag:yaml.org,2002:python/object/apply:builtins.open'"
    ]
    assert not marker.exists(), "the config's code ran"
    yaml.unsafe_load(config.read_text(encoding="utf-8"))  # what an unsafe loader would do
    assert marker.exists()


class _RunsCode:
    """Unpickling this calls open(marker, 'w')."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_that_would_run_code_is_refused(corpus, tmp_path, run_script):
    marker, checkpoint = tmp_path / "ran", tmp_path / "evil.pth"
    torch.save({"weight": _RunsCode(marker)}, checkpoint)
    argv = ["--config", str(CONFIG), "--ckpt", str(checkpoint), "--device", "cpu"]
    run = run_script(Test.main, [*argv, "--opts", f"Test.Dataset.root={corpus.clean}"])
    assert run.status == 2  # a checkpoint error (run/Test.py's docstring)
    errors = [line for line in run.lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {checkpoint}: refused: ")
    assert not marker.exists(), "the checkpoint's code ran"
    with open(checkpoint, "rb") as handle:  # torch.save's zip holds a plain pickle
        torch.load(handle, weights_only=False)
    assert marker.exists()
