"""Output types of inference: turn an RGB image and its saliency map into the picture to save.

    kind = parse_output_type("green")            # or "map", "rgba", "[255,0,0]", "bg.jpg" ...
    picture = compose(image, saliency, kind)     # uint8, (H, W) / (H, W, 3) / (H, W, 4)

``image`` is the original RGB uint8 (H, W, 3) and ``saliency`` the predicted map m (H, W) in
[0, 1] at the image's size (architecture §16.4). With ``threshold`` the map becomes a hard mask
(m > threshold); with ``reverse`` foreground and background swap (m -> 1 - m, applied after the
threshold). Every composite shows the *estimated foreground colour* F of the image rather than
the image itself (``utils.inference.foreground``: the old background's bleed removed at soft
edges; ``foreground`` ``fast`` by default, ``ml`` or ``none`` for the raw image, which gives the
outputs of earlier versions byte for byte); ``img`` below stands for F. Types:

==========  =====================================================================================
map         single-channel uint8 floor(m·255) (the spec's "gray×3" is one channel here: the
            same values, a third of the size; it is what Test writes for benchmarks)
rgba        img (the estimated foreground colour) with alpha = floor(m·255)
green       img·m + [120, 255, 155]·(1 − m)
white       img·m + [255, 255, 255]·(1 − m)
[r,g,b]     img·m + [r, g, b]·(1 − m); the text is parsed strictly (three integers 0..255)
blur        img·m + GaussianBlur(image, σ=15)·(1 − m) (the original image blurred;
            cv2.GaussianBlur, kernel size from σ)
overlay     the image (not F: no composite) tinted half-way to [120, 255, 155] where
            m > 0.5, with the outline of that region (Canny edges of m > 0.5, thickened to
            3 px) drawn in the tint colour
<path>      a background image (any format ``utils.io.images.read_image`` reads), resized to
            the image (bilinear): img·m + background·(1 − m)
==========  =====================================================================================

Blends are computed in float32 and cast to uint8 by truncation, as the reference casts them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from utils.inference.foreground import (
    DEFAULT_FOREGROUND,
    check_foreground_method,
    estimate_foreground,
)
from utils.io.files import is_image_file
from utils.io.images import ImageReadError, read_image

GREEN = (120, 255, 155)
WHITE = (255, 255, 255)
BLUR_SIGMA = 15
NAMED_TYPES = ("map", "rgba", "green", "white", "blur", "overlay")
_COLOUR = re.compile(r"^\[\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*\]$")
_HELP = (
    "use map, rgba, green, white, blur, overlay, a colour such as [255,0,0], "
    "or the path of a background image"
)


@dataclass
class OutputType:
    """A parsed ``--type``: ``kind`` is one of :data:`NAMED_TYPES`, ``'colour'`` or ``'image'``.

    ``colour`` holds the RGB background of ``green``/``white``/``colour``; ``background`` the
    RGB uint8 picture of an ``image`` type; ``label`` a file-name-safe name of the type;
    ``foreground`` the foreground colour estimation of its composites (fast, ml, none).
    """

    kind: str
    label: str
    colour: tuple[int, int, int] | None = None
    foreground: str = DEFAULT_FOREGROUND
    background: np.ndarray | None = field(default=None, repr=False)
    _resized: dict = field(default_factory=dict, repr=False)

    @property
    def has_alpha(self) -> bool:
        """True when the output is RGBA (a PNG; a video: WebM VP9 or ProRes 4444, or PNG frames)."""
        return self.kind == "rgba"

    def background_for(self, height: int, width: int) -> np.ndarray:
        """The background image resized (bilinear) to (height, width), cached per size."""
        if self.background is None:
            raise ValueError(f"output type {self.label} has no background image")
        key = (height, width)
        if key not in self._resized:
            self._resized.clear()  # frames of one video share a size: keep one entry
            self._resized[key] = cv2.resize(
                self.background, (width, height), interpolation=cv2.INTER_LINEAR
            )
        return self._resized[key]


def parse_output_type(text: str | os.PathLike, foreground: str = DEFAULT_FOREGROUND) -> OutputType:
    """Parse an output type name, a colour ``[r,g,b]`` or a background image path; its
    composites use the ``foreground`` estimation (``fast``, ``ml`` or ``none``).

    Raises ValueError with one line saying what is wrong (never evaluates the text), also for
    an unknown ``foreground`` or ``ml`` without pymatting installed.
    """
    foreground = check_foreground_method(foreground)
    raw = str(text).strip()
    if raw.lower() in NAMED_TYPES:
        kind = raw.lower()
        colour = {"green": GREEN, "white": WHITE}.get(kind)
        return OutputType(kind, kind, colour=colour, foreground=foreground)
    if raw and raw[0] in "[(" and raw[-1] in "])":  # looks like a colour: parse it strictly
        match = _COLOUR.match(raw)
        values = [int(v) for v in match.groups()] if match else []
        if not match or any(v > 255 for v in values):
            raise ValueError(f"--type {raw!r}: a colour must be [r,g,b] with integers 0..255")
        r, g, b = values
        return OutputType("colour", f"colour_{r}_{g}_{b}", colour=(r, g, b), foreground=foreground)
    path = Path(raw)
    if path.is_file():
        if not is_image_file(path):
            raise ValueError(f"--type {raw}: not an image file; {_HELP}")
        try:
            background = np.asarray(read_image(path))
        except ImageReadError as error:
            raise ValueError(f"--type: background {error}") from None
        label = "bg_" + re.sub(r"[^\w.-]", "_", path.stem)
        return OutputType("image", label, background=background, foreground=foreground)
    raise ValueError(f"unknown output type {raw!r}: {_HELP}")


def to_uint8(saliency: np.ndarray) -> np.ndarray:
    """floor(m·255) as uint8, computed in float32 like the reference (spec §16.3)."""
    scaled = np.asarray(saliency, dtype=np.float32) * np.float32(255)
    return np.floor(np.clip(scaled, 0, 255)).astype(np.uint8)


def prepare_map(
    saliency: np.ndarray, threshold: float | None = None, reverse: bool = False
) -> np.ndarray:
    """The map as float32 in [0, 1] after the optional hard threshold and reversal."""
    m = np.asarray(saliency, dtype=np.float32)
    if threshold is not None:
        m = (m > threshold).astype(np.float32)
    if reverse:
        m = np.float32(1) - m
    return m


def _blend(image: np.ndarray, m: np.ndarray, background: np.ndarray) -> np.ndarray:
    """img·m + background·(1 − m) in float32, cast to uint8 (truncation, as the reference)."""
    weight = m[..., None]
    out = image.astype(np.float32) * weight + np.asarray(background, np.float32) * (1 - weight)
    return np.clip(out, 0, 255).astype(np.uint8)


def _overlay(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Tint the region m > 0.5 half-way to GREEN and draw its outline in GREEN."""
    mask = m > 0.5
    tint = np.asarray(GREEN, np.float32)
    out = image.copy()
    out[mask] = ((image[mask].astype(np.float32) + tint) / 2).astype(np.uint8)
    edges = cv2.Canny(mask.astype(np.uint8) * 255, 100, 200)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8)) > 0
    out[edges] = GREEN
    return out


