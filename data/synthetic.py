"""A small synthetic salient-object data set, for tests, the tiny config and smoke runs.

    python -m data.synthetic --root data/synthetic                 # 48 train + 16 test pairs
    python -m data.synthetic --root data/synthetic --train 200 --test 40 --size 160 --seed 1

Layout (what the tiny config reads)::

    <root>/Train_Dataset/Synth-TR/images/synth_0000.jpg   masks/synth_0000.png
    <root>/Test_Dataset/Synth-TE/images/synth_0000.jpg    masks/synth_0000.png
    <root>/synthetic.json                                 the parameters, written last

Each image holds one (sometimes two) object(s) — ellipse, polygon, star or smooth blob — filled
with a texture (stripes, smooth noise or a gradient) in colours far from those of the equally
textured background; masks are binary (0/255). Sides are drawn in [0.75·size, 1.25·size], so
images are not all square. Files are written atomically; the same seed gives the same bytes;
a run over a complete folder with the same parameters writes nothing, and one with other
parameters rewrites it (removing ``synth_*`` files it no longer lists).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from utils.cli import EXIT_SETUP, exit_on_error, run_cli
from utils.io.atomic import write_bytes_atomic
from utils.io.images import write_png_atomic

logger = logging.getLogger(__name__)
TRAIN_SET = ("Train_Dataset", "Synth-TR")
TEST_SET = ("Test_Dataset", "Synth-TE")
MANIFEST = "synthetic.json"
_VERSION = 1  # bump when the drawing code changes, so old folders are regenerated
_JPEG_QUALITY = 95


class SyntheticDataset(NamedTuple):
    """Where :func:`make_synthetic_dataset` put the data and how many files it wrote."""

    train_root: Path  # <root>/Train_Dataset (sets: ["Synth-TR"])
    test_root: Path  # <root>/Test_Dataset (sets: ["Synth-TE"])
    written: int


def _hsv_colour(rng: np.random.Generator, hue: float) -> np.ndarray:
    """An RGB colour (float, 0..255) of ``hue`` (degrees) with random saturation and value."""
    pixel = np.array(
        [[[hue / 2 % 180, rng.uniform(90, 255), rng.uniform(70, 255)]]], dtype=np.float32
    )
    return cv2.cvtColor(pixel.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64)


def _texture(rng: np.random.Generator, height: int, width: int, hue: float) -> np.ndarray:
    """A (H, W, 3) float texture around ``hue``: stripes, smooth noise or a gradient."""
    first = _hsv_colour(rng, hue)
    second = _hsv_colour(rng, hue + rng.uniform(-35, 35))
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    kind = rng.choice(["stripes", "noise", "gradient"])
    if kind == "stripes":
        angle, period = rng.uniform(0, math.pi), rng.uniform(6, 24)
        phase = (x * math.cos(angle) + y * math.sin(angle)) / period
        weight = 0.5 + 0.5 * np.sin(2 * math.pi * phase)
    elif kind == "noise":
        cells = rng.uniform(size=(int(rng.integers(3, 9)), int(rng.integers(3, 9))))
        weight = cv2.resize(cells, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    else:
        angle = rng.uniform(0, 2 * math.pi)
        ramp = x * math.cos(angle) + y * math.sin(angle)
        weight = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    texture = first * weight[..., None] + second * (1 - weight[..., None])
    return texture + rng.normal(0, 6, size=texture.shape)


def _outline(rng: np.random.Generator, kind: str, radius: float, count: int) -> np.ndarray:
    """Vertices (N, 2) of a shape of mean ``radius`` around the origin."""
    if kind == "polygon":
        step = 2 * math.pi / count  # evenly spread corners, jittered: no slivers
        angles = np.arange(count) * step + rng.uniform(-0.3, 0.3, size=count) * step
        radii = radius * rng.uniform(0.8, 1.25, size=count)
    elif kind == "star":
        angles = np.linspace(0, 2 * math.pi, 2 * count, endpoint=False) + rng.uniform(0, math.pi)
        radii = np.where(np.arange(2 * count) % 2 == 0, radius * 1.25, radius * 0.5)
    else:  # blob: a radius modulated by a few low-frequency sinusoids
        angles = np.linspace(0, 2 * math.pi, 90, endpoint=False)
        radii = np.full_like(angles, radius)
        for harmonic in range(2, 5):
            amplitude, phase = rng.uniform(0, 0.18), rng.uniform(0, 2 * math.pi)
            radii += radius * amplitude * np.sin(harmonic * angles + phase)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _draw_object(rng: np.random.Generator, mask: np.ndarray) -> None:
    """Fill one random object (value 255) into ``mask``."""
    height, width = mask.shape
    radius = rng.uniform(0.16, 0.32) * min(height, width)
    centre = (rng.uniform(radius, width - radius), rng.uniform(radius, height - radius))
    kind = rng.choice(["ellipse", "polygon", "star", "blob"])
    if kind == "ellipse":
        axes = (int(radius * rng.uniform(0.8, 1.3)), int(radius * rng.uniform(0.5, 1.0)))
        centre_px = (int(centre[0]), int(centre[1]))
        cv2.ellipse(mask, centre_px, axes, rng.uniform(0, 180), 0, 360, 255, thickness=-1)
        return
    corners = int(rng.integers(3, 8) if kind == "polygon" else rng.integers(5, 8))
    points = _outline(rng, kind, radius, corners)
    points = np.round(points + np.array(centre)).astype(np.int32)
    cv2.fillPoly(mask, [points], 255)


def make_pair(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One (image (H, W, 3) uint8 RGB, mask (H, W) uint8 0/255) pair of nominal side ``size``."""
    low, high = round(0.75 * size), round(1.25 * size)
    height, width = (int(side) for side in rng.integers(low, high + 1, size=2))
    mask = np.zeros((height, width), np.uint8)
    for _ in range(2 if rng.random() < 0.2 else 1):
        _draw_object(rng, mask)
    background_hue = rng.uniform(0, 360)
    object_hue = background_hue + rng.uniform(100, 260)  # far from the background's hue
    background = _texture(rng, height, width, background_hue)
    foreground = _texture(rng, height, width, object_hue)
    image = np.where(mask[..., None] > 0, foreground, background)
    image = cv2.GaussianBlur(image, (3, 3), 0.6)  # soften the edges like a photo
    return image.round().clip(0, 255).astype(np.uint8), mask


