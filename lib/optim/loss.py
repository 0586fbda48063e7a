"""Training loss of InSPyReNet (spec §15.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lib.pyramid import ImagePyramid

CONSISTENCY_WEIGHT = 1e-4


def weighted_bce_iou(logits: Tensor, mask: Tensor) -> Tensor:
    """Boundary-weighted BCE plus per-pixel IoU, both averaged over every element.

    BCE is PyTorch's on probabilities (log clamped at −100), not on logits, and is not
    normalised by the weights; the IoU term is per pixel, not per image (checklist 18).
    """
    weight = 1 + 5 * torch.abs(F.avg_pool2d(mask, 31, stride=1, padding=15) - mask)
    prob = torch.sigmoid(logits)
    bce = F.binary_cross_entropy(prob, mask, reduction="none")
    inter = prob * mask
    iou = 1 - (inter + 1) / (prob + mask - inter + 1)
    return (weight * bce).mean() + iou.mean()


def pyramid_loss(saliency: list[Tensor], gt: Tensor, pyramid: ImagePyramid) -> Tensor:
    """Loss over the saliency pyramid [d3, d2, d1, d0] against a Gaussian GT pyramid.

    Every map is nearest-upsampled to the input size first. A small L1 term ties each level
    to the (detached) reduced finer level, on logits.
    """
    size = gt.shape[-2:]

    def up(t: Tensor) -> Tensor:
        return F.interpolate(t, size=size, mode="nearest")

    targets = [gt]
    for _ in range(3):
        targets.append(pyramid.reduce(targets[-1]))
    targets = targets[::-1]  # [y3, y2, y1, y]

    consistency = sum(
        F.l1_loss(up(coarse), up(pyramid.reduce(fine)).detach())
        for coarse, fine in zip(saliency[:-1], saliency[1:], strict=True)
    )
    sod = sum(
        weighted_bce_iou(up(level), up(target))
        for level, target in zip(saliency, targets, strict=True)
    )
    return CONSISTENCY_WEIGHT * consistency + sod
