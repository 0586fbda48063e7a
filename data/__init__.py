"""Data loading: datasets, transforms (a registry) and inference inputs (image/folder/video/webcam).

Image decoding itself lives in ``utils.io.images`` (one decoder for every script); the
synthetic data set generator in :mod:`data.synthetic`.
"""

from data.dataset import (
    DATASETS,
    ImageFolderDataset,
    SODDataset,
    build_dataset,
    skipped_files,
)
from data.sources import Frame, Media, Source, SourceError, open_source
from data.transforms import TRANSFORMS, Compose, build_transform, build_transforms

__all__ = [
    "DATASETS",
    "TRANSFORMS",
    "Compose",
    "Frame",
    "ImageFolderDataset",
    "Media",
    "SODDataset",
    "Source",
    "SourceError",
    "build_dataset",
    "build_transform",
    "build_transforms",
    "open_source",
    "skipped_files",
]
