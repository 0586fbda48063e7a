"""utils.evaluation (evaluator, metrics, pairing, tables): peer values, pairing problems,
parallel = serial, tables."""

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from utils.evaluation.evaluator import Evaluator, evaluate_config, evaluate_folder
from utils.evaluation.metrics import METRICS, boundary_accuracy, check_metrics
from utils.evaluation.tables import update_results_table
from utils.io.files import natural_key
from utils.io.images import read_mask

NINE = ["Sm", "mae", "adpEm", "maxEm", "avgEm", "adpFm", "maxFm", "avgFm", "wFm"]
# our name -> the key in tests/fixtures/pysodmetrics/version_performance.json
PEER_KEYS = {
    "Sm": "Smeasure",
    "wFm": "wFmeasure",
    "mae": "MAE",
    "adpEm": "adpEm",
    "avgEm": "meanEm",
    "maxEm": "maxEm",
    "adpFm": "adpFm",
    "avgFm": "meanFm",
    "maxFm": "maxFm",
}


@pytest.fixture(scope="module")
def peer_dir(fixtures_dir) -> Path:
    return fixtures_dir / "pysodmetrics"


def peer_expected(peer_dir: Path) -> dict[str, float]:
    """For each metric, the value of the newest version in the file that records it."""
    versions = json.loads((peer_dir / "version_performance.json").read_text())
    ordered = sorted(versions, key=lambda v: tuple(int(x) for x in v.lstrip("v").split("_")))
    expected = {}
    for ours, theirs in PEER_KEYS.items():
        expected[ours] = next(
            versions[v][theirs] for v in reversed(ordered) if theirs in versions[v]
        )
    return expected


