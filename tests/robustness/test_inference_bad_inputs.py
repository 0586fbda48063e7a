"""run/Inference.py (folder mode) on a folder holding every awkward or broken photo
(tests/robustness/conftest.py) next to 4 good ones, compared with a run on the good ones alone."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from run import Inference
from utils.io.images import read_mask

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "InSPyReNet_Tiny.yaml"
IMAGES = "Test_Dataset/Synth-TE/images"


def argv(source: Path, checkpoint: Path, dest: Path) -> list[str]:
    return [
        "--config",
        str(CONFIG),
        "--ckpt",
        str(checkpoint),
        "--device",
        "cpu",
        "--no-progress",
        "--source",
        str(source),
        "--dest",
        str(dest),
        "--type",
        "map",
    ]


@pytest.fixture(scope="module")
def runs(corpus, checkpoint, run_script, plant_leftovers, tmp_path_factory):
    """Inference.py on the good folder and on the bad one; the latter writes into a folder where
    a killed run left temporary files."""
    main = Inference.main
    out = tmp_path_factory.mktemp("inference")
    clean = run_script(main, argv(corpus.clean / IMAGES, checkpoint, out / "clean"))
    leftovers = plant_leftovers(out / "bad")
    bad = run_script(main, argv(corpus.bad / IMAGES, checkpoint, out / "bad"))
    return SimpleNamespace(
        clean=clean, bad=bad, clean_dest=out / "clean", dest=out / "bad", leftovers=leftovers
    )


def test_the_run_goes_on_and_exits_0(runs):
    """Exit 0: something was processed (run/Inference.py's docstring); 2 of 12 are refused."""
    assert runs.clean.status == 0 and runs.bad.status == 0
    assert f"10 processed, 2 failed -> {runs.dest}" in runs.bad.lines


def test_each_photo(runs, corpus, photo):
    """A usable photo gets its map at its displayed size (EXIF applied); a refused one gets one
    ``error: <file>: <problem>`` line and no output."""
    path = corpus.bad / IMAGES / photo.name
    written = runs.dest / f"{photo.stem}.png"
    if photo.problem is None:
        assert read_mask(written).shape == photo.shape
        assert not runs.bad.naming(path)
    else:
        lines = runs.bad.naming(path)
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), runs.bad.lines
        assert photo.problem in lines[0]
        assert not written.exists()


def test_good_outputs_are_byte_identical(runs, assert_same_pngs):
    assert_same_pngs(runs.dest, runs.clean_dest, 4)


def test_a_killed_runs_temporary_files_are_removed(runs):
    assert not runs.leftovers.stale.exists()
    assert runs.leftovers.young.exists()  # a live writer's: it may be writing there now
    assert all(path.exists() for path in runs.leftovers.users)  # never the user's own files
