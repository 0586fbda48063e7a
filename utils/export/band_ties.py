"""PyTorch's outputs with the band masks' float ties taken both ways.

Pyramid blending (architecture §10.2) gates each Laplacian with a binary mask, ``(dilate(σ(d)) −
erode(σ(d))) > 0.5`` (§8). Where a band value lies within float rounding of 0.5, two correct
float implementations (PyTorch's kernels, ONNX Runtime's, OpenVINO's) may take the mask either
way, and the pixels under that mask then differ by much more than the rounding. So an exported
graph is compared with the *range* of PyTorch's outputs over the band threshold moved by
``−margin``, 0 and ``+margin``: where no band value lies within ``margin`` of 0.5 the three runs
are identical and the comparison is the plain one; where one does, either resolution is PyTorch's
own answer. A flip inside the margin changes the Laplacian gated by that mask and, through the
coarser levels, masks further down, so the pixels that depend on a tie can be a few percent of
the map even when the band values within the margin are a handful.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from torch import nn

from lib.modules.transition import Transition

__all__ = ["BAND_MARGIN", "band_threshold", "bracket_ties"]

# Band values this close to 0.5 are float ties: 10x the largest difference measured between
# PyTorch's band values and ONNX Runtime's or OpenVINO's (1e-4, tiny Res2Net, real photos).
BAND_MARGIN = 1e-3


@contextmanager
def band_threshold(model: nn.Module, threshold: float) -> Iterator[None]:
    """Within the block every Transition of ``model`` thresholds its band at ``threshold``."""
    transitions = [m for m in model.modules() if isinstance(m, Transition)]
    saved = [m.threshold for m in transitions]
    for m in transitions:
        m.threshold = threshold
    try:
        yield
    finally:
        for m, value in zip(transitions, saved, strict=True):
            m.threshold = value


def bracket_ties(model: nn.Module, run: Callable[[], np.ndarray], margin: float) -> np.ndarray:
    """``run()`` (which runs ``model``) with the band threshold at 0.5, 0.5 − ``margin`` and
    0.5 + ``margin``, stacked on a new first axis; only the first when no band value of that
    run lies within ``margin`` of 0.5 (or ``margin`` is 0)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    ties = []

    def count_ties(module: Transition, args: tuple, output) -> None:
        ties.append(int(((module.band(args[0]) - 0.5).abs() <= margin).sum()))

    transitions = [m for m in model.modules() if isinstance(m, Transition)]
    handles = [m.register_forward_hook(count_ties) for m in transitions] if margin else []
    try:
        outputs = [np.asarray(run())]
    finally:
        for handle in handles:
            handle.remove()
    if sum(ties):
        for threshold in (0.5 - margin, 0.5 + margin):
            with band_threshold(model, threshold):
                outputs.append(np.asarray(run()))
    return np.stack(outputs)