def _expected(root: Path, split: tuple[str, str], count: int) -> list[tuple[Path, Path]]:
    folder = root.joinpath(*split)
    names = [f"synth_{index:04d}" for index in range(count)]
    return [(folder / "images" / f"{n}.jpg", folder / "masks" / f"{n}.png") for n in names]


def _remove_stale(root: Path, split: tuple[str, str], keep: list[tuple[Path, Path]]) -> None:
    """Delete generated files (``synth_*``) of ``split`` that the current parameters do not list."""
    wanted = {path for pair in keep for path in pair}
    for sub in ("images", "masks"):
        folder = root.joinpath(*split, sub)
        if folder.is_dir():
            for path in folder.glob("synth_*"):
                if path not in wanted:
                    path.unlink()


def make_synthetic_dataset(
    root: str | os.PathLike,
    n_train: int = 48,
    n_test: int = 16,
    size: int = 128,
    seed: int = 0,
) -> SyntheticDataset:
    """Write the synthetic data set under ``root`` (see the module docstring); idempotent.

    Pair ``i`` of a split is drawn from ``numpy.random.default_rng([seed, split, i])``, so the
    files depend only on the parameters, not on what already exists.
    """
    if n_train < 1 or n_test < 1 or size < 16 or seed < 0:
        raise ValueError(
            f"need n_train >= 1, n_test >= 1, size >= 16 and seed >= 0, got "
            f"n_train={n_train}, n_test={n_test}, size={size}, seed={seed}"
        )
    root = Path(root)
    params = {"version": _VERSION, "n_train": n_train, "n_test": n_test, "size": size, "seed": seed}
    manifest = root / MANIFEST
    try:
        same = json.loads(manifest.read_text(encoding="utf-8")) == params
    except (OSError, ValueError):
        same = False
    written = 0
    for split_id, (split, count) in enumerate(((TRAIN_SET, n_train), (TEST_SET, n_test))):
        pairs = _expected(root, split, count)
        if not same:
            _remove_stale(root, split, pairs)
        for index, (image_path, mask_path) in enumerate(pairs):
            if same and image_path.is_file() and mask_path.is_file():
                continue
            image, mask = make_pair(np.random.default_rng([seed, split_id, index]), size)
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
            if not ok:
                raise OSError(f"{image_path}: JPEG encoding failed")
            write_bytes_atomic(image_path, encoded.tobytes())
            write_png_atomic(mask_path, mask)
            written += 2
    if not same:
        write_bytes_atomic(manifest, (json.dumps(params, indent=2) + "\n").encode("utf-8"))
    return SyntheticDataset(root / TRAIN_SET[0], root / TEST_SET[0], written)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring; returns the exit status."""
    parser = argparse.ArgumentParser(description="Write a small synthetic SOD data set.")
    parser.add_argument("--root", default="data/synthetic", help="output folder")
    parser.add_argument("--train", type=int, default=48, help="training pairs (Synth-TR)")
    parser.add_argument("--test", type=int, default=16, help="test pairs (Synth-TE)")
    parser.add_argument("--size", type=int, default=128, help="nominal side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    return run_cli(_run, parser.parse_args(argv))


def _run(args: argparse.Namespace) -> int:
    with exit_on_error(EXIT_SETUP):
        result = make_synthetic_dataset(args.root, args.train, args.test, args.size, args.seed)
    state = f"wrote {result.written} files" if result.written else "already complete"
    logger.info(
        f"{args.root}: {state}; train {result.train_root}/{TRAIN_SET[1]} ({args.train} pairs), "
        f"test {result.test_root}/{TEST_SET[1]} ({args.test} pairs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
