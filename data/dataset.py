"""Datasets over ``<root>/<set>/images/*`` and ``<root>/<set>/masks/*`` (architecture §15.4).

    train = SODDataset("data/synthetic/Train_Dataset", ["Synth-TR"], transforms, seed=0,
                       on_error="skip")
    loader = DataLoader(train, batch_size=6, shuffle=True, drop_last=True, num_workers=2)
    for epoch in range(epochs):
        train.set_epoch(epoch)              # before iterating: reseeds and resets transforms
        for batch in loader:
            for line in skipped_files(batch):   # files skipped because they failed to decode
                log.warning(line)

Folder rules (listed by :mod:`data.pairs`, which needs no torch; the reference paired by index,
we pair by name, so extra files do no harm):

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
from pathlib import Path
from typing import Any

import numpy as np
import torch.utils.data
from PIL import Image

from data.pairs import DATASET_TYPES, ON_ERROR, Pair, dataset_needs_masks, list_pairs
from data.transforms import build_transforms
from utils.io.images import ImageReadError, read_image, read_mask

logger = logging.getLogger(__name__)


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
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
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
            listing = list_pairs(
                self.root, set_name, masks_required=self.masks_required, on_error=on_error
            )
            self.samples += listing.pairs
            self.failures += listing.failures
            self.dropped += listing.dropped

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
    kind: SODDataset if needs_masks else ImageFolderDataset
    for kind, needs_masks in DATASET_TYPES.items()
}


def build_dataset(section: Mapping[str, Any], **kwargs: Any) -> _FolderDataset:
    """A dataset from a config's ``Dataset`` section (``type``, ``root``, ``sets``,
    ``transforms``); ``kwargs`` (``on_error``, ``seed``) go to the class.

    Example: ``build_dataset(cfg["Train"]["Dataset"], on_error="skip", seed=cfg["Train"]["seed"])``
    """
    dataset_needs_masks(section)  # checks the type and the keys
    kind = section.get("type", "RGB_Dataset")
    return DATASETS[kind](section["root"], section["sets"], section.get("transforms"), **kwargs)