def compose(
    image: np.ndarray,
    saliency: np.ndarray,
    output_type: str | OutputType,
    threshold: float | None = None,
    reverse: bool = False,
    foreground: str | None = None,
) -> np.ndarray:
    """The output picture (uint8) for ``image`` (RGB uint8 H×W×3) and ``saliency`` (H×W in
    [0, 1]): (H, W) for ``map``, (H, W, 4) for ``rgba``, (H, W, 3) otherwise (module docstring).
    ``foreground`` (``fast``, ``ml``, ``none``) overrides the output type's estimation.
    """
    if isinstance(output_type, OutputType):
        kind = output_type
    else:
        kind = parse_output_type(output_type, foreground or DEFAULT_FOREGROUND)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"compose: image must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}"
        )
    if np.shape(saliency) != image.shape[:2]:
        raise ValueError(
            f"compose: map size {np.shape(saliency)} differs from image size {image.shape[:2]}"
        )
    m = prepare_map(saliency, threshold, reverse)
    if kind.kind == "map":
        return to_uint8(m)
    if kind.kind == "overlay":
        return _overlay(image, m)
    colours = estimate_foreground(image, m, foreground or kind.foreground)
    if kind.kind == "rgba":
        return np.dstack([colours, to_uint8(m)])
    if kind.kind == "blur":
        return _blend(colours, m, cv2.GaussianBlur(image, (0, 0), BLUR_SIGMA))
    if kind.kind == "image":
        return _blend(colours, m, kind.background_for(*image.shape[:2]))
    return _blend(colours, m, np.asarray(kind.colour, np.float32))
