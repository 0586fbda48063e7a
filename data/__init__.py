"""Data loading: datasets, transforms (a registry) and inference inputs (image/folder/video/webcam).

Image decoding itself lives in ``utils.io.images`` (one decoder for every script); the
synthetic data set generator in :mod:`data.synthetic`.
"""

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

# data.dataset needs torch; it is imported on first use so that the torch-free inference path
# (exported engines: data.sources, data.transforms) does not load torch with this package.
_DATASET_NAMES = ("DATASETS", "ImageFolderDataset", "SODDataset", "build_dataset", "skipped_files")


def __getattr__(name: str):
    if name in _DATASET_NAMES:
        from data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'data' has no attribute {name!r}")
