"""Evaluate saliency maps against masks: pairing, parallel scoring, result tables and curves.

Layout: masks in ``<gt_root>/<dataset>/masks/`` (or directly in ``<gt_root>/<dataset>/``),
predictions in ``<pred_root>/<dataset>/<mask stem>.png``.

* Predictions and masks are paired by file stem. Missing and extra predictions are reported (count
  and first names) and the rest is scored. A prediction whose size differs from its mask is
  resized to the mask (OpenCV bilinear, as the standard toolkits do) and counted. A file that
  cannot be read is reported on one line and left out; nothing crashes the run.
* ``workers > 1`` scores chunks of images in worker processes; every worker returns per-image
  quantities (utils.metrics) and the parent reduces them in image order, so the numbers are
  bit-for-bit those of ``workers=1``.
* ``<result_path>/result_<dataset>.csv`` keeps one row per method across runs (re-running a method
  replaces its row); ``result_<dataset>.md`` is the same table in markdown. With curves on,
  ``<result_path>/curves/<dataset>/<method>.npz`` holds the PR and F/E-vs-threshold curves and
  ``<result_path>/curves/<dataset>.png`` plots every method of the dataset.
"""

from __future__ import annotations

import csv
import io
import math
import multiprocessing
import os
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from utils.image_io import (
    ImageReadError,
    is_image_file,
    read_mask,
    remove_stale_temporaries,
    write_bytes_atomic,
)
from utils.metrics import (
    check_metrics,
    dataset_curves,
    image_quantities,
    quantities_for,
    reduce_quantities,
)

SHOWN_NAMES = 5  # names listed in a one-line summary of missing / extra files


@dataclass
class Pair:
    """One prediction and its mask."""

    stem: str
    pred: Path
    gt: Path


@dataclass
class DatasetResult:
    """Scores of one method on one dataset, with what went wrong on the way."""

    dataset: str
    scores: dict[str, float] = field(default_factory=dict)
    scored: int = 0
    missing: list[str] = field(default_factory=list)  # mask stems without a prediction
    extra: list[str] = field(default_factory=list)  # prediction stems without a mask
    resized: list[str] = field(default_factory=list)  # one message per resized prediction
    unreadable: list[str] = field(default_factory=list)  # one message per unusable file
    problems: list[str] = field(default_factory=list)  # dataset-level problems
    curves: dict[str, np.ndarray] | None = None

    def report(self, verbose: bool = False) -> list[str]:
        """Human-readable lines: a summary, then every unreadable file (and more if verbose)."""
        parts = [f"{self.scored} scored"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing predictions ({_names(self.missing)})")
        if self.extra:
            parts.append(f"{len(self.extra)} extra predictions ({_names(self.extra)})")
        if self.resized:
            parts.append(f"{len(self.resized)} predictions resized to their mask size")
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable")
        lines = [f"[{self.dataset}] " + "; ".join(parts)]
        lines += [f"[{self.dataset}] {problem}" for problem in self.problems]
        lines += [f"[{self.dataset}] unreadable: {message}" for message in self.unreadable]
        if verbose:
            lines += [f"[{self.dataset}] resized: {message}" for message in self.resized]
            lines += [f"[{self.dataset}] missing prediction: {stem}" for stem in self.missing]
            lines += [f"[{self.dataset}] extra prediction: {stem}" for stem in self.extra]
        return lines


def _names(stems: Sequence[str]) -> str:
    shown = ", ".join(stems[:SHOWN_NAMES])
    return shown + (", ..." if len(stems) > SHOWN_NAMES else "")


# ------------------------------------------------------------------------------------------------
# pairing


def natural_key(text: str) -> list:
    """Sort key comparing digit runs as integers and text case-insensitively (spec §15.4)."""
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower())
        for part in re.split(r"(\d+)", text)
        if part
    ]


def mask_folder(gt_root: str | os.PathLike, dataset: str) -> Path:
    """``<gt_root>/<dataset>/masks`` when it exists, else ``<gt_root>/<dataset>``."""
    base = Path(gt_root) / dataset
    return base / "masks" if (base / "masks").is_dir() else base


