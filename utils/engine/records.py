"""What a run records: the per-step log (CSV, TensorBoard) and debug pyramid tiles.

``<checkpoint_dir>/train_log.csv`` has one row per optimiser step::

    epoch,step,iteration,loss,lr_backbone,lr_head
    1,1,1,7.93211,1.000e-06,1.000e-05

``epoch`` and ``step`` count from 1 (``step`` within the epoch); ``iteration`` is the global
step; the learning rates are those the step used. On resume, rows written after the resumed
checkpoint (by a killed run) are dropped, so the file always describes one consistent run.
``val_log.csv`` (validation, utils.engine.validation) has one row per validation and set::

    epoch,set,role,Sm,mae
    0,Synth-VAL,target,0.43519...,0.1421...

with the scores at full precision (``repr`` of the float, what Eval computes); epoch 0 is the
validation before the first step.
TensorBoard event files go to ``<checkpoint_dir>/tensorboard/`` when the ``tensorboard``
package is installed (``pip install tensorboard``); nothing changes when it is not.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from utils.io.images import write_png_atomic

LOG_NAME = "train_log.csv"
COLUMNS = ("epoch", "step", "iteration", "loss", "lr_backbone", "lr_head")
VAL_LOG_NAME = "val_log.csv"
VAL_COLUMNS = ("epoch", "set", "role")  # then one column per metric


def _tensorboard_writer(folder: Path):
    """A SummaryWriter, or None when tensorboard is not installed (an optional extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(folder))


def _reopen_csv(path: Path, columns: Sequence[str], keep) -> tuple[Any, csv.DictWriter]:
    """Rewrite ``path`` with the header ``columns`` and its existing rows for which
    ``keep(row)`` is true (none when ``keep`` is None); return the open file and its writer."""
    rows = []
    if keep is not None and path.is_file():
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.DictReader(handle) if keep(row)]
    file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
    writer = csv.DictWriter(file, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    file.flush()
    return file, writer


class _CsvLog:
    """A CSV file in ``directory`` reopened for appending (rows whose ``key`` column is above
    ``resume`` are dropped; None: start afresh) and the folder's TensorBoard writer, if any."""

    def __init__(
        self,
        directory: str | os.PathLike,
        name: str,
        columns: Sequence[str],
        key: str,
        resume: int | None,
    ):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / name
        keep = None if resume is None else (lambda row: int(row[key]) <= resume)
        self._file, self._writer = _reopen_csv(self.path, columns, keep)
        self._board = _tensorboard_writer(directory / "tensorboard")

    def close(self) -> None:
        """Flush and close the CSV file and the TensorBoard writer."""
        self._file.close()
        if self._board is not None:
            self._board.close()


class TrainLog(_CsvLog):
    """Append-only step log; ``resume_iteration`` keeps only rows up to that iteration."""

    def __init__(self, directory: str | os.PathLike, resume_iteration: int | None = None):
        super().__init__(directory, LOG_NAME, COLUMNS, "iteration", resume_iteration)

    def step(self, epoch: int, step: int, iteration: int, loss: float, lrs: Sequence[float]):
        """Record one optimiser step (``lrs``: the backbone's and the head's learning rate)."""
        self._writer.writerow(
            {
                "epoch": epoch,
                "step": step,
                "iteration": iteration,
                "loss": f"{loss:.6g}",
                "lr_backbone": f"{lrs[0]:.4e}",
                "lr_head": f"{lrs[-1]:.4e}",
            }
        )
        self._file.flush()
        if self._board is not None:
            self._board.add_scalar("train/loss", loss, iteration)
            self._board.add_scalar("train/lr_backbone", lrs[0], iteration)
            self._board.add_scalar("train/lr_head", lrs[-1], iteration)


class ValidationLog(_CsvLog):
    """``val_log.csv``: one row per validation and set (``epoch`` 0: before training), the
    metrics with 6 significant digits... see VAL_COLUMNS; TensorBoard ``val/<set>/<metric>``.
    ``resume_epoch``: keep the rows up to that epoch (a resumed run), None: start afresh."""

    def __init__(
        self, directory: str | os.PathLike, metrics: Sequence[str], resume_epoch: int | None
    ):
        columns = [*VAL_COLUMNS, *metrics]
        super().__init__(directory, VAL_LOG_NAME, columns, "epoch", resume_epoch)

    def add(self, epoch: int, name: str, role: str, scores: Mapping[str, float]) -> None:
        """Record the ``scores`` of set ``name`` (role target or general) after ``epoch``."""
        row = {"epoch": epoch, "set": name, "role": role}
        row.update({metric: repr(float(value)) for metric, value in scores.items()})
        self._writer.writerow(row)
        self._file.flush()
        if self._board is not None:
            for metric, value in scores.items():
                self._board.add_scalar(f"val/{name}/{metric}", value, epoch)


def read_log(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a ``train_log.csv``."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _to_gray(tile: Tensor, size: tuple[int, int]) -> np.ndarray:
    """One (H, W) map rescaled to 0..255 and resized (nearest) to ``size``."""
    tile = tile.detach().float()
    low, high = tile.min(), tile.max()
    tile = (tile - low) / (high - low + 1e-8)
    tile = F.interpolate(tile[None, None], size=size, mode="nearest")[0, 0]
    return (tile.cpu().numpy() * 255).astype(np.uint8)


def save_debug_tiles(
    outputs: dict, path: str | os.PathLike, keys: Sequence[str] = ("saliency", "laplacian")
) -> None:
    """A PNG of the first sample's pyramids: one row per key in ``keys`` (``saliency``:
    σ of [d3, d2, d1, d0]; ``laplacian``: [p2, p1, p0], min–max scaled), coarse to fine, each
    map resized to the input size; the ground truth ends the saliency row when present."""
    size = tuple(outputs["saliency"][-1].shape[-2:])
    rows = []
    for key in keys:
        maps = [level[0, 0] for level in outputs[key]]
        if key == "saliency":
            maps = [torch.sigmoid(level.float()) for level in maps]
            if isinstance(outputs.get("gt"), Tensor):
                maps.append(outputs["gt"][0, 0])
        rows.append([_to_gray(level, size) for level in maps])
    width = max(len(row) for row in rows)
    blank = np.zeros(size, np.uint8)
    grid = [np.concatenate(row + [blank] * (width - len(row)), axis=1) for row in rows]
    write_png_atomic(path, np.concatenate(grid, axis=0))
