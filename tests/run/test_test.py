"""run/Test.py: maps at the original size, resuming after a kill, bad inputs (tiny config, CPU).

The checkpoint is the golden-fixture tiny Res2Net of tests/fixtures/golden (random but
well-conditioned weights, the same shapes as configs/InSPyReNet_Tiny.yaml): what is checked here
(which files are written, their sizes, resuming, error reporting) does not depend on training.
"""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data.synthetic import make_synthetic_dataset
from run import Test
from tests.script_args import test_argv
from utils.io.images import read_image_size, read_mask

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, fixtures_dir) -> tuple[Path, Path]:
    """(synthetic data folder with 12 test pairs, the tiny model's checkpoint)."""
    root = tmp_path_factory.mktemp("test_script")
    make_synthetic_dataset(root / "data", n_train=1, n_test=12, size=64, seed=5)
    return root / "data", fixtures_dir / "golden" / "tiny_res2net_weights.pth"


def images(data: Path) -> list[Path]:
    return sorted((data / "Test_Dataset" / "Synth-TE" / "images").iterdir())


def test_maps_at_the_original_size(setup, tmp_path, capsys):
    data, ckpt = setup
    pred = tmp_path / "pred"
    assert Test.main(test_argv(data, ckpt, pred)) == 0
    assert "[Synth-TE] 12 images: 12 written, 0 already there" in capsys.readouterr().out
    for image in images(data):
        written = read_mask(pred / "Synth-TE" / f"{image.stem}.png")
        assert written.shape == read_image_size(image)  # spec §16.3: the original (H, W)
        assert np.ptp(written) > 128  # a min-max normalised map (architecture §10.3)

    assert Test.main(test_argv(data, ckpt, pred)) == 0  # nothing to do the second time
    assert "0 written, 12 already there" in capsys.readouterr().out


@pytest.mark.slow
def test_killed_run_resumes_with_the_missing_maps_only(setup, tmp_path):
    _, ckpt = setup
    data, total = tmp_path / "data", 40  # enough maps for the kill to land part-way
    make_synthetic_dataset(data, n_train=1, n_test=total, size=48, seed=6)
    pred = tmp_path / "pred"
    out = pred / "Synth-TE"
    command = [sys.executable, str(ROOT / "run" / "Test.py"), *test_argv(data, ckpt, pred)]
    job = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while len(list(out.glob("*.png"))) < 3 and job.poll() is None:
        assert time.monotonic() < deadline, "Test.py wrote no maps"
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    job.stderr.close()
    before = {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")}
    assert 3 <= len(before) < total, "the kill should land part-way"

    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert f"{total - len(before)} written, {len(before)} already there" in done.stdout
    after = {path.name: path.stat().st_mtime_ns for path in out.glob("*.png")}
    assert sorted(after) == sorted(f"{image.stem}.png" for image in images(data))
    assert all(after[name] == mtime for name, mtime in before.items())  # not rewritten
    for image in images(data):  # every map decodes: none was left truncated
        assert read_mask(out / f"{image.stem}.png").shape == read_image_size(image)


@pytest.mark.slow
def test_unreadable_image_is_named_and_skipped(setup, tmp_path, capsys):
    data, ckpt = setup
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    sets = copy / "Test_Dataset" / "Synth-TE"
    # A valid header (so the pair is listed) followed by no image data: decoding fails.
    header = (sets / "images" / "synth_0000.jpg").read_bytes()[:600]
    (sets / "images" / "synth_0003.jpg").write_bytes(header)
    assert Test.main(test_argv(copy, ckpt, tmp_path / "pred")) == 0
    out = capsys.readouterr().out
    assert "11 written, 0 already there, 1 unreadable (" in out
    assert "synth_0003.jpg: cannot decode image" in out
    assert not (tmp_path / "pred" / "Synth-TE" / "synth_0003.png").exists()


def test_nothing_written_is_an_error(setup, tmp_path, capsys):
    data, ckpt = setup
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    for image in (copy / "Test_Dataset" / "Synth-TE" / "images").iterdir():
        image.write_bytes(b"not an image")
    assert Test.main(test_argv(copy, ckpt, tmp_path / "pred")) == 1
    assert "no map was written and none existed" in capsys.readouterr().err


def test_image_without_mask_is_a_clear_error(setup, tmp_path, capsys):
    data, ckpt = setup
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / "Test_Dataset" / "Synth-TE" / "masks" / "synth_0007.png").unlink()
    assert Test.main(test_argv(copy, ckpt, tmp_path / "pred")) == 1
    captured = capsys.readouterr()
    assert "[Synth-TE] error: Synth-TE: 1 image(s)" in captured.out
    assert "have no mask" in captured.out and "synth_0007.jpg" in captured.out
    assert "could not be read" in captured.err


def test_missing_checkpoint_is_one_line(setup, tmp_path, capsys):
    data, _ = setup
    assert Test.main(test_argv(data, tmp_path / "absent.pth", tmp_path / "pred")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "absent.pth" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_pm_inference_writes_maps(setup, tmp_path):
    """--PM (patch merging, Model.PM) also gives maps at the original size."""
    data, ckpt = setup
    pred = tmp_path / "pred"
    assert Test.main(test_argv(data, ckpt, pred, "--PM")) == 0
    for image in images(data):
        written = read_mask(pred / "Synth-TE" / f"{image.stem}.png")
        assert written.shape == read_image_size(image) and np.ptp(written) > 128
