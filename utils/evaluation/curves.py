"""Precision-recall and F-measure curves: saved per method as ``.npz``, plotted per dataset."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np

from utils.io.atomic import write_bytes_atomic


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.+-]", "_", name)


def curves_folder(result_path: str | os.PathLike, dataset: str) -> Path:
    """``<result_path>/curves/<dataset>``: the curves of every method of ``dataset``."""
    return Path(result_path) / "curves" / _safe_name(dataset)


def save_curves(
    result_path: str | os.PathLike, dataset: str, method: str, curves: dict[str, np.ndarray]
) -> Path:
    """Write ``curves`` to ``<result_path>/curves/<dataset>/<method>.npz`` (atomically)."""
    path = curves_folder(result_path, dataset) / f"{_safe_name(method)}.npz"
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

    folder = curves_folder(result_path, dataset)
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
