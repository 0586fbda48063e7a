"""Foreground colour estimation: the colours of a cut-out without the old background's bleed.

    foreground = estimate_foreground(image, alpha, "fast")   # RGB uint8 (H, W, 3)

A pixel of a photo is ``I = α·F + (1 − α)·B``; where the map is soft (hair, fur, motion blur,
glass) ``I`` still holds part of the old background ``B``, so ``I·α + new·(1 − α)`` shows a halo
of the old background. Compositing ``F`` instead removes it. Methods (``--foreground``):

====  ==========================================================================================
fast  approximate fast foreground colour estimation by blur fusion (Forte & Pitié, ICIP 2021,
      "Approximate Fast Foreground Colour Estimation"): passes of box filters at full
      resolution (cv2.blur) from a large box to small ones. The paper runs two (90 then 6 px);
      four, of 45, 15, 6 and 3 px, nearly halve the colour error on bench/cutout_quality.py's
      composites (1.82 against 3.27 grey levels) for two more passes
ml    pymatting's multi-level estimation (``estimate_foreground_ml``; optional dependency,
      ``pip install -r requirements-matting.txt``), the quality option: with a gradient
      weight of 0.1 and 4 full-resolution iterations (pymatting's defaults: 1.0 and 2), which
      halve its colour error on the same composites (1.26 against 2.71) for ~1.8x the time
none  the image itself (the composites of earlier versions, byte for byte)
====  ==========================================================================================

Only soft pixels are estimated: where α is within half a grey level of 1 the foreground is the
image (``I = F`` where α = 1), so opaque pixels never change, and where it is within half a
level of 0 the (invisible) colour stays the image's; a map with no soft pixel (e.g. after
``--threshold``) returns the image unchanged. numpy/OpenCV only (pymatting is imported when
``ml`` is used).
"""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np

FOREGROUND_METHODS = ("fast", "ml", "none")
DEFAULT_FOREGROUND = "fast"
# Blur fusion (Forte & Pitié 2021): box sizes of the two passes (the paper's), and a small
# regulariser of the divisions by the blurred alpha (where no α is near, the mean is ~0).
BLUR_FUSION_SIZES = (45, 15, 6, 3)
PAPER_SIZES = (90, 6)  # the paper's two passes (the bench reports them too)
_EPS = np.float32(1e-5)
# Alpha within half a grey level of 0 or 1 counts as hard: F = I there (an error of at most
# half a level in any composite), so that the faint tails of a predicted map cost nothing.
_HARD = np.float32(0.5 / 255)
_FIXED = 256.0  # fixed-point scale of blur fusion's weighted colours (uint16: 255·256 fits)
_ALPHA_FIXED = 65280.0  # and of its alpha channel (255·256)
_MATTING_HINT = "pip install -r requirements-matting.txt"
# estimate_foreground_ml's settings for ``ml`` (module docstring; bench/cutout_quality.py).
ML_OPTIONS = {"gradient_weight": 0.1, "n_big_iterations": 4}


class ForegroundError(ValueError):
    """An unknown method or a missing optional package; ``str()`` is one line."""


def check_foreground_method(method: str) -> str:
    """``method`` lower-cased when it can run here; ForegroundError (one line) otherwise."""
    name = str(method).strip().lower()
    if name not in FOREGROUND_METHODS:
        raise ForegroundError(
            f"unknown foreground method {method!r}: use one of {', '.join(FOREGROUND_METHODS)}"
        )
    if name == "ml" and importlib.util.find_spec("pymatting") is None:
        raise ForegroundError(f"--foreground ml needs pymatting: {_MATTING_HINT}")
    return name


def is_soft(alpha: np.ndarray) -> np.ndarray:
    """Where the alpha is semi-transparent (more than half a grey level from 0 and from 1)."""
    return (alpha > _HARD) & (alpha < 1 - _HARD)


