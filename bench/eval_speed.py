""".venv/bin/python bench/eval_speed.py
.venv/bin/python bench/eval_speed.py --images 300 --rounds 6 --workers 2

Benchmark: our parallel evaluator against a serial pysodmetrics loop, in the same run.

Builds ``--images`` synthetic maps and masks of 400x300 in a temporary folder, then times, in
alternating A/B order, (A) ``utils.evaluation.evaluator.evaluate_folder`` with ``--workers``
processes and the nine metrics Sm, mae, adpEm, maxEm, avgEm, adpFm, maxFm, avgFm, wFm, and (B) the
usual serial loop over the pysodmetrics classes (cv2.imread grayscale, then Smeasure, Emeasure,
Fmeasure, WeightedFmeasure and MAE ``step`` per image). Every sample is bracketed by a matmul speed
probe (four 1024^3 float32 torch matmuls): before each sample the script waits (up to ``--max-wait``
seconds) until the probe is within ``--probe-slack`` of the best probe seen, and rounds with a
slower probe are dropped (bench.timing), so that other jobs on the machine do not skew the ratio.
Prints the medians and ends with

    RESULT eval_speed ours=<s> peer=<s> ratio=<median of the per-round peer/ours>

It also checks that both give identical numbers (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import py_sod_metrics

from bench.timing import QuietGate, pairwise_ratio, result_line, time_alternating
from utils.evaluation.evaluator import evaluate_folder

ROOT = Path(__file__).resolve().parents[1]

NINE = ["Sm", "mae", "adpEm", "maxEm", "avgEm", "adpFm", "maxFm", "avgFm", "wFm"]


def make_dataset(folder: Path, count: int, seed: int = 0) -> tuple[Path, Path]:
    """``count`` 400x300 masks (random ellipses) and noisy blurred predictions as PNGs."""
    rng = np.random.default_rng(seed)
    pred_dir, gt_dir = folder / "preds", folder / "masks"
    pred_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    for index in range(count):
        gt = np.zeros((300, 400), np.uint8)
        for _ in range(int(rng.integers(1, 4))):
            center = (int(rng.integers(60, 340)), int(rng.integers(50, 250)))
            axes = (int(rng.integers(15, 110)), int(rng.integers(15, 90)))
            cv2.ellipse(gt, center, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
        shift = np.roll(gt, int(rng.integers(-15, 15)), axis=1).astype(np.float64)
        pred = cv2.GaussianBlur(shift, (0, 0), float(rng.uniform(2, 12)))
        pred = np.clip(pred * rng.uniform(0.6, 1.0) + rng.normal(0, 12, gt.shape), 0, 255)
        cv2.imwrite(str(gt_dir / f"{index:04d}.png"), gt)
        cv2.imwrite(str(pred_dir / f"{index:04d}.png"), pred.astype(np.uint8))
    return pred_dir, gt_dir


def run_ours(pred_dir: Path, gt_dir: Path, workers: int) -> dict[str, float]:
    return evaluate_folder(pred_dir, gt_dir, NINE, workers=workers).scores


def run_peer(pred_dir: Path, gt_dir: Path) -> dict[str, float]:
    """The serial loop of pysodmetrics' README / tests."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fm = py_sod_metrics.Fmeasure()
    sm, em, wfm, mae = (
        py_sod_metrics.Smeasure(),
        py_sod_metrics.Emeasure(),
        py_sod_metrics.WeightedFmeasure(),
        py_sod_metrics.MAE(),
    )
    for gt_path in sorted(gt_dir.glob("*.png")):
        gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE)
        pred = cv2.imread(str(pred_dir / gt_path.name), cv2.IMREAD_GRAYSCALE)
        for metric in (sm, em, fm, wfm, mae):
            metric.step(pred, gt)
    fm_res, em_res = fm.get_results()["fm"], em.get_results()["em"]
    return {
        "Sm": float(sm.get_results()["sm"]),
        "mae": float(mae.get_results()["mae"]),
        "adpEm": float(em_res["adp"]),
        "maxEm": float(em_res["curve"].max()),
        "avgEm": float(em_res["curve"].mean()),
        "adpFm": float(fm_res["adp"]),
        "maxFm": float(fm_res["curve"].max()),
        "avgFm": float(fm_res["curve"].mean()),
        "wFm": float(wfm.get_results()["wfm"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6, help="A/B pairs timed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--max-wait",
        type=float,
        default=60.0,
        help="seconds to wait for a quiet machine before each sample",
    )
    parser.add_argument(
        "--probe-slack",
        type=float,
        default=0.3,
        help="drop samples whose probes exceed the best probe by this fraction",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="eval_speed_") as tmp:
        pred_dir, gt_dir = make_dataset(Path(tmp), args.images)
        values = {
            "ours": run_ours(pred_dir, gt_dir, args.workers),  # warm-up + numbers
            "peer": run_peer(pred_dir, gt_dir),
        }

        def timed(run) -> Callable[[], float]:
            def sample() -> float:
                start = time.perf_counter()
                run()
                return time.perf_counter() - start

            return sample

        runners = {
            "ours": timed(lambda: run_ours(pred_dir, gt_dir, args.workers)),
            "peer": timed(lambda: run_peer(pred_dir, gt_dir)),
        }
        gate = QuietGate(slack=args.probe_slack, max_wait=args.max_wait)
        gate.calibrate()
        samples = time_alternating(runners, args.rounds, gate)

    comparison = pairwise_ratio(samples, gate)
    note = "" if comparison.rounds_kept else " (NOISY: no quiet round)"
    kept = f"{comparison.rounds_kept}/{comparison.rounds}"
    print(
        f"ours {comparison.ours:.3f} s, peer {comparison.peer:.3f} s (medians), pairwise ratio "
        f"{comparison.ratio:.2f} over {kept} quiet rounds{note}"
    )
    identical = values["ours"] == values["peer"]
    for metric in NINE:
        print(f"  {metric:6s} ours {values['ours'][metric]!r:22} peer {values['peer'][metric]!r}")
    print(f"numbers identical: {identical}")
    print(result_line("eval_speed", comparison.ours, comparison.peer, comparison.ratio))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
