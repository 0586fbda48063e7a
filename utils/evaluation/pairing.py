"""Pair predictions with masks by file stem (``<pred_root>/<dataset>/<stem>.png`` with
``<gt_root>/<dataset>/masks/<stem>.*``), in natural order of the mask stems."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from utils.evaluation.result import DatasetResult
from utils.io.files import is_image_file, natural_key


@dataclass
class Pair:
    """One prediction and its mask."""

    stem: str
    pred: Path
    gt: Path


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