def _pixels(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The pixels ``index`` (flat) of an (H, W, 4) uint16 array as (N, 4): one uint64 per pixel,
    so that numpy gathers single items (several times faster than rows of four)."""
    return array.view(np.uint64).reshape(-1)[index].view(np.uint16).reshape(-1, 4)


def _scatter(array: np.ndarray, index: np.ndarray, pixels: np.ndarray) -> None:
    """The inverse of :func:`_pixels`: write (N, 4) uint16 ``pixels`` at ``index``."""
    array.view(np.uint64).reshape(-1)[index] = pixels.view(np.uint64).reshape(-1)


def blur_fusion(
    image: np.ndarray, alpha: np.ndarray, sizes: tuple[int, ...] = BLUR_FUSION_SIZES
) -> np.ndarray:
    """Blur-fusion foreground (float32 H×W×3, 0..255) of an RGB image and its alpha in [0, 1].

    Forte, M. & Pitié, F., "Approximate Fast Foreground Colour Estimation", ICIP 2021. F and B
    start as the image; each pass, with a box of side ``size``, replaces them by

        F ← F̄ + α·r,   B ← B̄ + (1 − α)·r,   r = I − α·F̄ − (1 − α)·B̄,

    where F̄ = box(F·α) / box(α) and B̄ = box(B·(1 − α)) / box(1 − α), at full resolution.
    Where α = 1 this gives F = I, and where α = 0 B = I; and F only enters the next pass
    weighted by α, B by 1 − α. So both equal the image except at soft pixels (:func:`is_soft`):
    the full-image work of a pass is the box filters of F·α (with α as a fourth channel) and
    B·(1 − α), and the rest is computed at soft pixels alone (the dense formulas' numbers,
    several times faster). The filtered images are uint16 fixed point (colours in 1/256 of a
    grey level, α in 1/65280), whose box filter OpenCV runs about three times faster than
    float32's; the estimate moves by under a grey level from float64's, 0.02 on average
    (tests/utils/test_foreground.py). Hand-written: pymatting has no blur fusion, and
    OpenCV's box filter is all it needs. Pixels that are not soft keep the image's colour.
    """
    a = np.asarray(alpha, np.float32)
    fg = np.asarray(image).astype(np.float32)
    soft = np.flatnonzero(is_soft(a))
    if soft.size:
        fg.reshape(-1, 3)[soft] = _blur_fusion_at(image, a, soft, sizes)
    return fg


def _blur_fusion_at(
    image: np.ndarray, alpha: np.ndarray, soft: np.ndarray, sizes: tuple[int, ...]
) -> np.ndarray:
    """:func:`blur_fusion`'s foreground at the soft pixels ``soft`` (flat indices): (N, 3)."""
    img = np.asarray(image)
    # F·α | α and B·(1 − α) | 1 − α (unused) in fixed point; F = B = I outside soft pixels.
    # OpenCV builds them: numpy's strided channel writes cost more than the whole blur.
    scaled = cv2.cvtColor(img, cv2.COLOR_RGB2RGBA).astype(np.uint16)  # I | 255
    scaled <<= 8  # x 256: I·256 | 65280
    fg_weighted = cv2.multiply(scaled, cv2.merge([alpha] * 4), dtype=cv2.CV_16U)
    bg_weighted = cv2.subtract(scaled, fg_weighted)
    # (N, 3) operands throughout: numpy broadcasts (N, 1) against (N, 3) several times slower
    a_soft = np.repeat(alpha.reshape(-1)[soft][:, None], 3, axis=1)
    b_soft = 1 - a_soft
    img_soft = img.reshape(-1, 3)[soft].astype(np.float32)
    fg_packed = _pixels(fg_weighted, soft).copy()  # its α stays; colours change every pass
    bg_packed = np.zeros_like(fg_packed)
    fg_soft = img_soft
    for index, size in enumerate(sizes):
        kernel = (size, size)
        fg_sums = _pixels(cv2.blur(fg_weighted, kernel), soft).astype(np.float32)
        bg_sums = _pixels(cv2.blur(bg_weighted, kernel), soft)[:, :3].astype(np.float32)
        blurred_alpha = np.repeat(fg_sums[:, 3:] / _ALPHA_FIXED, 3, axis=1)
        fg_mean = fg_sums[:, :3] / (_FIXED * (blurred_alpha + _EPS))
        bg_mean = bg_sums / (_FIXED * ((1 - blurred_alpha) + _EPS))
        residual = img_soft - a_soft * fg_mean - b_soft * bg_mean
        fg_soft = np.clip(fg_mean + a_soft * residual, 0, 255)
        if index < len(sizes) - 1:  # the next pass filters the new F·α and B·(1 − α)
            bg_soft = np.clip(bg_mean + b_soft * residual, 0, 255)
            fg_packed[:, :3] = np.rint(fg_soft * a_soft * _FIXED)
            bg_packed[:, :3] = np.rint(bg_soft * b_soft * _FIXED)
            _scatter(fg_weighted, soft, fg_packed)
            _scatter(bg_weighted, soft, bg_packed)
    return fg_soft


def _pymatting_ml(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    try:
        from pymatting import estimate_foreground_ml
    except ImportError as error:
        raise ForegroundError(
            f"--foreground ml needs pymatting ({error}): {_MATTING_HINT}"
        ) from None
    fg = estimate_foreground_ml(image.astype(np.float32) / np.float32(255), alpha, **ML_OPTIONS)
    return np.asarray(fg, np.float32) * np.float32(255)


def estimate_foreground(
    image: np.ndarray, alpha: np.ndarray, method: str = DEFAULT_FOREGROUND
) -> np.ndarray:
    """The foreground colours (RGB uint8, the image's shape) of ``image`` (RGB uint8 H×W×3)
    under ``alpha`` (H×W in [0, 1]) by ``method`` (module docstring); rounded to the nearest
    integer, equal to the image where α = 1. ``none`` returns ``image`` itself."""
    method = check_foreground_method(method)
    alpha = np.asarray(alpha, np.float32)
    if method == "none":
        return image
    soft = np.flatnonzero(is_soft(alpha))
    if soft.size == 0:  # a hard mask: F = I wherever it is visible
        return image
    if method == "fast":
        colours = _blur_fusion_at(image, alpha, soft, BLUR_FUSION_SIZES)
    else:
        colours = _pymatting_ml(image, alpha).reshape(-1, 3)[soft]
    out = image.copy()
    out.reshape(-1, 3)[soft] = np.rint(np.clip(colours, 0, 255)).astype(np.uint8)
    return out
