"""Evaluate saliency maps against masks: pairing, parallel scoring, result tables and curves.

Layout: masks in ``<gt_root>/<dataset>/masks/`` (or directly in ``<gt_root>/<dataset>/``),
predictions in ``<pred_root>/<dataset>/<mask stem>.png``.

* Predictions and masks are paired by file stem. Missing and extra predictions are reported (count
  and first names) and the rest is scored. A prediction whose size differs from its mask is
  resized to the mask (OpenCV bilinear, as the standard toolkits do) and counted. A file that
  cannot be read, and a mask too small for the metrics (utils.evaluation.metrics.size_problem),
  is reported on one line and left out; nothing crashes the run.
* ``workers > 1`` scores chunks of images in worker processes; every worker returns per-image
  quantities (utils.evaluation.metrics) and the parent reduces them in image order, so the
  numbers are bit-for-bit those of ``workers=1``. A worker that dies (killed, out of memory)
  fails its dataset only: the next one gets a fresh pool.
* ``<result_path>/result_<dataset>.csv`` keeps one row per method across runs (re-running a method
  replaces its row; concurrent runs wait for each other, utils.evaluation.tables);
  ``result_<dataset>.md`` is the same table in markdown. The table is logged before it is
  written, so a failed write loses no score. With curves on,
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
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import NamedTuple

import cv2
from tqdm import tqdm

from utils.evaluation.curves import curves_folder, plot_curves, save_curves
from utils.evaluation.metrics import (
    check_metrics,
    dataset_curves,
    image_quantities,
    quantities_for,
    reduce_quantities,
    size_problem,
)
from utils.evaluation.pairing import Pair, mask_folder, pair_by_stem
from utils.evaluation.result import DatasetResult
from utils.evaluation.tables import (
    markdown_table,
    method_row,
    prepare_result_folder,
    table_path,
    update_results_table,
    write_problem,
)
from utils.io.atomic import remove_stale_temporaries
from utils.io.images import ImageReadError, read_mask

logger = logging.getLogger(__name__)

WORKER_DIED = "scoring failed: a worker process died (likely out of memory; try --workers 1)"


class _Scored(NamedTuple):
    """What scoring one pair gave: its record, or why it was left out."""

    record: dict | None = None
    resized: str | None = None  # the message of a prediction resized to its mask
    unreadable: str | None = None  # the message of a file that could not be read or scored
    too_small: str | None = None  # the message of a mask too small to score


def _score_chunk(task: tuple[list[tuple[str, str]], frozenset[str]]) -> list[_Scored]:
    """Score ``[(pred path, mask path), ...]``, one :class:`_Scored` per pair."""
    pairs, needed = task
    return [_score_pair(pred_path, gt_path, needed) for pred_path, gt_path in pairs]


def _score_pair(pred_path: str, gt_path: str, needed: frozenset[str]) -> _Scored:
    try:
        gt = read_mask(gt_path)
        problem = size_problem(gt.shape)
        if problem is not None:
            return _Scored(too_small=f"{gt_path}: {problem}")
        pred = read_mask(pred_path)
    except ImageReadError as error:
        return _Scored(unreadable=str(error))
    resized = None
    if pred.shape != gt.shape:
        resized = (
            f"{pred_path}: {pred.shape[1]}x{pred.shape[0]} resized to the mask's "
            f"{gt.shape[1]}x{gt.shape[0]}"
        )
        pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
    try:
        return _Scored(image_quantities(pred, gt, needed), resized)
    except Exception as error:  # a metric failing on one odd image must not stop the run
        return _Scored(unreadable=f"{pred_path}: cannot score ({type(error).__name__}: {error})")


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
        self._start_pool()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _start_pool(self) -> None:
        if self.workers > 1:
            # an executor (not multiprocessing.Pool) fails loudly if a worker dies instead of
            # hanging while it restarts workers
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_pool_context())

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
        """Score ``pairs`` in order into ``result`` (scores, curves, resized, unreadable, too
        small). When a worker process dies (killed, or out of memory), nothing of the dataset is
        kept: ``result.failure`` says so, and the pool is restarted for the next dataset."""
        try:
            outputs = self._score(pairs, result.dataset, progress)
        except BrokenProcessPool:
            self.close()
            self._start_pool()
            result.failure = WORKER_DIED
            result.scores = reduce_quantities([], self.metrics)
            return result
        records = [output.record for output in outputs if output.record is not None]
        result.resized += [output.resized for output in outputs if output.resized]
        result.unreadable += [output.unreadable for output in outputs if output.unreadable]
        result.too_small += [output.too_small for output in outputs if output.too_small]
        result.scored = len(records)
        result.scores = reduce_quantities(records, self.metrics)
        if self.curves and records:
            result.curves = dataset_curves(records)
        return result

    def _score(self, pairs: Sequence[Pair], dataset: str, progress: bool) -> list[_Scored]:
        """Every pair's :class:`_Scored`, in order (BrokenProcessPool when a worker dies)."""
        chunks = _chunks([(str(p.pred), str(p.gt)) for p in pairs], self.workers)
        tasks = [(chunk, self.needed) for chunk in chunks]
        if self._pool is not None:
            outputs = self._pool.map(_score_chunk, tasks)
        else:
            outputs = map(_score_chunk, tasks)
        scored: list[_Scored] = []
        with tqdm(
            total=len(pairs), desc=dataset, unit="map", disable=not progress, leave=False
        ) as bar:
            for output in outputs:
                scored += output
                bar.update(len(output))
        return scored


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

    Checks ``eval_cfg["result_path"]`` first (:class:`ResultFolderError` before any scoring when
    it cannot hold the tables) and deletes the temporary files a killed earlier run left there.
    Then per dataset: logs a summary, logs the markdown table and writes it (and with ``stat``
    the curves and their plots). A dataset whose scores are lost (a worker process died) or
    could not be saved (the scores are logged all the same) has ``failure`` set, which is not
    logged: the caller reports it; the other datasets go on.
    """
    metrics = check_metrics(eval_cfg["metrics"])
    result_path = prepare_result_folder(eval_cfg["result_path"])
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
            if result.scored:
                _save(result_path, method, metrics, result, stat)
    return results


def _save(
    result_path: Path, method: str, metrics: list[str], result: DatasetResult, stat: bool
) -> None:
    """Log ``result``'s table and write it (and the curves); a failure goes to
    ``result.failure`` after the scores are logged."""
    shown: list[str] = []

    def show(table: str) -> None:
        logger.info(table)
        shown.append(table)

    dataset = result.dataset
    try:
        update_results_table(result_path, dataset, method, metrics, result.scores, show=show)
    except (OSError, ValueError) as error:
        if not shown:  # the table could not even be read: this method's row alone
            show(markdown_table(dataset, metrics, [method_row(method, metrics, result.scores)]))
        result.failure = (
            write_problem(table_path(result_path, dataset), error)
            if isinstance(error, OSError)
            else f"the scores are printed above but not saved: {error}"
        )
        return
    if stat and result.curves is not None:
        try:
            save_curves(result_path, dataset, method, result.curves)
            plot = plot_curves(result_path, dataset)
        except OSError as error:
            result.failure = write_problem(curves_folder(result_path, dataset), error)
            return
        logger.info(f"[{dataset}] curves: {plot}")
