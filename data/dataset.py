"""Datasets over ``<root>/<set>/images/*`` and ``<root>/<set>/masks/*`` (architecture §15.4).

    train = SODDataset("data/synthetic/Train_Dataset", ["Synth-TR"], transforms, seed=0,
                       on_error="skip")
    loader = DataLoader(train, batch_size=6, shuffle=True, drop_last=True, num_workers=2)
    for epoch in range(epochs):
        train.set_epoch(epoch)              # before iterating: reseeds and resets transforms
        for batch in loader:
            for line in skipped_files(batch):   # files skipped because they failed to decode
                log.warning(line)

Folder rules (the reference paired by index; we pair by name, so extra files do no harm):

* Images and masks are paired by file **stem** (``0001.jpg`` with ``0001.png``). Supported
  extensions (any case): ``utils.io.files.IMAGE_EXTENSIONS``; other files and hidden files
  (``.DS_Store``, ``._0001.jpg``) are ignored; an entry named like an image that is no regular
  file (a broken link, a folder, a FIFO: ``utils.io.files.file_problem``) is skipped with one
  warning naming it, never opened. An image without a mask is an error (ValueError
  naming the count and the first files); masks without an image are ignored with a log line;
  two images or two masks with the same stem are an error.
* Each set's images are natural-sorted (digit runs compared as integers, text lowercased); sets
  come in the order given.
* Pairs whose image and mask sizes differ (after EXIF orientation) are dropped with one log
  warning per set listing them (kept in ``dataset.dropped``).
* Images are read with ``utils.io.images.read_image`` (8-bit RGB), masks with ``read_mask`` and
  wrapped as PIL 'L'.

Items: ``image``, ``gt`` (tensors after the usual transforms), ``name`` (the stem), ``shape``
(original (H, W)), ``set`` (the set's folder name), plus ``image_resized`` / ``gt_resized`` when
a transform makes them.

Decode errors during training (``on_error="skip"``): a sample whose file cannot be decoded is
replaced by the next loadable one (so batches keep their size), a one-line warning naming the
file is logged (from the worker process) and the item's ``skipped`` entry (a string, '' when
nothing was skipped) names the skipped files; :func:`skipped_files` collects them from a collated
batch, which works with any ``num_workers``. ``dataset.failures`` also lists them, but only for
samples loaded in this process (``num_workers=0``); workers keep their own copies.
With ``on_error="raise"`` (default) the :class:`~utils.io.images.ImageReadError` propagates.

Reproducibility: the transforms of item ``i`` in epoch ``e`` draw from
``numpy.random.default_rng([seed, e, i])``, whichever worker loads it, so two runs with the
same seed and an epoch resumed after ``set_epoch(e)`` see the same augmentations. The one piece
of state carried between samples (``random_image_enhance``'s in-place shuffled order, see
:mod:`data.transforms`) is reset by ``set_epoch`` and evolves per worker, so it also repeats for
the same ``num_workers`` and batch order. Keep ``persistent_workers=False`` (the default):
persistent workers would not see ``set_epoch``. In skip mode, replacement samples use the draws
of the index that was asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch.utils.data
from PIL import Image

from data.transforms import build_transforms
from utils.io.files import (
    IMAGE_EXTENSIONS,
    file_problem,
    is_image_file,
    list_image_files,
    natural_key,
)
from utils.io.images import ImageReadError, read_image, read_image_size, read_mask

logger = logging.getLogger(__name__)

_ON_ERROR = ("raise", "skip")
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


class _FolderDataset(torch.utils.data.Dataset):
    """Shared listing, pairing, loading and error handling of the two public datasets."""

    masks_required = True

    def __init__(
        self,
        root: str | Path,
        sets: str | Sequence[str],
        transforms: Callable[..., dict] | Mapping[str, Any] | None = None,
        *,
        on_error: str = "raise",
        seed: int | None = None,
    ):
        if on_error not in _ON_ERROR:
            raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
        if seed is not None and (not isinstance(seed, int) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.root = Path(root)
        self.sets = [sets] if isinstance(sets, str) else list(sets)
        if not self.sets:
            raise ValueError("no data sets given")
        if isinstance(transforms, Mapping):
            transforms = build_transforms(transforms)
        self.transforms = transforms
        self.on_error = on_error
        # Without a seed, draw one now: forked workers would otherwise share one RNG state.
        self.seed = int(np.random.SeedSequence().entropy) if seed is None else seed
        self.epoch = 0
        self.failures: list[str] = []
        self.dropped: list[str] = []
        self.samples: list[Pair] = []
        for set_name in self.sets:
            self.samples += self._pairs(set_name)

    def _pairs(self, set_name: str) -> list[Pair]:
        """The usable pairs of one set (see the module rules)."""
        image_dir = self.root / set_name / "images"
        mask_dir = self.root / set_name / "masks"
        if not image_dir.is_dir():
            raise ValueError(f"{image_dir}: folder not found")
        images = _by_stem(_image_files(image_dir))
        if not images:
            raise ValueError(f"{image_dir}: no images ({' '.join(IMAGE_EXTENSIONS)})")
        if mask_dir.is_dir():
            masks = _by_stem(_image_files(mask_dir))
        elif self.masks_required:
            raise ValueError(f"{mask_dir}: folder not found")
        else:
            masks = {}
        if self.masks_required:
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
        pairs, dropped = [], []
        for stem, image in images.items():
            pair = Pair(set_name, stem, image, masks.get(stem))
            try:
                problem = self._size_problem(pair)
            except ImageReadError as error:
                if self.on_error == "raise":
                    raise
                self.failures.append(str(error))
                logger.warning("skipped %s", error)
                continue
            if problem:
                dropped.append(problem)
            else:
                pairs.append(pair)
        if dropped:
            self.dropped += dropped
            logger.warning(
                "%s: dropped %d of %d pair(s) whose image and mask sizes differ: %s",
                set_name,
                len(dropped),
                len(images),
                _first(dropped),
            )
        return pairs

    @staticmethod
    def _size_problem(pair: Pair) -> str:
        """'' when image and mask sizes agree (or there is no mask), else a short description."""
        if pair.mask is None:
            return ""
        image_size, mask_size = read_image_size(pair.image), read_image_size(pair.mask)
        if image_size == mask_size:
            return ""
        (image_h, image_w), (mask_h, mask_w) = image_size, mask_size
        return f"{pair.name} (image {image_h}x{image_w}, mask {mask_h}x{mask_w})"

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Use the random draws of ``epoch`` and reset stateful transforms; call before each
        epoch's iteration (DataLoader workers copy the dataset when iteration starts)."""
        self.epoch = int(epoch)
        reset = getattr(self.transforms, "reset", None)
        if reset is not None:
            reset()

    def load(self, index: int) -> dict[str, Any]:
        """The untransformed sample ``index``: PIL image (and gt), name, shape, set."""
        pair = self.samples[index]
        image = read_image(pair.image)
        sample: dict[str, Any] = {
            "image": image,
            "name": pair.name,
            "shape": (image.height, image.width),
            "set": pair.set,
        }
        if pair.mask is not None:
            mask = read_mask(pair.mask)
            if mask.shape != sample["shape"]:
                raise ImageReadError(
                    pair.mask,
                    f"mask is {mask.shape[0]}x{mask.shape[1]}, its image "
                    f"{image.height}x{image.width}",
                )
            sample["gt"] = Image.fromarray(mask)
        return sample

    def _item(self, load_index: int, draw_index: int) -> dict[str, Any]:
        sample = self.load(load_index)
        if self.transforms is not None:
            rng = np.random.default_rng([self.seed, self.epoch, draw_index])
            sample = self.transforms(sample, rng=rng)
        return sample

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.on_error == "raise":
            return self._item(index, index)
        skipped = []
        for attempt in range(len(self)):
            try:
                item = self._item((index + attempt) % len(self), index)
            except (ImageReadError, OSError) as error:
                message = str(error)
                skipped.append(message)
                self.failures.append(message)
                logger.warning("skipped %s", message)
                continue
            item["skipped"] = "\n".join(skipped)
            return item
        raise RuntimeError(f"no sample of {self.root} {self.sets} can be loaded ({skipped[0]})")


