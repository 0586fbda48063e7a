"""Output locations that cannot take outputs (a file, a read-only or full file system, a write
failing with ENOSPC), signals during a video, non-finite training values, long names and the
user's own hidden files: one line naming the path, the documented exit status, nothing lost.

Read-only and full file systems are real tmpfs mounts where the test may mount one (root on
Linux) and are skipped otherwise; ENOSPC in the middle of a run is injected into the writer.
"""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lib.optim import PolyLr
from run import Inference, Test, Train
from tests.script_args import test_argv, train_argv
from utils.engine.state import load_training_state
from utils.io import atomic

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs" / "InSPyReNet_Tiny.yaml")
HANG_GUARD_S = 3600  # only against a hung process; never a speed requirement


def _mount_tmpfs(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    return done.returncode == 0


@pytest.fixture
def mounted(tmp_path):
    """``mounted(options)``: a fresh tmpfs mounted with ``options`` (skips where not allowed)."""
    folders = []

    def mount(options: str) -> Path:
        folder = tmp_path / f"mnt{len(folders)}"
        if not _mount_tmpfs(folder, options):
            pytest.skip("cannot mount a tmpfs here (needs root on Linux)")
        folders.append(folder)
        return folder

    yield mount
    for folder in folders:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _one_line(run, path: Path, phrase: str) -> str:
    lines = [line for line in run.lines if str(path) in line and line.startswith("error: ")]
    assert len(lines) == 1 and phrase in lines[0], run.lines
    return lines[0]


# -- output folders checked before the work ------------------------------------------------------
def test_test_script_output_folder_that_is_a_file(corpus, checkpoint, tmp_path, run_script):
    blocker = tmp_path / "pred"
    blocker.write_text("not a folder")
    run = run_script(Test.main, test_argv(corpus.clean, checkpoint, blocker))
    assert run.status == 2
    _one_line(run, blocker, "is a file, not a folder")
    assert blocker.read_text() == "not a folder"


def test_test_script_read_only_output_folder(corpus, checkpoint, mounted, run_script):
    pred = mounted("ro,size=1m") / "pred"
    run = run_script(Test.main, test_argv(corpus.clean, checkpoint, pred))
    assert run.status == 2
    _one_line(run, pred, "read-only")


def test_test_script_full_disk(corpus, checkpoint, mounted, run_script):
    pred = mounted("size=64k") / "pred"
    run = run_script(Test.main, test_argv(corpus.clean, checkpoint, pred))
    assert run.status == 2
    _one_line(run, pred, "MiB free")


def test_train_checkpoint_folder_that_is_a_file_or_read_only(corpus, mounted, tmp_path, run_script):
    blocker = tmp_path / "ckpt"
    blocker.write_text("mine")
    run = run_script(Train.main, train_argv(corpus.clean, blocker, epochs=1))
    assert run.status == 1 and blocker.read_text() == "mine"
    _one_line(run, blocker, "is a file, not a folder")
    read_only = mounted("ro,size=1m") / "ckpt"
    run = run_script(Train.main, train_argv(corpus.clean, read_only, epochs=1))
    assert run.status == 1
    _one_line(run, read_only, "read-only")


def test_inference_output_folder_that_is_a_file(checkpoint, corpus, tmp_path, run_script):
    blocker = tmp_path / "out"
    blocker.write_text("mine")
    images = corpus.clean / "Test_Dataset" / "Synth-TE" / "images"
    argv = ["--config", CONFIG, "--ckpt", str(checkpoint), "--source", str(images)]
    run = run_script(Inference.main, [*argv, "--dest", str(blocker), "--no-progress"])
    assert run.status == 2
    _one_line(run, blocker, "is a file, not a folder")


# -- writes failing half-way ---------------------------------------------------------------------
def _enospc_after(monkeypatch, calls: int) -> None:
    """os.replace (the atomic writer's rename) raises ENOSPC from its ``calls``-th call on."""
    replace, seen = os.replace, []

    def full(src, dst):
        seen.append(dst)
        if len(seen) >= calls:
            raise OSError(errno.ENOSPC, "No space left on device")
        return replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", full)


def test_test_script_disk_full_half_way(corpus, checkpoint, tmp_path, run_script, monkeypatch):
    pred = tmp_path / "pred"
    _enospc_after(monkeypatch, 3)
    run = run_script(Test.main, test_argv(corpus.clean, checkpoint, pred))
    monkeypatch.undo()
    assert run.status == 1
    line = _one_line(run, pred, "the disk is full")
    assert "free some disk space or choose another folder" in line
    maps = sorted((pred / "Synth-TE").iterdir())
    assert len(maps) == 2 and all(path.suffix == ".png" for path in maps)  # kept, no leftovers


def test_train_disk_full_at_a_checkpoint_keeps_the_last(corpus, tmp_path, run_script, monkeypatch):
    """Epoch 1's pair is written (renames 1, 2); epoch 2's state.pth finds the disk full."""
    ckpt = tmp_path / "ckpt"
    replace, renames = os.replace, []

    def full(src, dst):
        if str(dst).endswith(".pth"):
            renames.append(dst)
            if len(renames) >= 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", full)
    run = run_script(Train.main, train_argv(corpus.clean, ckpt, epochs=2))
    monkeypatch.undo()
    assert run.status == 1
    line = _one_line(run, ckpt / "state.pth", "the disk is full")
    assert "the last complete checkpoint" in line and "--resume" in line
    assert load_training_state(ckpt)["epoch"] == 1
    assert not [path for path in ckpt.iterdir() if ".sodtmp." in path.name]


# -- non-finite values in training ---------------------------------------------------------------
def test_non_finite_learning_rate_stops_cleanly(corpus, tmp_path, run_script, monkeypatch):
    monkeypatch.setattr(PolyLr, "get_last_lr", lambda self: [float("inf"), float("inf")])
    run = run_script(Train.main, train_argv(corpus.clean, tmp_path / "ckpt", epochs=1))
    assert run.status == 1
    errors = [line for line in run.lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: learning rate is inf at epoch 1")


def test_non_finite_gradient_stops_before_the_step(corpus, tmp_path, run_script, monkeypatch):
    original = torch.Tensor.backward

    def poisoned(self, *args, **kwargs):
        original(self * float("inf"), *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", poisoned)
    run = run_script(Train.main, train_argv(corpus.clean, tmp_path / "ckpt", epochs=1))
    monkeypatch.undo()
    assert run.status == 1
    errors = [line for line in run.lines if line.startswith("error: ")]
    assert (
        len(errors) == 1 and "gradient norm is" in errors[0] and "at epoch 1, step 1" in errors[0]
    )


# -- the user's own hidden files -----------------------------------------------------------------
def test_users_hidden_files_survive_training(corpus, tmp_path, run_script):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    mine = [ckpt / name for name in (".latest.pth.abcd1234.tmp", ".state.pth.sodtmp.tmp", ".x")]
    an_hour_ago = time.time() - 3600
    for path in mine:
        path.write_text("mine")
        os.utime(path, (an_hour_ago, an_hour_ago))
    assert run_script(Train.main, train_argv(corpus.clean, ckpt, epochs=1)).status == 0
    assert all(path.read_text() == "mine" for path in mine)


# -- videos: signals, concurrent runs, long names ------------------------------------------------
def _video(path: Path, frames: int, size=(96, 64)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def _inference(source: Path, dest: Path, checkpoint: Path, *extra: str) -> list[str]:
    argv = ["--config", CONFIG, "--ckpt", str(checkpoint), "--source", str(source)]
    argv += ["--dest", str(dest), "--type", "green", "--no-progress", "--device", "cpu", *extra]
    return [sys.executable, str(ROOT / "run" / "Inference.py"), *argv]


@pytest.mark.slow
def test_sigterm_during_a_video_leaves_nothing(checkpoint, tmp_path):
    clip = _video(tmp_path / "clip.mp4", 400)
    dest = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(
        _inference(clip, dest, checkpoint), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + HANG_GUARD_S
    while not (dest.is_dir() and any(".sodtmp." in p.name for p in dest.iterdir())):
        assert job.poll() is None and time.monotonic() < deadline, job.stderr.read().decode()
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=HANG_GUARD_S)
    assert job.returncode == 128 + signal.SIGTERM, err.decode()
    assert list(dest.iterdir()) == []
    assert [line for line in err.decode().splitlines() if line.startswith("error: ")] == [
        "error: interrupted: run the same command again to resume"
    ]


@pytest.mark.slow
def test_two_runs_on_one_video_do_not_clash(checkpoint, tmp_path):
    clip = _video(tmp_path / "clip.mp4", 12)
    dest = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = _inference(clip, dest, checkpoint, "--overwrite")
    jobs = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE) for _ in range(2)]
    for job in jobs:
        _, err = job.communicate(timeout=HANG_GUARD_S)
        assert job.returncode == 0, err.decode()
    capture = cv2.VideoCapture(str(dest / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    capture.release()
    assert sorted(path.name for path in dest.iterdir()) == ["clip.mp4"]


def test_names_too_long_for_the_file_system_are_shortened(checkpoint, tmp_path, run_script):
    folder = tmp_path / "photos"
    folder.mkdir()
    stem = "x" * 250
    picture = np.full((48, 64, 3), 120, np.uint8)
    for suffix in (".jpg", ".webp"):  # same stem: the second output is named after the file
        cv2.imwrite(str(folder / f"{stem}{suffix}"), picture)
    dest = tmp_path / "out"
    argv = ["--config", CONFIG, "--ckpt", str(checkpoint), "--source", str(folder)]
    run = run_script(Inference.main, [*argv, "--dest", str(dest), "--no-progress"])
    assert run.status == 0, run.lines
    names = sorted(path.name for path in dest.iterdir())
    assert len(names) == 2 and all(len(name.encode()) <= 255 for name in names)
    warned = [line for line in run.lines if "writing" in line and line.startswith("warning: ")]
    assert len(warned) == 1 and any(name in warned[0] for name in names)


def test_torch_failing_on_a_full_disk_is_one_line(corpus, tmp_path, run_script, monkeypatch):
    """torch's zip writer reports a full disk as 'unexpected pos ...': one line naming the file
    and the free space instead."""
    from utils.io import checkpoint

    def full(obj, path):
        Path(path).write_bytes(b"PK half")
        raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    ckpt = tmp_path / "ckpt"
    run = run_script(Train.main, train_argv(corpus.clean, ckpt, epochs=1))
    monkeypatch.undo()
    assert run.status == 1
    line = _one_line(run, ckpt / "state.pth", "torch could not write it (")
    assert "MiB free there" in line and "unexpected pos" in line
    assert not [path for path in ckpt.iterdir() if ".sodtmp." in path.name]


def test_a_name_of_255_bytes_can_be_written(tmp_path):
    """The temporary name of a long name uses a hash of it, so the longest legal name works."""
    from utils.io.images import write_png_atomic

    target = tmp_path / ("m" * 251 + ".png")
    write_png_atomic(target, np.zeros((4, 4), np.uint8))
    assert target.is_file() and sorted(tmp_path.iterdir()) == [target]
