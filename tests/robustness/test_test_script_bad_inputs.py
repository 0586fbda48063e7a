"""run/Test.py on a test set holding every awkward or broken photo (tests/robustness/conftest.py)
next to 4 good ones, compared with a run on the good ones alone."""

from types import SimpleNamespace

import pytest

from run import Test
from tests.script_args import test_argv
from utils.io.images import read_mask

SET = "Test_Dataset/Synth-TE"


@pytest.fixture(scope="module")
def runs(corpus, checkpoint, run_script, plant_leftovers, tmp_path_factory):
    """Test.py on the good set and on the bad one; the latter writes into a folder where a
    killed run left temporary files."""
    out = tmp_path_factory.mktemp("test_script")
    clean = run_script(Test.main, test_argv(corpus.clean, checkpoint, out / "clean"))
    leftovers = plant_leftovers(out / "bad" / "Synth-TE")
    bad = run_script(Test.main, test_argv(corpus.bad, checkpoint, out / "bad"))
    return SimpleNamespace(
        clean=clean,
        bad=bad,
        clean_maps=out / "clean" / "Synth-TE",
        maps=out / "bad" / "Synth-TE",
        leftovers=leftovers,
    )


def test_the_run_goes_on_and_exits_0(runs):
    """Exit 0: every set has its maps (run/Test.py's docstring); 2 of 12 photos are refused."""
    assert runs.clean.status == 0 and runs.bad.status == 0
    assert any(
        line.startswith("[Synth-TE] 12 images: 10 written, 0 already there, 2 unreadable (")
        for line in runs.bad.lines
    ), runs.bad.lines


def test_each_photo(runs, corpus, photo):
    """A usable photo gets its map at its displayed size (EXIF applied); a refused one is named
    on a line with the problem and gets no map."""
    path = corpus.bad / SET / "images" / photo.name
    written = runs.maps / f"{photo.stem}.png"
    if photo.problem is None:
        assert read_mask(written).shape == photo.shape
        assert not runs.bad.naming(path)
    else:
        assert any(photo.problem in line for line in runs.bad.naming(path)), runs.bad.lines
        assert not written.exists()


def test_good_maps_are_byte_identical(runs, assert_same_pngs):
    assert_same_pngs(runs.maps, runs.clean_maps, 4)


def test_a_killed_runs_temporary_files_are_removed(runs):
    assert not runs.leftovers.stale.exists()
    assert runs.leftovers.young.exists()  # a live writer's: it may be writing there now
    assert all(path.exists() for path in runs.leftovers.users)  # never the user's own files
