"""Expr.py end to end: the README's first command on a fresh folder (tiny config, CPU).

It generates the synthetic data set, trains the tiny config as it is (20 epochs of 12 steps),
writes the test maps and scores them. The trained model must beat its own initial weights
(the same seed builds them) on Sm and MAE by clear margins. Margins: over seeds 0-2 the trained
model scored Sm 0.76-0.82 / MAE 0.08-0.11 and the initial weights Sm 0.09-0.43 / MAE 0.14-0.85
(measured on this data set when the tiny config's schedule was chosen).
"""

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch

import Expr
from data.synthetic import make_synthetic_dataset
from Expr import ensure_synthetic_data, synthetic_folder
from lib import build_model
from run import Eval, Inference, Test
from utils.config import load_config
from utils.io.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "configs" / "InSPyReNet_Tiny.yaml")
# Only a guard against a hung process: a slow or loaded machine must never fail these tests.
HANG_GUARD_S = 6 * 3600
# README's first cut-out after the main job (Quick start), checked word for word below.
README_FIRST_CUTOUT = (
    ".venv/bin/python run/Inference.py --config configs/InSPyReNet_Tiny.yaml \\\n"
    "    --source docs/samples/input.png --type rgba --dest results/first"
)


def scores(result_path: Path) -> dict[str, dict[str, float]]:
    """method -> {metric: value} from result_Synth-TE.csv."""
    with open(result_path / "result_Synth-TE.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {row["method"]: {k: float(v) for k, v in row.items() if k != "method"} for row in rows}


def test_synthetic_folder_is_recognised(tmp_path):
    cfg = load_config(CONFIG)
    assert synthetic_folder(cfg) == Path("data/synthetic")
    moved = load_config(
        CONFIG,
        [
            f"Train.Dataset.root={tmp_path / 'x' / 'Train_Dataset'}",
            f"Test.Dataset.root={tmp_path / 'x' / 'Test_Dataset'}",
        ],
    )
    assert synthetic_folder(moved) == tmp_path / "x"
    assert synthetic_folder(load_config(CONFIG, ["Test.Dataset.sets=[DUTS-TE]"])) is None


def test_a_complete_synthetic_data_set_is_kept(tmp_path, caplog):
    """A user's own synthetic set (other parameters, manifest written) is not regenerated."""
    make_synthetic_dataset(tmp_path, n_train=2, n_test=1, size=32)
    roots = [f"{split}.Dataset.root={tmp_path / split}_Dataset" for split in ("Train", "Test")]
    with caplog.at_level("INFO"):
        ensure_synthetic_data(load_config(CONFIG, roots))
    assert "generating" not in caplog.text
    assert len(list((tmp_path / "Train_Dataset" / "Synth-TR" / "images").iterdir())) == 2


@pytest.mark.slow
def test_expr_trains_tests_and_evaluates(tmp_path):
    data = tmp_path / "data"  # absent: Expr.py generates it
    opts = [
        f"Train.Dataset.root={data / 'Train_Dataset'}",
        f"Test.Dataset.root={data / 'Test_Dataset'}",
        f"Eval.gt_root={data / 'Test_Dataset'}",
        f"Train.Checkpoint.checkpoint_dir={tmp_path / 'snap'}",
        f"Test.Checkpoint.checkpoint_dir={tmp_path / 'snap'}",
        f"Eval.pred_root={tmp_path / 'snap'}",
        f"Eval.result_path={tmp_path / 'results'}",
    ]
    command = [sys.executable, str(ROOT / "Expr.py"), "--config", CONFIG, "--seed", "0"]
    command += ["--device", "cpu", "--no-progress", "--opts", *opts]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"generating the synthetic data set in {data}" in done.stdout
    assert "done: 20 epoch(s)" in done.stdout
    assert "[Synth-TE] 16 images: 16 written, 0 already there" in done.stdout
    assert "| InSPyReNet_Tiny |" in done.stdout  # the printed results table
    assert len(list((tmp_path / "snap" / "Synth-TE").glob("*.png"))) == 16

    # The untrained baseline: the run's initial weights (seed 0 builds them; utils.engine.loop).
    cfg = load_config(CONFIG, opts)
    torch.manual_seed(0)
    save_checkpoint(build_model(cfg["Model"]), tmp_path / "untrained.pth")
    untrained_opts = [*opts[:-2], f"Eval.pred_root={tmp_path / 'untrained'}", opts[-1]]
    base = ["--config", CONFIG, "--no-progress"]
    checkpoint = ["--ckpt", str(tmp_path / "untrained.pth"), "--device", "cpu"]
    assert Test.main(base + checkpoint + ["--opts", *untrained_opts]) == 0
    scoring = ["--method", "untrained", "--workers", "1"]
    assert Eval.main(base + scoring + ["--opts", *untrained_opts]) == 0

    table = scores(tmp_path / "results")
    trained, untrained = table["InSPyReNet_Tiny"], table["untrained"]
    assert trained["Sm"] > 0.65 and trained["Sm"] > untrained["Sm"] + 0.2, table
    assert trained["mae"] < 0.15 and trained["mae"] < untrained["mae"] - 0.02, table

    # --resume on a finished run trains nothing and keeps the maps.
    again = subprocess.run(
        command + ["--resume"], cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "done: 20 epoch(s)" in again.stdout and "0 written, 16 already there" in again.stdout

    # README's first cut-out works with the model the main job trained (the command there uses
    # the config's default folders; this run's are under tmp_path).
    assert README_FIRST_CUTOUT in (ROOT / "README.md").read_text(encoding="utf-8")
    first = ["--config", CONFIG, "--source", str(ROOT / "docs" / "samples" / "input.png")]
    first += ["--type", "rgba", "--dest", str(tmp_path / "first"), "--no-progress"]
    first += ["--ckpt", str(tmp_path / "snap" / "latest.pth"), "--opts", *opts]
    assert Inference.main(first) == 0
    cutout = cv2.imread(str(tmp_path / "first" / "input.png"), cv2.IMREAD_UNCHANGED)
    assert cutout.shape[2] == 4 and cutout[..., 3].min() < 64 < 192 < cutout[..., 3].max()


def test_unusable_result_folder_is_found_before_training(tmp_path, capsys):
    """A result folder that is a file would only be noticed after training: it is checked
    first (exit 2, one line, nothing trained)."""
    blocker = tmp_path / "results"
    blocker.write_text("mine")
    opts = [
        f"Train.Checkpoint.checkpoint_dir={tmp_path / 'snap'}",
        f"Eval.pred_root={tmp_path / 'pred'}",
        f"Eval.result_path={blocker}",
    ]
    argv = ["--config", CONFIG, "--device", "cpu", "--no-progress", "--opts", *opts]
    assert Expr.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(blocker) in err[0] and "is a file, not a folder" in err[0]
    assert not (tmp_path / "snap").exists() and blocker.read_text() == "mine"