def make_pairs(root: Path, count: int = 6, size=(30, 40), seed: int = 0) -> tuple[Path, Path]:
    """Small masks (a random rectangle) and noisy predictions: root/pred, root/gt."""
    rng = np.random.default_rng(seed)
    pred_dir, gt_dir = root / "pred", root / "gt"
    pred_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    height, width = size
    for index in range(count):
        gt = np.zeros(size, np.uint8)
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        gt[top : top + height // 3, left : left + width // 3] = 255
        pred = np.clip(gt * 0.8 + rng.normal(0, 40, size), 0, 255).astype(np.uint8)
        cv2.imwrite(str(gt_dir / f"img{index}.png"), gt)
        cv2.imwrite(str(pred_dir / f"img{index}.png"), pred)
    return pred_dir, gt_dir


# ------------------------------------------------------------------------------------------------
# numbers


@pytest.mark.parametrize("workers", [1, 2])
def test_reproduces_peer_values(peer_dir, workers):
    result = evaluate_folder(peer_dir / "preds", peer_dir / "masks", NINE, workers=workers)
    assert result.scored == 3 and not (result.missing or result.extra or result.unreadable)
    for name, value in peer_expected(peer_dir).items():
        assert result.scores[name] == pytest.approx(value, abs=1e-6), name


def test_reading_matches_the_peer_test(peer_dir):
    # pysodmetrics' own test reads both folders with cv2.imread(..., IMREAD_GRAYSCALE);
    # one mask is stored as RGB, one is not binary
    for folder in ("preds", "masks"):
        for path in sorted((peer_dir / folder).glob("*.png")):
            expected = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            np.testing.assert_array_equal(read_mask(path), expected)


def test_parallel_is_bit_identical_to_serial(tmp_path, peer_dir):
    pred_dir, gt_dir = make_pairs(tmp_path, count=20)
    for pair in ((pred_dir, gt_dir), (peer_dir / "preds", peer_dir / "masks")):
        serial = evaluate_folder(*pair, METRICS, workers=1, curves=True)
        parallel = evaluate_folder(*pair, METRICS, workers=2, curves=True)
        assert serial.scores == parallel.scores  # exact equality, not approx
        for key, curve in serial.curves.items():
            np.testing.assert_array_equal(curve, parallel.curves[key])


@pytest.mark.parametrize("workers", [1, 2])
def test_max_f_of_mean_precision_and_recall_by_hand(tmp_path, workers):
    """maxF_pr = max_t F(mean_i P_i(t), mean_i R_i(t)); maxFm = max_t mean_i F(P_i(t), R_i(t)).

    a: two foreground pixels, one predicted: P = 1, R = 1/2 at every threshold but the last
    (where all four pixels are predicted). b: one foreground pixel predicted at 255, a
    background one at 128: P = R = 1 while the threshold is above 128, then P = 1/2. The best
    threshold is above 128 in both conventions: mean P = 1, mean R = 3/4 gives
    F = 1.3·3/4 / (0.3 + 3/4) = 13/14, while the mean of F_a = 1.3·1/2 / (0.3 + 1/2) = 13/16
    and F_b = 1 is 29/32."""
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    pairs = {
        "a": ([[255, 0], [0, 0]], [[255, 255], [0, 0]]),
        "b": ([[255, 128], [0, 0]], [[255, 0], [0, 0]]),
    }
    for name, (pred, gt) in pairs.items():
        cv2.imwrite(str(pred_dir / f"{name}.png"), np.array(pred, np.uint8))
        cv2.imwrite(str(gt_dir / f"{name}.png"), np.array(gt, np.uint8))
    result = evaluate_folder(pred_dir, gt_dir, ["maxFm", "maxF_pr"], workers=workers, curves=True)
    assert result.scores["maxF_pr"] == pytest.approx(13 / 14, abs=1e-12)
    assert result.scores["maxFm"] == pytest.approx(29 / 32, abs=1e-12)
    curve = result.curves["fmeasure_pr"]
    assert curve.max() == result.scores["maxF_pr"]
    # last threshold: every pixel predicted; P = (1/2 + 1/4) / 2, R = 1
    assert curve[-1] == pytest.approx(1.3 * 3 / 8 / (0.3 * 3 / 8 + 1), abs=1e-12)


def test_metric_names_checked():
    assert check_metrics(["Sm", "mBA"]) == ["Sm", "mBA"]
    with pytest.raises(ValueError, match=r"unknown metric 'maxFM' \(did you mean maxFm\?\)"):
        check_metrics(["maxFM"])
    with pytest.raises(ValueError, match="twice"):
        check_metrics(["Sm", "Sm"])


def test_boundary_accuracy_by_hand():
    gt = np.zeros((30, 40), bool)
    gt[10:20, 10:30] = True
    assert boundary_accuracy(gt.astype(float), gt) == 1.0  # perfect map
    assert boundary_accuracy(1.0 - gt, gt) == 0.0  # inverted map is wrong on every band pixel
    # (w + h) / 300 < 1, so all five radii are 1 and the band is the gradient with OpenCV's 3x3
    # ellipse. Shifting the map one column right makes gt column 10 background and column 30
    # foreground: 2 columns x 10 rows wrong, both inside the band.
    shifted = np.roll(gt, 1, axis=1).astype(float)
    band = (
        cv2.morphologyEx(
            gt.astype(np.uint8),
            cv2.MORPH_GRADIENT,
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)),
        )
        > 0
    )
    wrong = np.count_nonzero((shifted > 0.5)[band] != gt[band])
    assert wrong == 20
    assert boundary_accuracy(shifted, gt) == pytest.approx(1 - wrong / band.sum())
    assert np.isnan(boundary_accuracy(np.zeros((30, 40)), np.zeros((30, 40), bool)))


def test_natural_order():
    names = ["img10", "img2", "Img1", "b", "a"]
    assert sorted(names, key=natural_key) == ["a", "b", "Img1", "img2", "img10"]


# ------------------------------------------------------------------------------------------------
# problems are reported, the rest is scored


def test_missing_and_extra_predictions(tmp_path):
    pred_dir, gt_dir = make_pairs(tmp_path, count=5)
    reference = evaluate_folder(pred_dir, gt_dir, NINE)
    (pred_dir / "img3.png").unlink()
    shutil.copy(pred_dir / "img0.png", pred_dir / "stray.png")
    result = evaluate_folder(pred_dir, gt_dir, NINE)
    assert result.scored == 4
    assert result.missing == ["img3"] and result.extra == ["stray"]
    summary = result.report()[0]
    assert "1 missing predictions (img3)" in summary and "1 extra predictions (stray)" in summary
    (gt_dir / "img3.png").unlink()
    (pred_dir / "stray.png").unlink()
    alone = evaluate_folder(pred_dir, gt_dir, NINE)  # the same four pairs, nothing else
    assert result.scores == alone.scores and result.scores != reference.scores


