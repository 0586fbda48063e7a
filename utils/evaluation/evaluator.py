"""Evaluate saliency maps against masks: pairing, parallel scoring, result tables and curves.

Layout: masks in ``<gt_root>/<dataset>/masks/`` (or directly in ``<gt_root>/<dataset>/``),
predictions in ``<pred_root>/<dataset>/<mask stem>.png``.

* Predictions and masks are paired by file stem. Missing and extra predictions are reported (count
  and first names) and the rest is scored. A prediction whose size differs from its mask is
  resized to the mask (OpenCV bilinear, as the standard toolkits do) and counted. A file that
  cannot be read is reported on one line and left out; nothing crashes the run.
* ``workers > 1`` scores chunks of images in worker processes; every worker returns per-image
  quantities (utils.evaluation.metrics) and the parent reduces them in image order, so the
  numbers are bit-for-bit those of ``workers=1``.
* ``<result_path>/result_<dataset>.csv`` keeps one row per method across runs (re-running a method
  replaces its row); ``result_<dataset>.md`` is the same table in markdown. With curves on,
  ``<result_path>/curves/<dataset>/<method>.npz`` holds the PR and F/E-vs-threshold curves and
  ``<result_path>/curves/<dataset>.png`` plots every method of the dataset.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
from tqdm import tqdm

from utils.evaluation.curves import plot_curves, save_curves
from utils.evaluation.metrics import (
    check_metrics,
    dataset_curves,
    image_quantities,
    quantities_for,
    reduce_quantities,
)
from utils.evaluation.pairing import Pair, mask_folder, pair_by_stem
from utils.evaluation.result import DatasetResult
from utils.evaluation.tables import update_results_table
from utils.io.atomic import remove_stale_temporaries
from utils.io.images import ImageReadError, read_mask

logger = logging.getLogger(__name__)


def _score_chunk(task: tuple[list[tuple[str, str]], frozenset[str]]) -> list[tuple]:
    """Score ``[(pred path, mask path), ...]``; per pair: (record or None, resized msg, error)."""
    pairs, needed = task
    out = []
    for pred_path, gt_path in pairs:
        try:
            gt = read_mask(gt_path)
            pred = read_mask(pred_path)
        except ImageReadError as error:
            out.append((None, None, str(error)))
            continue
        resized = None
        if pred.shape != gt.shape:
            resized = (
                f"{pred_path}: {pred.shape[1]}x{pred.shape[0]} resized to the mask's "
                f"{gt.shape[1]}x{gt.shape[0]}"
            )
            pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
        try:
            out.append((image_quantities(pred, gt, needed), resized, None))
        except Exception as error:  # a metric failing on one odd image must not stop the run
            out.append((None, None, f"{pred_path}: cannot score ({type(error).__name__}: {error})"))
    return out


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts workers in milliseconds with numpy/scipy already imported (spawn re-imports
    # them, ~1 s per worker); it is the safe choice on Linux only.
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class Evaluator:
    """Scores datasets for a list of metrics, serially or with a pool of worker processes.

    Use as a context manager (the pool is kept for every dataset of a run)::

        with Evaluator(["Sm", "mae"], workers=2) as evaluator:
            result = evaluator.evaluate_folder(pred_dir, gt_dir, "ECSSD")
    """

    def __init__(self, metrics: Sequence[str], workers: int = 1, curves: bool = False):
        self.metrics = check_metrics(metrics)
        self.curves = curves
        self.needed = quantities_for(self.metrics, curves=curves)
        self.workers = max(1, int(workers))
        self._pool = None

    def __enter__(self) -> Evaluator:
        if self.workers > 1:
            # an executor (not multiprocessing.Pool) fails loudly if a worker dies instead of
            # hanging while it restarts workers
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_pool_context())
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes (if any)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def evaluate_folder(
        self,
        pred_dir: str | os.PathLike,
        gt_dir: str | os.PathLike,
        dataset: str,
        progress: bool = False,
    ) -> DatasetResult:
        """Pair ``pred_dir`` with ``gt_dir`` by stem and score every readable pair."""
        result = DatasetResult(dataset)
        pairs = pair_by_stem(Path(pred_dir), Path(gt_dir), result)
        return self.score_pairs(pairs, result, progress)

    def score_pairs(
        self, pairs: Sequence[Pair], result: DatasetResult, progress: bool = False
    ) -> DatasetResult:
        """Score ``pairs`` in order into ``result`` (scores, curves, resized, unreadable)."""
        chunks = _chunks([(str(p.pred), str(p.gt)) for p in pairs], self.workers)
        tasks = [(chunk, self.needed) for chunk in chunks]
        if self._pool is not None:
            outputs = self._pool.map(_score_chunk, tasks)
        else:
            outputs = map(_score_chunk, tasks)
        records = []
        with tqdm(
            total=len(pairs), desc=result.dataset, unit="map", disable=not progress, leave=False
        ) as bar:
            for output in outputs:
                for record, resized, error in output:
                    if error is not None:
                        result.unreadable.append(error)
                        continue
                    records.append(record)
                    if resized is not None:
                        result.resized.append(resized)
                bar.update(len(output))
        result.scored = len(records)
        result.scores = reduce_quantities(records, self.metrics)
        if self.curves and records:
            result.curves = dataset_curves(records)
        return result


def _chunks(items: list, workers: int) -> list[list]:
    """Split into about 8 chunks per worker (at most 8 items each) to balance and limit IPC."""
    if workers <= 1:
        return [items[i : i + 1] for i in range(len(items))]
    size = max(1, min(8, math.ceil(len(items) / (workers * 8))))
    return [items[i : i + size] for i in range(0, len(items), size)]


def evaluate_folder(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    metrics: Sequence[str],
    workers: int = 1,
    curves: bool = False,
    dataset: str | None = None,
) -> DatasetResult:
    """Score one folder of predictions against one folder of masks (see :class:`Evaluator`)."""
    with Evaluator(metrics, workers=workers, curves=curves) as evaluator:
        return evaluator.evaluate_folder(pred_dir, gt_dir, dataset or Path(gt_dir).name)


def evaluate_config(
    eval_cfg: dict,
    method: str,
    workers: int = 1,
    stat: bool = False,
    verbose: bool = False,
    progress: bool = True,
) -> list[DatasetResult]:
    """Score ``method``'s maps on every dataset of an ``Eval`` config section.

    Writes the result tables (and with ``stat`` the curves and their plots) under
    ``eval_cfg["result_path"]`` and logs a summary and the markdown table per dataset; the
    temporary files a killed earlier run left in ``result_path`` are deleted first.
    """
    metrics = check_metrics(eval_cfg["metrics"])
    result_path = Path(eval_cfg["result_path"])
    remove_stale_temporaries(result_path)  # left by a killed run's table writes
    results = []
    with Evaluator(metrics, workers=workers, curves=stat) as evaluator:
        for dataset in eval_cfg["datasets"]:
            result = evaluator.evaluate_folder(
                Path(eval_cfg["pred_root"]) / dataset,
                mask_folder(eval_cfg["gt_root"], dataset),
                dataset,
                progress=progress,
            )
            results.append(result)
            for line in result.report(verbose):
                logger.info(line)
            if not result.scored:
                continue
            logger.info(update_results_table(result_path, dataset, method, metrics, result.scores))
            if stat and result.curves is not None:
                save_curves(result_path, dataset, method, result.curves)
                plot = plot_curves(result_path, dataset)
                logger.info(f"[{dataset}] curves: {plot}")
    return results
