"""Image/mask pairs of ``<root>/<set>/images`` and ``<root>/<set>/masks`` (the folder rules of
:mod:`data.dataset`), listed without torch: the datasets use this, and so does run/Test.py with
an exported engine, which never imports torch."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.io.files import (
    IMAGE_EXTENSIONS,
    file_problem,
    is_image_file,
    list_image_files,
    natural_key,
)
from utils.io.images import ImageReadError, read_image_size

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")
# A config's Dataset ``type`` -> whether every image needs a mask. "RGB_Dataset" is the name
# every published config uses; data.dataset maps each type to its class from this.
DATASET_TYPES = {"RGB_Dataset": True, "SODDataset": True, "ImageFolderDataset": False}
_SHOWN = 5  # how many names an error or warning lists


def _first(names: Sequence[str]) -> str:
    """The first few of ``names`` joined, with '...' when there are more."""
    shown = ", ".join(names[:_SHOWN])
    return shown + (", ..." if len(names) > _SHOWN else "")


def _image_files(folder: Path) -> list[Path]:
    """``list_image_files(folder)``, after one warning for each entry named like an image that
    the listing skips because it is no regular file (``file_problem`` looks, never opens)."""
    for entry in sorted(folder.iterdir(), key=lambda path: natural_key(path.name)):
        if not entry.name.startswith(".") and is_image_file(entry):
            problem = file_problem(entry)
            if problem:
                logger.warning("%s: %s, skipped", entry, problem)
    return list_image_files(folder)


def _by_stem(files: list[Path]) -> dict[str, Path]:
    """Map stem -> file; ValueError when two files share a stem."""
    index: dict[str, Path] = {}
    clashes = []
    for path in files:
        if path.stem in index:
            clashes.append(f"{index[path.stem].name} / {path.name}")
        index.setdefault(path.stem, path)
    if clashes:
        raise ValueError(
            f"{files[0].parent}: {len(clashes)} file name(s) share a stem, so images and masks "
            f"cannot be paired: {_first(clashes)}"
        )
    return index


@dataclass(frozen=True)
class Pair:
    """One sample on disk: an image, its mask (None when masks are optional and absent)."""

    set: str
    name: str
    image: Path
    mask: Path | None


@dataclass
class SetListing:
    """The usable pairs of one set, the files that could not be read and the pairs dropped."""

    pairs: list[Pair] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # one line per unreadable file
    dropped: list[str] = field(default_factory=list)  # pairs whose image and mask sizes differ


def dataset_needs_masks(section: Mapping[str, Any]) -> bool:
    """Whether the config ``Dataset`` section's type needs a mask for every image; ValueError
    for an unknown type or a section without ``root`` and ``sets``."""
    kind = section.get("type", "RGB_Dataset")
    if kind not in DATASET_TYPES:
        valid = ", ".join(sorted(DATASET_TYPES))
        raise ValueError(f"unknown Dataset type '{kind}'; valid: {valid}")
    missing = [key for key in ("root", "sets") if key not in section]
    if missing:
        raise ValueError(f"Dataset section lacks {missing}")
    return DATASET_TYPES[kind]


def list_pairs(
    root: str | Path, set_name: str, *, masks_required: bool = True, on_error: str = "raise"
) -> SetListing:
    """The pairs of ``<root>/<set_name>`` by the folder rules of :mod:`data.dataset`;
    ValueError when the set cannot be listed. A file whose size cannot be read raises
    ImageReadError (``on_error="raise"``) or is reported in ``failures`` (``"skip"``)."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    root = Path(root)
    image_dir = root / set_name / "images"
    mask_dir = root / set_name / "masks"
    if not image_dir.is_dir():
        raise ValueError(f"{image_dir}: folder not found")
    images = _by_stem(_image_files(image_dir))
    if not images:
        raise ValueError(f"{image_dir}: no images ({' '.join(IMAGE_EXTENSIONS)})")
    if mask_dir.is_dir():
        masks = _by_stem(_image_files(mask_dir))
    elif masks_required:
        raise ValueError(f"{mask_dir}: folder not found")
    else:
        masks = {}
    if masks_required:
        missing = [path.name for stem, path in images.items() if stem not in masks]
        if missing:
            raise ValueError(
                f"{set_name}: {len(missing)} image(s) in {image_dir} have no mask with the "
                f"same stem in {mask_dir}: {_first(missing)}"
            )
    extra = [path.name for stem, path in masks.items() if stem not in images]
    if extra:
        logger.info(
            "%s: %d mask(s) without an image ignored: %s", set_name, len(extra), _first(extra)
        )
    listing = SetListing()
    for stem, image in images.items():
        pair = Pair(set_name, stem, image, masks.get(stem))
        try:
            problem = _size_problem(pair)
        except ImageReadError as error:
            if on_error == "raise":
                raise
            listing.failures.append(str(error))
            logger.warning("skipped %s", error)
            continue
        if problem:
            listing.dropped.append(problem)
        else:
            listing.pairs.append(pair)
    if listing.dropped:
        logger.warning(
            "%s: dropped %d of %d pair(s) whose image and mask sizes differ: %s",
            set_name,
            len(listing.dropped),
            len(images),
            _first(listing.dropped),
        )
    return listing


def _size_problem(pair: Pair) -> str:
    """'' when image and mask sizes agree (or there is no mask), else a short description."""
    if pair.mask is None:
        return ""
    image_size, mask_size = read_image_size(pair.image), read_image_size(pair.mask)
    if image_size == mask_size:
        return ""
    (image_h, image_w), (mask_h, mask_w) = image_size, mask_size
    return f"{pair.name} (image {image_h}x{image_w}, mask {mask_h}x{mask_w})"
