"""Inference inputs: one image, a folder of images and/or videos, one video, or a webcam.

    for media in open_source(args.source):      # 'photo.jpg', 'folder/', 'clip.mp4' or '0'
        try:
            media.open()                        # metadata: media.fps, .size, .frame_count
            for frame in media:                 # Frame: .index, .image (RGB uint8 H×W×3)
                sample = frame.to_sample()      # {'image': PIL RGB, 'name', 'shape'}
                ...
        except SourceError as error:            # one line naming the file: report, go on
            log.warning(error)

Rules:

* Images (``utils.io.files.IMAGE_EXTENSIONS``, any case) are decoded by
  ``utils.io.images.read_image`` (EXIF orientation, 8-bit RGB). Videos (``VIDEO_EXTENSIONS``, any
  case) are decoded with PyAV (:mod:`data.video`: upright frames with their timestamps; without
  PyAV a video gives one SourceError line saying what to install); webcams are read with
  OpenCV, frames converted BGR → RGB.
* A folder is listed (not recursively) in natural order; hidden files are ignored; any other file
  is skipped with a log warning naming it, and so is an entry named like an image or a video that
  is no regular file (a broken link, a folder, a FIFO: ``utils.io.files.file_problem``; a FIFO is
  never opened). A folder without images or videos is an error.
* A source that is no existing path but a non-negative integer (``'0'``) is a webcam index.
* Every failure (missing path, unsupported type, no regular file, corrupt image, unreadable
  video, no camera) raises :class:`SourceError`, whose message is one line naming the input.
* Paths may hold unicode characters and spaces.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from utils.io.files import IMAGE_EXTENSIONS, file_problem, is_image_file, natural_key
from utils.io.images import ImageReadError, quiet_opencv, read_image

logger = logging.getLogger(__name__)
# FFmpeg (inside OpenCV) prints its own multi-line complaints about broken files; every failure
# here raises one SourceError line instead. Read by OpenCV when it first uses FFmpeg; a value the
# user set (for debugging) is kept.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm")


class SourceError(ValueError):
    """An input that cannot be read; ``str()`` is one line naming it and the problem."""

    def __init__(self, source: str | os.PathLike, problem: str):
        self.source = str(source)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.source}: {self.problem}")


def is_video_file(path: str | os.PathLike) -> bool:
    """True when the file name has a supported video extension (any case)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@dataclass
class Frame:
    """One RGB frame of a :class:`Media` (the only frame, index 0, for an image)."""

    name: str
    index: int
    image: np.ndarray  # (H, W, 3) uint8 RGB
    pts: int | None = None  # a video frame's presentation time, in time_base units
    time_base: Fraction | None = None
    _pil: Image.Image | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W)."""
        return self.image.shape[0], self.image.shape[1]

    def pil(self) -> Image.Image:
        """The frame as a PIL RGB image."""
        if self._pil is None:
            self._pil = Image.fromarray(self.image)
        return self._pil

    def to_sample(self) -> dict[str, Any]:
        """A transform-ready sample: ``{'image': PIL RGB, 'name', 'shape': (H, W)}``."""
        return {"image": self.pil(), "name": self.name, "shape": self.shape}


class Media:
    """One image, video or webcam stream. Iterate it for its :class:`Frame` s.

    ``open()`` reads the metadata (and, for an image, the pixels); iterating opens it when
    needed and releases a video at the end. Attributes after ``open()``: ``fps`` (None for
    images and when unknown), ``size`` ((H, W)) and ``frame_count`` (None when unknown).
    """

    kind = "media"

    def __init__(self, name: str, path: Path | None):
        self.name = name
        self.path = path
        self.fps: float | None = None
        self.size: tuple[int, int] | None = None
        self.frame_count: int | None = None

    def open(self) -> Media:
        """Read the metadata; raises SourceError. Returns self."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what ``open()`` holds (safe to call twice)."""

    def __enter__(self) -> Media:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, path={self.path!r})"


class ImageMedia(Media):
    """A single image file: one frame."""

    kind = "image"

    def __init__(self, path: Path):
        super().__init__(path.stem, path)
        self.frame_count = 1
        self._image: Image.Image | None = None

    def open(self) -> ImageMedia:
        if self._image is None:
            try:
                self._image = read_image(self.path)
            except ImageReadError as error:
                raise SourceError(error.path, error.problem) from None
            self.size = (self._image.height, self._image.width)
        return self

    def close(self) -> None:
        self._image = None

    def __iter__(self) -> Iterator[Frame]:
        image = self.open()._image
        self.close()
        yield Frame(self.name, 0, np.array(image), image)


