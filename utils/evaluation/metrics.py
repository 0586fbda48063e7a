"""Saliency metrics (architecture spec §17): per-image quantities and their dataset reduction.

The numbers come from pysodmetrics (``py_sod_metrics``), called per image through an explicit
table; nothing is looked up by name at run time. Work is split in two so that images can be
scored in parallel and still give bit-for-bit the serial numbers:

* :func:`image_quantities` turns one (prediction, mask) pair into per-image values and 256-point
  curves (what ``Smeasure``/``MAE``/``Fmeasure``/``Emeasure``/``WeightedFmeasure`` keep per
  ``step``), normalising the pair once instead of once per metric class;
* :func:`reduce_quantities` averages them over the dataset in image order exactly as the
  classes' ``get_results`` do (``np.mean`` of a float64 stack), then takes max / mean of the
  dataset-mean curves.

Metric names are the ones InSPyReNet configs list: ``Sm, mae, adpEm, maxEm, avgEm, adpFm, maxFm,
avgFm, wFm, mBA``, plus ``maxF_pr``: the other common max-F convention.

Two max-F conventions (β² = 0.3, 256 thresholds ``uint8(pred·255) >= 255 - t`` in both):

* ``maxFm`` (pysodmetrics, the authors' evaluation): F is computed per image at each threshold,
  the per-image F curves are averaged over the dataset, and the maximum is taken;
* ``maxF_pr`` (MATLAB-style toolboxes' "maxF"): precision and recall are averaged over the
  dataset first, F is computed from the mean precision and mean recall curves, and the maximum
  is taken. It is usually a little higher; the two are not comparable across papers.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import py_sod_metrics
from py_sod_metrics.utils import prepare_data

METRICS = (
    "Sm",
    "mae",
    "adpEm",
    "maxEm",
    "avgEm",
    "adpFm",
    "maxFm",
    "avgFm",
    "wFm",
    "mBA",
    "maxF_pr",
)

# beta² of every F-measure here except wFm (pysodmetrics' ``Fmeasure(beta=0.3)`` means β²).
BETA2 = 0.3

# metric -> the per-image quantity it is reduced from
_QUANTITY_OF = {
    "Sm": "sm",
    "mae": "mae",
    "adpEm": "adp_em",
    "maxEm": "em_curve",
    "avgEm": "em_curve",
    "adpFm": "adp_fm",
    "maxFm": "fm_curve",
    "avgFm": "fm_curve",
    "wFm": "wfm",
    "mBA": "mba",
    "maxF_pr": "fm_curve",  # cal_pr gives the per-image precision and recall with the F curve
}

# Curve index t counts pixels with uint8(pred * 255) >= 255 - t (pysodmetrics' flipped cumsum).
CURVE_THRESHOLDS = np.arange(255, -1, -1, dtype=np.float64) / 255.0

# The smallest mask side pysodmetrics can score: its E-measure divides by (pixels - 1), so a 1x1
# mask gives 1/eps (maxEm 4.5e15), and its S-measure splits the mask into quadrants at the
# foreground's centroid, which leaves an empty quadrant (NaN) in a single row or column.
MIN_MASK_SIDE = 2

with warnings.catch_warnings():  # pysodmetrics >= 1.5 marks Fmeasure as "to be replaced"
    warnings.simplefilter("ignore")
    _FMEASURE = py_sod_metrics.Fmeasure(beta=BETA2)
_SMEASURE = py_sod_metrics.Smeasure(alpha=0.5)
_EMEASURE = py_sod_metrics.Emeasure()
_WFMEASURE = py_sod_metrics.WeightedFmeasure(beta=1)
_MAE = py_sod_metrics.MAE()


def check_metrics(names: Iterable[str]) -> list[str]:
    """Return ``names`` as a list after checking each is a known metric (ValueError otherwise)."""
    names = list(names)
    for name in names:
        if name not in _QUANTITY_OF:
            close = difflib.get_close_matches(name, METRICS, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown metric {name!r}{hint}; known: {', '.join(METRICS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"metric listed twice in {names}")
    return names


def quantities_for(metrics: Sequence[str], curves: bool = False) -> frozenset[str]:
    """Per-image quantities needed for ``metrics`` (plus the PR/E curves when ``curves``)."""
    needed = {_QUANTITY_OF[name] for name in check_metrics(metrics)}
    if curves:
        needed |= {"fm_curve", "em_curve"}
    return frozenset(needed)


def size_problem(shape: tuple[int, ...]) -> str | None:
    """Why a mask of ``shape`` (H, W) is too small to score, in a few words, or None."""
    height, width = shape[:2]
    if min(height, width) >= MIN_MASK_SIDE:
        return None
    return f"{width}x{height} pixels, at least {MIN_MASK_SIDE}x{MIN_MASK_SIDE} needed"


def image_quantities(pred: np.ndarray, gt: np.ndarray, needed: Iterable[str]) -> dict:
    """Per-image values for one pair of uint8 (H, W) arrays of the same size.

    ``pred`` becomes ``pred/255`` min-max normalised and ``gt`` becomes ``gt > 128``
    (pysodmetrics' ``prepare_data``). Returns a dict with the requested keys among ``sm``, ``mae``,
    ``adp_fm``, ``precision``/``recall``/``fm_curve``, ``adp_em``, ``em_curve``, ``wfm``, ``mba``.
    """
    needed = frozenset(needed)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and mask {gt.shape} differ in size")
    pred, gt = prepare_data(pred, gt)
    out: dict = {}
    if "sm" in needed:
        out["sm"] = float(_SMEASURE.cal_sm(pred, gt))
    if "mae" in needed:
        out["mae"] = float(_MAE.cal_mae(pred, gt))
    if "adp_fm" in needed:
        out["adp_fm"] = float(_FMEASURE.cal_adaptive_fm(pred, gt))
    if "fm_curve" in needed:
        out["precision"], out["recall"], out["fm_curve"] = _FMEASURE.cal_pr(pred, gt)
    if "adp_em" in needed or "em_curve" in needed:
        # the two attributes Emeasure.step sets before its cal_* methods run
        _EMEASURE.gt_fg_numel = np.count_nonzero(gt)
        _EMEASURE.gt_size = gt.shape[0] * gt.shape[1]
        if "adp_em" in needed:
            out["adp_em"] = float(_EMEASURE.cal_adaptive_em(pred, gt))
        if "em_curve" in needed:
            out["em_curve"] = _EMEASURE.cal_changeable_em(pred, gt)
    if "wfm" in needed:
        # WeightedFmeasure.step scores an all-background mask as 0 (spec §17)
        out["wfm"] = float(_WFMEASURE.cal_wfm(pred, gt)) if gt.any() else 0.0
    if "mba" in needed:
        out["mba"] = boundary_accuracy(pred, gt)
    return out


def boundary_accuracy(pred: np.ndarray, gt: np.ndarray, steps: int = 5) -> float:
    """Mean boundary accuracy of one image (spec §17 ``mBA``; not part of pysodmetrics).

    For ``steps`` radii r_i = 1 + int((R - 1) / steps * i) with R = (w + h) / 300, the boundary
    band is the morphological gradient of the mask with an elliptic (2r+1)-square kernel; the
    score is the fraction of band pixels where ``pred > 0.5`` agrees with the mask, averaged over
    the radii. A mask without a boundary (empty or full) has no band: NaN, left out of the mean.
    """
    height, width = gt.shape
    max_radius = (width + height) / 300
    mask = gt.astype(np.uint8)
    binary = pred > 0.5
    accuracies = []
    for step in range(steps):
        radius = 1 + int((max_radius - 1) / steps * step)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        band = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, kernel) > 0
        pixels = np.count_nonzero(band)
        if pixels:
            accuracies.append(np.count_nonzero(binary[band] == gt[band]) / pixels)
    return float(np.mean(accuracies)) if accuracies else float("nan")


def _mean(values: Sequence) -> np.ndarray:
    """The reduction of pysodmetrics' ``get_results``: mean of a float64 stack over images."""
    return np.mean(np.array(values, dtype=np.float64), axis=0)


def reduce_quantities(records: Sequence[dict], metrics: Sequence[str]) -> dict[str, float]:
    """Dataset values of ``metrics`` from per-image records given in a fixed image order."""
    if not records:
        return {name: float("nan") for name in metrics}
    scores: dict[str, float] = {}
    curves: dict[str, np.ndarray] = {}
    for name in metrics:
        quantity = _QUANTITY_OF[name]
        if name == "maxF_pr":
            precision = _mean([record["precision"] for record in records])
            recall = _mean([record["recall"] for record in records])
            scores[name] = float(f_measure(precision, recall).max())
        elif quantity in ("em_curve", "fm_curve"):
            if quantity not in curves:
                curves[quantity] = _mean([record[quantity] for record in records])
            curve = curves[quantity]
            scores[name] = float(curve.max() if name.startswith("max") else curve.mean())
        elif quantity == "mba":
            values = [record["mba"] for record in records if not np.isnan(record["mba"])]
            scores[name] = float(_mean(values)) if values else float("nan")
        else:
            scores[name] = float(_mean([record[quantity] for record in records]))
    return scores


def f_measure(precision: np.ndarray, recall: np.ndarray, beta2: float = BETA2) -> np.ndarray:
    """F = (1+β²)·P·R / (β²·P + R), 0 where P·R is 0: the formula of pysodmetrics'
    ``Fmeasure.cal_pr``, which applies it only inside that per-image method (so it cannot be
    called on dataset-mean curves)."""
    numerator = (1 + beta2) * precision * recall
    denominator = np.where(numerator == 0, 1, beta2 * precision + recall)
    return numerator / denominator


def dataset_curves(records: Sequence[dict]) -> dict[str, np.ndarray]:
    """Dataset-mean precision, recall, F-measure and E-measure curves (256 thresholds each),
    and ``fmeasure_pr``: F of the mean precision and recall curves (``maxF_pr`` is its max)."""
    precision = _mean([record["precision"] for record in records])
    recall = _mean([record["recall"] for record in records])
    return {
        "threshold": CURVE_THRESHOLDS.copy(),
        "precision": precision,
        "recall": recall,
        "fmeasure": _mean([record["fm_curve"] for record in records]),
        "fmeasure_pr": f_measure(precision, recall),
        "emeasure": _mean([record["em_curve"] for record in records]),
    }
