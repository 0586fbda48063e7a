"""run/Eval.py end to end on a tiny temporary dataset (subprocess, as a user runs it)."""

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from run import Eval

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "run" / "Eval.py"


@pytest.fixture
def toy(tmp_path):
    """<tmp>/gt/Toy/masks/*.png and <tmp>/pred/Toy/*.png, three 24x32 pairs."""
    rng = np.random.default_rng(1)
    masks, preds = tmp_path / "gt" / "Toy" / "masks", tmp_path / "pred" / "Toy"
    masks.mkdir(parents=True)
    preds.mkdir(parents=True)
    for index in range(3):
        gt = np.zeros((24, 32), np.uint8)
        gt[4 + index : 16, 6 : 20 + index] = 255
        pred = np.clip(gt * 0.9 + rng.normal(0, 30, gt.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(masks / f"{index}.png"), gt)
        cv2.imwrite(str(preds / f"{index}.png"), pred)
    return tmp_path


def opts(root: Path, pred: str = "pred") -> list[str]:
    return [
        "--opts",
        f"Eval.gt_root={root / 'gt'}",
        f"Eval.pred_root={root / pred}",
        f"Eval.result_path={root / 'results'}",
        "Eval.datasets=[Toy]",
    ]


def test_cli_smoke(toy):
    command = [sys.executable, str(SCRIPT), "--config", "configs/SotA/VST.yaml"]
    command += opts(toy) + ["--workers", "2", "--stat", "--no-progress"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "[Toy] 3 scored" in done.stdout
    assert "| method | Sm | mae | adpEm | maxEm | avgEm | adpFm | maxFm | avgFm | wFm | mBA |" in (
        done.stdout
    )
    with open(toy / "results" / "result_Toy.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["method"] for row in rows] == ["VST"]  # default method: the config stem
    assert 0.0 < float(rows[0]["Sm"]) <= 1.0
    assert (toy / "results" / "curves" / "Toy.png").is_file()


def test_exit_codes(toy, capsys):
    script = Eval
    config = str(ROOT / "configs" / "SotA" / "VST.yaml")
    base = ["--config", config, "--workers", "1", "--no-progress"]
    assert script.main(base + opts(toy) + ["--method", "mine"]) == 0
    assert script.main(base + opts(toy, pred="absent")) == 1  # nothing could be scored
    assert "nothing could be scored" in capsys.readouterr().err
    assert script.main(base + ["--opts", "Eval.gt_rot=x"]) == 2  # config error
    assert "unknown key Eval.gt_rot (did you mean gt_root?)" in capsys.readouterr().err
    assert script.main(base + opts(toy) + ["Eval.metrics=[Sm,maxFM]"]) == 2
    assert "did you mean maxFm?" in capsys.readouterr().err
