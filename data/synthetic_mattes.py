"""Photos composited with soft, known alpha mattes: ground truth for foreground colour estimation.

    sample = matting_sample(skimage.data.chelsea(), skimage.data.coffee(), seed=0)
    sample.image          # RGB uint8: round(α·F + (1 − α)·B), what a camera would have seen
    sample.alpha          # float32 (H, W) in [0, 1]
    sample.foreground     # RGB uint8 F, the true foreground colour (known everywhere)

The matte is an ellipse with a Gaussian-blurred edge (defocus, anti-aliasing) and hair-like
strands growing out of it: anti-aliased curved lines of 1 px, each with its own opacity (hair,
fur). The foreground is the photo where the object is opaque (α ≥ 0.98) and, in its soft
fringe and strands, the colour of the nearest opaque pixel, lightly smoothed: the colour of an
edge or a hair continues the object's, as in a real photo (a texture behind a transparent
pixel would be invisible, so it could not be the truth of any estimate). The background is
another photo, resized to the foreground's size. Deterministic for a seed.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

OPAQUE = 0.98  # alpha from which the foreground is the photo itself
_SUBPIXEL = 4  # cv2 drawing shift: strand points in 1/16 px


class MattingSample(NamedTuple):
    """A composite with its truth: ``image`` = round(α·``foreground`` + (1 − α)·``background``)."""

    image: np.ndarray
    alpha: np.ndarray
    foreground: np.ndarray
    background: np.ndarray


def soft_matte(
    height: int, width: int, rng: np.random.Generator, edge_sigma: float = 2.0, strands: int = 80
) -> np.ndarray:
    """An ellipse with a blurred edge (Gaussian σ ``edge_sigma`` px) and ``strands`` hair-like
    strands of random length, curl and opacity growing outwards; float32 (H, W) in [0, 1]."""
    core = np.zeros((height, width), np.uint8)
    centre = np.array([width / 2, height / 2])
    axes = (int(width * rng.uniform(0.22, 0.3)), int(height * rng.uniform(0.28, 0.36)))
    cv2.ellipse(core, (int(centre[0]), int(centre[1])), axes, 0, 0, 360, 255, -1)
    alpha = cv2.GaussianBlur(core.astype(np.float32) / 255, (0, 0), edge_sigma)
    contours, _ = cv2.findContours(core, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = contours[0][:, 0, :].astype(np.float64)
    side = min(height, width)
    for _ in range(strands):
        root = outline[rng.integers(len(outline))]
        direction = root - centre
        angle = float(np.arctan2(direction[1], direction[0]))
        step = rng.uniform(0.04, 0.12) * side / 12
        point = root - 4 * np.array([np.cos(angle), np.sin(angle)])  # from inside the edge
        points = [point]
        for _ in range(12):
            angle += rng.normal(0, 0.15)
            point = point + step * np.array([np.cos(angle), np.sin(angle)])
            points.append(point)
        layer = np.zeros((height, width), np.float32)
        line = np.round(np.array(points) * (1 << _SUBPIXEL)).astype(np.int32)
        opacity = float(rng.uniform(0.4, 1.0))
        cv2.polylines(layer, [line], False, opacity, 1, cv2.LINE_AA, _SUBPIXEL)
        np.maximum(alpha, layer, out=alpha)
    return np.clip(alpha, 0, 1)


def true_foreground(photo: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The photo where α ≥ :data:`OPAQUE`, elsewhere the colour of the nearest such pixel
    smoothed (Gaussian σ 2 px); RGB uint8."""
    opaque = alpha >= OPAQUE
    if not opaque.any():
        raise ValueError("the matte has no opaque pixel to take the foreground colour from")
    # distanceTransform measures to the nearest zero pixel: make the opaque pixels the zeros.
    _, labels = cv2.distanceTransformWithLabels(
        (~opaque).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    colour_of = np.zeros((labels.max() + 1, 3), np.float32)
    colour_of[labels[opaque]] = photo[opaque]
    extended = cv2.GaussianBlur(colour_of[labels], (0, 0), 2)
    out = np.where(opaque[..., None], photo.astype(np.float32), extended)
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def matting_sample(
    photo: np.ndarray,
    background: np.ndarray,
    seed: int = 0,
    edge_sigma: float = 2.0,
    strands: int = 80,
) -> MattingSample:
    """``photo`` (RGB uint8) as a foreground over ``background`` (resized, bilinear) under a
    :func:`soft_matte`; see the module docstring."""
    height, width = photo.shape[:2]
    rng = np.random.default_rng(seed)
    alpha = soft_matte(height, width, rng, edge_sigma, strands)
    foreground = true_foreground(photo, alpha)
    backdrop = cv2.resize(background, (width, height), interpolation=cv2.INTER_LINEAR)
    a = alpha[..., None]
    image = a * foreground.astype(np.float32) + (1 - a) * backdrop.astype(np.float32)
    return MattingSample(
        np.rint(np.clip(image, 0, 255)).astype(np.uint8), alpha, foreground, backdrop
    )
