"""run/Train.py on the tiny config and a tiny synthetic data set (CPU, seconds per run).

The data set has 8 training pairs and the batch size is 4, so an epoch is 2 steps. Runs are
in-process (``main(argv)``) where a test needs to act at an exact step, through a wrapper of
the loss function; the SIGKILL test runs a subprocess, as a user's killed job would be.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import utils.engine.loop
from run import Train
from tests.script_args import train_argv, training_files
from tests.subprocesses import train_and_kill_when
from utils.config import load_config
from utils.engine.records import read_log
from utils.engine.state import load_training_state

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(small_synthetic) -> Path:
    """The shared small synthetic data set (tests/conftest.py)."""
    return small_synthetic


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt / "latest.pth", map_location="cpu", weights_only=True)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), rtol=0, atol=1e-6), key


# About 30 s on 2 CPU cores: every test that uses it is marked slow.
@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """An uninterrupted 3-epoch run (seed 0): the weights every resumed run must reach."""
    ckpt = tmp_path_factory.mktemp("reference")
    assert Train.main(train_argv(data, ckpt, "Train.Checkpoint.checkpoint_epoch=2")) == 0
    return ckpt


def on_loss_call(monkeypatch, call: int, action) -> None:
    """Run ``action()`` right after the ``call``-th loss computation (1-based)."""
    original = utils.engine.loop.pyramid_loss
    calls = []

    def wrapped(*args, **kwargs):
        loss = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == call:
            return action(loss)
        return loss

    monkeypatch.setattr(utils.engine.loop, "pyramid_loss", wrapped)


@pytest.mark.slow
def test_outputs_of_a_run(reference):
    """Checkpoint files, the effective config with its seed, and one log row per step."""
    files = sorted(path.name for path in reference.iterdir())
    assert files == training_files("config.yaml", "latest.pth", "state.pth", "train_log.csv")
    config = load_config(reference / "config.yaml")
    assert config["Train"]["seed"] == 0
    rows = read_log(reference / "train_log.csv")
    assert [int(row["iteration"]) for row in rows] == list(range(1, 7))
    # PolyLr with T = 2 steps x 3 epochs, W = 10 (tiny config): the first step uses 0.1 * lr
    # (architecture §15.2), the head 10x the backbone.
    lr = config["Train"]["Optimizer"]["lr"]
    assert float(rows[0]["lr_backbone"]) == pytest.approx(0.1 * lr, rel=1e-3)
    assert float(rows[0]["lr_head"]) == pytest.approx(lr, rel=1e-3)
    state = load_training_state(reference)
    assert (state["epoch"], state["step"], state["iteration"]) == (3, 0, 6)
    assert state["scheduler"]["max_iteration"] == 6


def send(signum: int):
    """A loss-call action that signals this process and passes the loss on."""

    def action(loss):
        os.kill(os.getpid(), signum)
        return loss

    return action


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_gives_the_same_weights(
    data, reference, tmp_path, capsys, monkeypatch
):
    ckpt = tmp_path / "ckpt"
    # The 3rd loss is epoch 2, step 1: the signal arrives during that step.
    on_loss_call(monkeypatch, 3, send(signal.SIGTERM))
    status = Train.main(train_argv(data, ckpt))
    monkeypatch.undo()
    assert status == 128 + signal.SIGTERM
    out = capsys.readouterr().out
    assert "interrupted by SIGTERM at epoch 2, step 1" in out
    assert "--resume" in out.split("Resume with:")[1]
    state = load_training_state(ckpt)
    assert (state["epoch"], state["step"]) == (1, 1)

    assert Train.main(train_argv(data, ckpt) + ["--resume"]) == 0
    # The resume message names the point exactly as the interruption did.
    assert f"resuming {ckpt} from epoch 2, step 1" in capsys.readouterr().out
    assert_same_weights(weights(ckpt), weights(reference))
    assert read_log(ckpt / "train_log.csv") == read_log(reference / "train_log.csv")


@pytest.mark.slow
def test_resume_at_an_epoch_boundary(data, reference, tmp_path, monkeypatch):
    """Stopped right after epoch 1 (SIGINT, as Ctrl-C): the same final weights after --resume."""
    ckpt = tmp_path / "ckpt"
    on_loss_call(monkeypatch, 2, send(signal.SIGINT))
    status = Train.main(train_argv(data, ckpt))
    monkeypatch.undo()
    assert status == 128 + signal.SIGINT
    assert load_training_state(ckpt)["epoch"] == 1
    assert Train.main(train_argv(data, ckpt) + ["--resume"]) == 0
    assert_same_weights(weights(ckpt), weights(reference))


@pytest.mark.slow
def test_sigkill_then_resume_from_the_last_checkpoint(data, reference, tmp_path):
    ckpt = tmp_path / "ckpt"
    log = ckpt / "train_log.csv"
    # Kill once step 1 of epoch 2 is logged: the process is inside epoch 2.
    in_epoch_2 = lambda: log.is_file() and len(read_log(log)) >= 3  # noqa: E731
    train_and_kill_when(train_argv(data, ckpt), in_epoch_2, "epoch 2")
    epoch = load_training_state(ckpt)["epoch"]
    assert 1 <= epoch < 3
    assert Train.main(train_argv(data, ckpt) + ["--resume"]) == 0
    assert_same_weights(weights(ckpt), weights(reference))
    assert [int(r["iteration"]) for r in read_log(log)] == list(range(1, 7))


# Train.py with os.replace killing the process on its N-th checkpoint rename (argv[1]): the
# temporary file is complete but not renamed, as when a kill lands inside a checkpoint write.
KILL_ON_RENAME = """
import os, signal, sys
replace, renames = os.replace, []

