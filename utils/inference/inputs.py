"""What the predictors accept as an image (a PIL image of any mode, or an RGB / gray uint8 array)
and how they group prepared inputs into batches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def as_rgb_pil(image: Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image from a PIL image (any mode) or an RGB / gray uint8 array."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image array, got {array.dtype}")
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an RGB image array (H, W, 3), got shape {array.shape}")
    return Image.fromarray(np.ascontiguousarray(array))


def same_size_groups(items: Sequence) -> list[list[int]]:
    """Indices of ``items`` grouped by their ``key`` (equal input sizes: one batch each), each
    group in order, groups in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(item.key, []).append(index)
    return list(groups.values())