def list_maps(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Image files of ``folder`` by stem, and a message per stem found more than once."""
    by_stem: dict[str, Path] = {}
    duplicates = []
    for path in sorted(folder.iterdir(), key=lambda p: (p.suffix.lower() != ".png", p.name)):
        if path.name.startswith(".") or not path.is_file() or not is_image_file(path):
            continue
        if path.stem in by_stem:
            duplicates.append(f"{path}: same stem as {by_stem[path.stem].name}, ignored")
        else:
            by_stem[path.stem] = path
    return by_stem, duplicates


def pair_by_stem(pred_dir: Path, gt_dir: Path, result: DatasetResult) -> list[Pair]:
    """Pairs in natural order of the mask stems; fills ``result``'s missing/extra/problems."""
    for folder, what in ((gt_dir, "mask"), (pred_dir, "prediction")):
        if not folder.is_dir():
            result.problems.append(f"{what} folder {folder} not found")
    if result.problems:
        return []
    masks, mask_duplicates = list_maps(gt_dir)
    preds, pred_duplicates = list_maps(pred_dir)
    result.problems += mask_duplicates + pred_duplicates
    stems = sorted(masks, key=natural_key)
    result.missing = [stem for stem in stems if stem not in preds]
    result.extra = sorted((stem for stem in preds if stem not in masks), key=natural_key)
    if not masks:
        result.problems.append(f"no masks in {gt_dir}")
    return [Pair(stem, preds[stem], masks[stem]) for stem in stems if stem in preds]


# ------------------------------------------------------------------------------------------------
# scoring (runs in worker processes when workers > 1)


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


# ------------------------------------------------------------------------------------------------
# result tables


def _format_csv(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def update_results_table(
    result_path: str | os.PathLike,
    dataset: str,
    method: str,
    metrics: Sequence[str],
    scores: dict[str, float],
) -> str:
    """Put ``method``'s row into ``result_<dataset>.csv`` (replacing an older one) and rewrite
    ``result_<dataset>.md``; other methods' rows stay. Returns the markdown table."""
    csv_path = Path(result_path) / f"result_{dataset}.csv"
    columns = list(metrics)
    rows: dict[str, dict[str, str]] = {}
    if csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            old_columns = [name for name in (reader.fieldnames or []) if name != "method"]
            columns += [name for name in old_columns if name not in columns]  # keep old metrics
            for row in reader:
                if row.get("method"):
                    rows[row["method"]] = {key: value or "" for key, value in row.items()}
    rows[method] = {"method": method, **{name: _format_csv(scores[name]) for name in metrics}}

    text = io.StringIO()
    writer = csv.DictWriter(
        text,
        fieldnames=["method", *columns],
        restval="",
        extrasaction="ignore",
        lineterminator="\n",
    )
    writer.writeheader()
    writer.writerows(rows.values())
    write_bytes_atomic(csv_path, text.getvalue().encode("utf-8"))

    table = markdown_table(dataset, columns, list(rows.values()))
    write_bytes_atomic(csv_path.with_suffix(".md"), table.encode("utf-8"))
    return table


def markdown_table(dataset: str, columns: Sequence[str], rows: Sequence[dict[str, str]]) -> str:
    """A markdown table, one row per method, values with 3 decimals."""

    def cell(value: str) -> str:
        try:
            return f"{float(value):.3f}"
        except ValueError:
            return value or "-"

    lines = [
        f"**{dataset}**",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in rows:
        values = [cell(row.get(name, "")) for name in columns]
        lines.append(f"| {row['method']} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# curves


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.+-]", "_", name)


def save_curves(
    result_path: str | os.PathLike, dataset: str, method: str, curves: dict[str, np.ndarray]
) -> Path:
    """Write ``curves`` to ``<result_path>/curves/<dataset>/<method>.npz`` (atomically)."""
    path = Path(result_path) / "curves" / _safe_name(dataset) / f"{_safe_name(method)}.npz"
    buffer = io.BytesIO()
    np.savez(buffer, method=np.array(method), **curves)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def plot_curves(result_path: str | os.PathLike, dataset: str) -> Path | None:
    """Plot every method's saved curves of ``dataset`` into ``<result_path>/curves/<dataset>.png``:
    precision-recall on the left, F-measure against the threshold on the right."""
    # Figure + Agg canvas directly: no pyplot, no global backend switch, works headless.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder = Path(result_path) / "curves" / _safe_name(dataset)
    files = sorted(folder.glob("*.npz"))
    if not files:
        return None
    figure = Figure(figsize=(11, 4.5))
    FigureCanvasAgg(figure)
    pr_axis, fm_axis = figure.subplots(1, 2)
    for file in files:
        with np.load(file) as data:
            label = str(data["method"])
            pr_axis.plot(data["recall"], data["precision"], label=label)
            fm_axis.plot(
                data["threshold"] * 255,
                data["fmeasure"],
                label=f"{label} (max {data['fmeasure'].max():.3f})",
            )
    pr_axis.set(
        xlabel="recall",
        ylabel="precision",
        title=f"{dataset}: precision-recall",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    fm_axis.set(
        xlabel="threshold",
        ylabel="F-measure (beta^2 = 0.3)",
        title=f"{dataset}: F-measure vs threshold",
        xlim=(0, 255),
        ylim=(0, 1.02),
    )
    for axis in (pr_axis, fm_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    path = folder.parent / f"{_safe_name(dataset)}.png"
    write_bytes_atomic(path, buffer.getvalue())
    return path


# ------------------------------------------------------------------------------------------------
# a whole Eval section


def evaluate_config(
    eval_cfg: dict,
    method: str,
    workers: int = 1,
    stat: bool = False,
    verbose: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
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
                log(line)
            if not result.scored:
                continue
            log(update_results_table(result_path, dataset, method, metrics, result.scores))
            if stat and result.curves is not None:
                save_curves(result_path, dataset, method, result.curves)
                plot = plot_curves(result_path, dataset)
                log(f"[{dataset}] curves: {plot}")
    return results
