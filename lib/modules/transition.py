"""Transition: the morphological band of a saliency map used by pyramid blending (spec §8)."""

from __future__ import annotations

import cv2
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Transition(nn.Module):
    """``(dilate(σ(x)) − erode(σ(x))) > 0.5`` with an OpenCV elliptic k×k element.

    Borders are geodesic (out-of-image pixels are ignored), which max-pooling with -inf
    padding gives exactly. The element is applied as a union of per-row max pools: row r of
    the ellipse covers columns c−h_r..c+h_r, so each row is a 1×(2h_r+1) max over a shifted
    copy. Nothing here is state: the published state dict has no entry for it.

    Kornia's morphology (what the authors used) would give the same numbers but adds a
    dependency for one operation; max pooling keeps it exact and fast.

    ``threshold`` is the architecture's 0.5. It is a plain attribute only so that numerical
    checks can move it a little to see which outputs depend on a band value that sits within
    float rounding of 0.5 (utils/export/band_ties.py); nothing else changes it.
    """

    def __init__(self, k: int):
        super().__init__()
        element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        centre = k // 2
        self.rows = [(r - centre, int(element[r].sum()) // 2) for r in range(k)]
        self.threshold = 0.5

    def _dilate(self, x: Tensor) -> Tensor:
        h = x.shape[-2]
        out = torch.full_like(x, float("-inf"))
        for dy, half in self.rows:
            row = F.max_pool2d(
                F.pad(x, (half, half, 0, 0), value=float("-inf")), (1, 2 * half + 1), stride=1
            )
            # out[y] = max(out[y], row[y + dy]) where y + dy is inside the image
            src_lo, src_hi = max(dy, 0), min(h + dy, h)
            if src_lo >= src_hi:
                continue
            dst = slice(src_lo - dy, src_hi - dy)
            out[..., dst, :] = torch.maximum(out[..., dst, :], row[..., src_lo:src_hi, :])
        return out

    def band(self, x: Tensor) -> Tensor:
        """``dilate(σ(x)) − erode(σ(x))``, the value the mask thresholds."""
        s = torch.sigmoid(x)
        return self._dilate(s) + self._dilate(-s)  # erode(s) = −dilate(−s)

    def forward(self, x: Tensor) -> Tensor:
        return (self.band(x) > self.threshold).float()
