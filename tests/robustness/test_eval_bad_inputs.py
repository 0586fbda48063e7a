"""run/Eval.py with every awkward or broken ground-truth mask (tests/robustness/conftest.py)
next to 4 good ones, compared with a run where the usable ones are plain 8-bit gray PNGs of
their expected values and the refused ones are absent."""

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from run import Eval
from utils.io.images import read_mask

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "InSPyReNet_Tiny.yaml"
MASKS = "Test_Dataset/Synth-EV/masks"


def argv(data: Path, pred: Path, results: Path) -> list[str]:
    return [
        "--config",
        str(CONFIG),
        "--method",
        "tiny",
        "--workers",
        "1",
        "--no-progress",
        "--opts",
        f"Eval.gt_root={data / 'Test_Dataset'}",
        f"Eval.pred_root={pred}",
        f"Eval.result_path={results}",
        "Eval.datasets=[Synth-EV]",
    ]


def write_predictions(corpus, clean: Path, bad: Path) -> None:
    """A noisy map, made from the mask's expected values, for every mask stem of the bad set
    into ``bad`` and of the twin set into ``clean`` (the same file for the same stem)."""
    for folder in (clean, bad):
        folder.mkdir(parents=True)
    for index, path in enumerate(sorted((corpus.bad / MASKS).iterdir())):
        twin = corpus.clean / MASKS / path.name
        gt = read_mask(twin) if twin.is_file() else np.zeros(corpus.inputs[path.name].shape)
        pred = 0.7 * gt + 40 + np.random.default_rng(index).normal(0, 25, gt.shape)
        for folder in (clean, bad) if twin.is_file() else (bad,):
            cv2.imwrite(str(folder / path.name), np.clip(pred, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def runs(corpus, run_script, plant_leftovers, tmp_path_factory):
    """Eval.py on the twin masks and on the bad ones, with the same predictions; the latter
    writes into a result folder where a killed run left temporary files."""
    main = Eval.main
    out = tmp_path_factory.mktemp("eval")
    write_predictions(corpus, out / "pred_clean" / "Synth-EV", out / "pred_bad" / "Synth-EV")
    clean = run_script(main, argv(corpus.clean, out / "pred_clean", out / "clean"))
    leftovers = plant_leftovers(out / "bad")
    bad = run_script(main, argv(corpus.bad, out / "pred_bad", out / "bad"))
    return SimpleNamespace(clean=clean, bad=bad, out=out, leftovers=leftovers)


def test_the_run_goes_on_and_exits_0(runs):
    """Exit 0: a data set was scored (run/Eval.py's docstring); 2 of 9 masks are refused."""
    assert runs.clean.status == 0 and runs.bad.status == 0
    assert "[Synth-EV] 7 scored" in runs.clean.lines
    assert "[Synth-EV] 7 scored; 2 unreadable" in runs.bad.lines


def test_each_mask(runs, corpus, mask):
    """A usable mask reads as its expected values (16-bit scaled by 1/257, RGB as cv2's gray,
    here equal channels); a refused one is named on one line with the problem."""
    path = corpus.bad / MASKS / mask.name
    if mask.problem is None:
        np.testing.assert_array_equal(read_mask(path), mask.mask)
        assert not runs.bad.naming(path)
    else:
        lines = runs.bad.naming(path)
        assert len(lines) == 1 and lines[0].startswith(f"[Synth-EV] unreadable: {path}: ")
        assert mask.problem in lines[0]


def test_scores_are_byte_identical(runs):
    """Same predictions, masks of the same values: the same results table, to the last bit."""
    table = "result_Synth-EV.csv"
    assert (runs.out / "bad" / table).read_bytes() == (runs.out / "clean" / table).read_bytes()


def test_a_killed_runs_temporary_files_are_removed(runs):
    assert not runs.leftovers.stale.exists()
    assert runs.leftovers.young.exists()  # a live writer's: it may be writing there now
    assert all(path.exists() for path in runs.leftovers.users)  # never the user's own files