def replace_or_die(src, dst):
    if str(dst).endswith(".pth"):
        renames.append(dst)
        if len(renames) == int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)
    return replace(src, dst)

os.replace = replace_or_die
from run import Train
sys.exit(Train.main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_then_resume(data, reference, tmp_path):
    """Killed while writing epoch 2's state.pth (rename 3: epoch 1 wrote state.pth and
    latest.pth): --resume starts from epoch 1's complete pair, ends with exactly the weights of
    an uninterrupted run and deletes the temporary file the kill left."""
    ckpt = tmp_path / "ckpt"
    command = [sys.executable, "-c", KILL_ON_RENAME, "3", *train_argv(data, ckpt)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    leftovers = list(ckpt.glob(".state.pth.*.tmp"))
    assert len(leftovers) == 1 and sorted(p.name for p in ckpt.glob("*.pth")) == [
        "latest.pth",
        "state.pth",
    ]
    assert load_training_state(ckpt)["epoch"] == 1
    an_hour_ago = time.time() - 3600  # older than utils.io.images.STALE_AFTER_S
    os.utime(leftovers[0], (an_hour_ago, an_hour_ago))

    assert Train.main(train_argv(data, ckpt) + ["--resume"]) == 0
    resumed, uninterrupted = weights(ckpt), weights(reference)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[key], uninterrupted[key]) for key in resumed)
    assert not list(ckpt.glob(".*.tmp"))


def test_nan_loss_stops_and_keeps_the_last_checkpoint(data, tmp_path, capsys, monkeypatch):
    ckpt = tmp_path / "ckpt"
    on_loss_call(monkeypatch, 3, lambda loss: loss * float("nan"))
    assert Train.main(train_argv(data, ckpt, epochs=2)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: loss is nan at epoch 2, step 1/2 (iteration 3)")
    assert f"the last good checkpoint {ckpt / 'latest.pth'} is kept" in err
    state = load_training_state(ckpt)
    assert (state["epoch"], state["step"]) == (1, 0)
    assert_same_weights(weights(ckpt), state["model"])
    assert all(torch.isfinite(value).all() for value in weights(ckpt).values())


def test_debug_tiles_and_mixed_precision(data, tmp_path):
    """--debug writes one tile per epoch; bf16 autocast trains on CPU with finite losses."""
    ckpt = tmp_path / "ckpt"
    opts = ["Train.Optimizer.mixed_precision=true"]
    assert Train.main(train_argv(data, ckpt, *opts, epochs=1) + ["--debug"]) == 0
    assert (ckpt / "debug" / "epoch_1.png").is_file()
    losses = [float(row["loss"]) for row in read_log(ckpt / "train_log.csv")]
    assert len(losses) == 2 and all(0 < loss < 100 for loss in losses)


@pytest.mark.slow
def test_resume_refuses_another_schedule(data, reference, capsys):
    status = Train.main(train_argv(data, reference, epochs=5) + ["--resume"])
    assert status == 1
    assert "Train.Scheduler.epoch was 3, now 5" in capsys.readouterr().err


def test_resume_without_state(data, tmp_path, capsys):
    assert Train.main(train_argv(data, tmp_path / "none") + ["--resume"]) == 1
    assert "no training state to resume from" in capsys.readouterr().err


def test_image_without_mask_is_a_clear_error(data, tmp_path, capsys):
    broken = tmp_path / "data"
    shutil.copytree(data, broken)
    (broken / "Train_Dataset" / "Synth-TR" / "masks" / "synth_0005.png").unlink()
    assert Train.main(train_argv(broken, tmp_path / "ckpt")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "have no mask" in err and "synth_0005.jpg" in err


def test_missing_backbone_weights_is_one_line(data, tmp_path, capsys):
    # build_model's message for Model.pretrained without the ImageNet file (lib/registry.py)
    # goes through as one line: no traceback.
    opts = ["Model.pretrained=true"]
    assert Train.main(train_argv(data, tmp_path / "ckpt", *opts)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1


def test_unreadable_training_file_is_skipped_and_counted(data, tmp_path, capsys):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    image = copy / "Train_Dataset" / "Synth-TR" / "images" / "synth_0002.jpg"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])  # header intact
    assert Train.main(train_argv(copy, tmp_path / "ckpt", epochs=1)) == 0
    out = capsys.readouterr().out
    assert "epoch 1: 1 sample(s) replaced because their files could not be read: " in out
    assert f"{image}: cannot decode image" in out
    assert "1 unreadable sample(s) skipped" in out