class WebcamMedia(Media):
    """A webcam (``index``), read with OpenCV; frames have no timestamps."""

    kind = "webcam"

    def __init__(self, index: int):
        super().__init__(f"webcam{index}", None)
        self.index = index
        self._capture: cv2.VideoCapture | None = None
        self._first: np.ndarray | None = None

    def open(self) -> WebcamMedia:
        if self._capture is not None:
            return self
        label = f"webcam {self.index}"
        with quiet_opencv():  # one SourceError line instead
            capture = cv2.VideoCapture(self.index)
            if not capture.isOpened():
                capture.release()
                raise SourceError(
                    label, f"no camera found at index {self.index} (cannot open the device)"
                )
            ok, first = capture.read()
        if not ok or first is None:
            capture.release()
            raise SourceError(label, "the camera returned no frame")
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if math.isfinite(fps) and fps > 0 else None
        self.size = (first.shape[0], first.shape[1])
        self._capture, self._first = capture, first
        return self

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
        self._capture, self._first = None, None

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        capture, frame = self._capture, self._first
        try:
            index = 0
            while frame is not None:
                yield Frame(self.name, index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                index += 1
                ok, frame = capture.read()
                if not ok:
                    frame = None
        finally:
            self.close()


class Source:
    """What :func:`open_source` returns: an iterable of :class:`Media` with a ``kind``
    ('image', 'folder', 'video' or 'webcam') and the input ``description``."""

    def __init__(self, description: str, kind: str, media: list[Media]):
        self.description = description
        self.kind = kind
        self.media = media

    def __iter__(self) -> Iterator[Media]:
        return iter(self.media)

    def __len__(self) -> int:
        return len(self.media)

    def __repr__(self) -> str:
        return f"Source({self.description!r}, kind={self.kind!r}, media={len(self.media)})"


def _media_for_file(path: Path) -> Media | None:
    """The Media of one file, or None when its type is not supported."""
    if is_image_file(path):
        return ImageMedia(path)
    if is_video_file(path):
        from data.video import VideoMedia  # here: data.video builds on this module

        return VideoMedia(path)
    return None


def _listed_media(entry: Path) -> list[Media]:
    """The Media of a folder's entry as a list (empty: skipped, with a warning naming it unless
    it is a sub-folder or another non-regular entry with no image or video name)."""
    problem = file_problem(entry)
    item = _media_for_file(entry)
    if problem:
        if item is not None:  # named like an image or a video
            logger.warning("%s: %s, skipped", entry, problem)
        return []
    if item is None:
        logger.warning("%s: unsupported file type, skipped (%s)", entry, _supported())
        return []
    return [item]


def _supported() -> str:
    return f"images {' '.join(IMAGE_EXTENSIONS)}; videos {' '.join(VIDEO_EXTENSIONS)}"


def open_source(source: str | os.PathLike) -> Source:
    """Open an image file, a folder of images/videos, a video file or a webcam index ('0').

    Raises SourceError (one line naming ``source``) when it does not exist, is no regular
    file or folder (a FIFO, a broken link), is of an unsupported type, or is a folder holding no
    image or video.
    """
    path = Path(source)
    if path.is_dir():
        media = []
        for entry in sorted(path.iterdir(), key=lambda p: natural_key(p.name)):
            if not entry.name.startswith("."):
                media += _listed_media(entry)
        if not media:
            raise SourceError(path, f"folder holds no image or video ({_supported()})")
        return Source(str(path), "folder", media)
    if path.is_file():
        item = _media_for_file(path)
        if item is None:
            raise SourceError(path, f"unsupported file type ({_supported()})")
        return Source(str(path), item.kind, [item])
    if os.path.lexists(path):  # a FIFO, a device, a broken link: named, never opened
        raise SourceError(path, file_problem(path))
    text = str(source).strip()
    if text.isdigit():
        return Source(f"webcam {int(text)}", "webcam", [WebcamMedia(int(text))])
    raise SourceError(source, "no such file or folder (nor a webcam index such as 0)")