def test_size_mismatch_is_resized_and_counted(tmp_path):
    pred_dir, gt_dir = make_pairs(tmp_path, count=3)
    small = cv2.resize(read_mask(pred_dir / "img1.png"), (20, 15), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(pred_dir / "img1.png"), small)
    result = evaluate_folder(pred_dir, gt_dir, NINE)
    assert result.scored == 3 and len(result.resized) == 1
    assert "img1.png: 20x15 resized to the mask's 40x30" in result.resized[0]
    assert "1 predictions resized" in result.report()[0]
    # same numbers as scoring the bilinearly resized map directly (what the toolkits do)
    cv2.imwrite(str(pred_dir / "img1.png"), cv2.resize(small, (40, 30)))
    assert evaluate_folder(pred_dir, gt_dir, NINE).scores == result.scores


@pytest.mark.parametrize("workers", [1, 2])
def test_unreadable_prediction_is_reported_not_fatal(tmp_path, workers):
    pred_dir, gt_dir = make_pairs(tmp_path, count=4)
    (pred_dir / "img2.png").write_bytes(b"not a png")
    result = evaluate_folder(pred_dir, gt_dir, NINE, workers=workers)
    assert result.scored == 3
    assert len(result.unreadable) == 1 and str(pred_dir / "img2.png") in result.unreadable[0]
    assert any("unreadable: " in line and "img2.png" in line for line in result.report())


def test_missing_folders_are_problems_not_crashes(tmp_path):
    result = evaluate_folder(tmp_path / "nope", tmp_path / "none", NINE)
    assert result.scored == 0 and len(result.problems) == 2
    assert all(np.isnan(value) for value in result.scores.values())


# ------------------------------------------------------------------------------------------------
# tables and curves


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_keeps_one_row_per_method(tmp_path):
    metrics = ["Sm", "mae"]
    update_results_table(tmp_path, "ECSSD", "A", metrics, {"Sm": 0.5, "mae": 0.1})
    update_results_table(tmp_path, "ECSSD", "B", metrics, {"Sm": 0.6, "mae": 0.2})
    table = update_results_table(tmp_path, "ECSSD", "A", metrics, {"Sm": 0.7, "mae": 0.05})
    rows = read_csv(tmp_path / "result_ECSSD.csv")
    assert [row["method"] for row in rows] == ["A", "B"]
    assert float(rows[0]["Sm"]) == 0.7 and float(rows[1]["Sm"]) == 0.6
    assert (tmp_path / "result_ECSSD.csv").read_text().splitlines()[0] == "method,Sm,mae"
    assert "| A | 0.700 | 0.050 |" in table and "| B | 0.600 | 0.200 |" in table
    assert (tmp_path / "result_ECSSD.md").read_text() == table


def eval_cfg(tmp_path: Path, pred_root: Path, gt_root: Path) -> dict:
    return {
        "gt_root": str(gt_root),
        "pred_root": str(pred_root),
        "result_path": str(tmp_path / "results"),
        "datasets": ["Toy"],
        "metrics": list(METRICS),
    }


def test_evaluate_config_two_methods_and_stat(tmp_path, caplog):
    pred_dir, gt_dir = make_pairs(tmp_path / "raw", count=4)
    (tmp_path / "gt" / "Toy").mkdir(parents=True)
    shutil.copytree(gt_dir, tmp_path / "gt" / "Toy" / "masks")  # <gt_root>/<set>/masks layout
    for method in ("M1", "M2"):
        shutil.copytree(pred_dir, tmp_path / method / "Toy")
        cfg = eval_cfg(tmp_path, tmp_path / method, tmp_path / "gt")
        with caplog.at_level("INFO"):
            results = evaluate_config(cfg, method, workers=1, stat=True, progress=False)
        assert results[0].scored == 4
    results_dir = tmp_path / "results"
    rows = read_csv(results_dir / "result_Toy.csv")
    assert [row["method"] for row in rows] == ["M1", "M2"]
    assert list(rows[0])[1:] == list(METRICS)
    png = results_dir / "curves" / "Toy.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with np.load(results_dir / "curves" / "Toy" / "M2.npz") as data:
        assert data["precision"].shape == (256,) and data["fmeasure"].shape == (256,)
        assert data["fmeasure"].max() == pytest.approx(results[0].scores["maxFm"])
        assert data["fmeasure_pr"].max() == pytest.approx(results[0].scores["maxF_pr"])
    assert any("| M2 |" in record.getMessage() for record in caplog.records)


def test_evaluator_reuses_its_pool(tmp_path):
    pred_dir, gt_dir = make_pairs(tmp_path, count=4)
    with Evaluator(["mae"], workers=2) as evaluator:
        first = evaluator.evaluate_folder(pred_dir, gt_dir, "a")
        second = evaluator.evaluate_folder(pred_dir, gt_dir, "b")
    assert first.scores == second.scores and first.scored == 4