class SODDataset(_FolderDataset):
    """Training/evaluation pairs of ``<root>/<set>/images`` and ``<root>/<set>/masks``.

    Args:
        root: folder holding the sets (e.g. ``data/synthetic/Train_Dataset``).
        sets: set folder names (e.g. ``["DUTS-TR"]``) or one name.
        transforms: a :class:`data.transforms.Compose` (any callable ``(sample, rng=)``), a
            config ``transforms`` mapping (built here), or None (items stay PIL).
        on_error: ``"raise"`` or ``"skip"`` (see the module docstring).
        seed: base seed of the per-sample random draws; None draws one at random.
    """


class ImageFolderDataset(_FolderDataset):
    """Like :class:`SODDataset`, but masks are optional (for Test/prediction on image sets).

    Items have ``gt`` only when a mask with the same stem exists (and then the pair's sizes
    must agree); ``shape`` is the image size. Use ``batch_size=1`` (or sets with all or no
    masks) so collated items have the same keys.
    """

    masks_required = False


def skipped_files(batch: Mapping[str, Any]) -> list[str]:
    """The one-line messages of files skipped while loading a collated (or single) batch."""
    entries = batch.get("skipped", [])
    entries = [entries] if isinstance(entries, str) else entries
    return [line for entry in entries for line in entry.split("\n") if line]


DATASETS: dict[str, type[_FolderDataset]] = {
    "RGB_Dataset": SODDataset,  # the name every published config uses
    "SODDataset": SODDataset,
    "ImageFolderDataset": ImageFolderDataset,
}


def build_dataset(section: Mapping[str, Any], **kwargs: Any) -> _FolderDataset:
    """A dataset from a config's ``Dataset`` section (``type``, ``root``, ``sets``,
    ``transforms``); ``kwargs`` (``on_error``, ``seed``) go to the class.

    Example: ``build_dataset(cfg["Train"]["Dataset"], on_error="skip", seed=cfg["Train"]["seed"])``
    """
    kind = section.get("type", "RGB_Dataset")
    if kind not in DATASETS:
        raise ValueError(f"unknown Dataset type '{kind}'; valid: {', '.join(sorted(DATASETS))}")
    missing = [key for key in ("root", "sets") if key not in section]
    if missing:
        raise ValueError(f"Dataset section lacks {missing}")
    return DATASETS[kind](section["root"], section["sets"], section.get("transforms"), **kwargs)
