"""Video files decoded with PyAV (FFmpeg's libraries in its wheels; optional:
``requirements-video.txt``). Webcams stay with OpenCV (``data.sources.WebcamMedia``).

    media = VideoMedia(Path("clip.mp4")).open()   # .fps .size .frame_count .rotation .time_base
    for frame in media:                            # Frame: .image upright RGB, .pts, .time_base
        ...
    with open_audio(media.path) as audio:          # the source's audio streams, for a mux copy
        for packet in audio: ...

* Frames come in presentation order with their own timestamps (``Frame.pts`` in
  ``Frame.time_base``), so a variable-frame-rate clip keeps its timing; a frame without one gets
  the previous one's plus one frame period.
* Rotation metadata (a display matrix, which FFmpeg also builds from an MP4 ``rotate`` tag) is
  applied to the pixels: frames come out upright and ``size`` is the upright (H, W).
* A file that cannot be opened, has no video stream, or fails to decode part-way raises
  :class:`data.sources.SourceError` (one line naming it and the frame). A file that simply ends
  early (cut short: fewer frames than its header says) gives one warning line; the frames read
  are kept.
* Without PyAV, ``open()`` raises a SourceError saying what to install (:data:`INSTALL_HINT`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import numpy as np

from data.sources import Frame, Media, SourceError

logger = logging.getLogger(__name__)
INSTALL_HINT = "video files need PyAV: .venv/bin/pip install -r requirements-video.txt"


def import_av() -> ModuleType:
    """The ``av`` module; ModuleNotFoundError with :data:`INSTALL_HINT` when it is missing."""
    try:
        import av
    except ImportError:
        raise ModuleNotFoundError(INSTALL_HINT) from None
    return av


def av_problem(error: BaseException) -> str:
    """One line saying what FFmpeg (through PyAV) complained about."""
    strerror = getattr(error, "strerror", None)
    text = strerror or str(error) or type(error).__name__
    return " ".join(text.split())


def upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """``image`` turned as its display matrix says: ``rotation`` is FFmpeg's angle, degrees
    counter-clockwise (``av.VideoFrame.rotation``), a multiple of 90 (others are rounded)."""
    turns = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


class VideoMedia(Media):
    """A video file read with PyAV. Besides ``fps``, ``size`` and ``frame_count`` (after
    ``open()``): ``rotation`` (degrees counter-clockwise applied to the pixels), ``time_base``
    (of the frames' ``pts``), ``duration`` (seconds, None when unknown) and ``audio_streams``
    (how many audio streams the file has)."""

    kind = "video"

    def __init__(self, path: Path):
        super().__init__(path.stem, path)
        self.rotation = 0
        self.time_base: Fraction | None = None
        self.duration: float | None = None
        self.audio_streams = 0
        self._container = None
        self._frames: Iterator | None = None
        self._first = None

    def open(self) -> VideoMedia:
        if self._container is not None:
            return self
        try:
            av = import_av()
        except ModuleNotFoundError as error:
            raise SourceError(self.path, str(error)) from None
        try:
            container = av.open(str(self.path), metadata_errors="ignore")
        except (av.FFmpegError, OSError, UnicodeError) as error:
            raise SourceError(self.path, f"cannot open video ({av_problem(error)})") from None
        try:
            self._read_header(container)
        except BaseException:
            container.close()
            raise
        return self

    def _read_header(self, container) -> None:
        av = import_av()
        if not container.streams.video:
            raise SourceError(self.path, "cannot open video (the file holds no video stream)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame and slice threads in the decoder
        frames = container.decode(stream)
        try:
            first = next(frames)
        except StopIteration:
            raise SourceError(self.path, "video has no readable frame") from None
        except (av.FFmpegError, OSError) as error:
            raise SourceError(
                self.path, f"video has no readable frame ({av_problem(error)})"
            ) from None
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate and math.isfinite(float(rate)) and rate > 0 else None
        self.frame_count = stream.frames or None
        turn = round((first.rotation or 0) / 90) * 90 % 360
        self.rotation = turn - 360 if turn > 180 else turn  # in (-180, 180]
        turned = (self.rotation // 90) % 2 == 1
        self.size = (first.width, first.height) if turned else (first.height, first.width)
        self.time_base = first.time_base or stream.time_base
        if container.duration is not None:
            self.duration = container.duration / av.time_base
        if self.frame_count is None and self.duration and self.fps:  # WebM, MKV: an estimate
            self.frame_count = round(self.duration * self.fps) or None
        self.audio_streams = len(container.streams.audio)
        self._container, self._frames, self._first = container, frames, first

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._frames, self._first = None, None, None

    def __iter__(self) -> Iterator[Frame]:
        av = import_av()
        self.open()
        frames, frame = self._frames, self._first
        index, pts = 0, None
        step = self._frame_step()
        try:
            while frame is not None:
                if frame.pts is not None and (pts is None or frame.pts > pts):
                    pts = frame.pts
                else:  # no timestamp, or one that goes back: the next frame period
                    pts = 0 if pts is None else pts + step
                image = upright(frame.to_ndarray(format="rgb24"), self.rotation)
                yield Frame(self.name, index, image, pts=pts, time_base=self.time_base)
                index += 1
                try:
                    frame = next(frames)
                except StopIteration:
                    frame = None
                except (av.FFmpegError, OSError) as error:
                    raise SourceError(
                        self.path, f"damaged at frame {index} ({av_problem(error)})"
                    ) from None
            if self.frame_count and index < self.frame_count - 1:
                logger.warning(
                    "%s: only %d of its %d frames could be read (the file is cut short or "
                    "damaged); the output has those",
                    self.path,
                    index,
                    self.frame_count,
                )
        finally:
            self.close()

    def _frame_step(self) -> int:
        """One frame period in ``time_base`` units (at least 1)."""
        if not self.fps or not self.time_base:
            return 1
        return max(1, round(1 / (self.fps * self.time_base)))


class AudioPackets:
    """The audio streams of a video file, opened on their own for a mux copy: ``streams`` (PyAV
    input streams, templates for the output's) and iteration over their packets in file order
    (packets without a timestamp or data are left out). Close it (or use ``with``)."""

    def __init__(self, path: Path):
        av = import_av()
        self.path = path
        try:
            self.container = av.open(str(path), metadata_errors="ignore")
        except (av.FFmpegError, OSError, UnicodeError) as error:
            raise SourceError(path, f"cannot open video ({av_problem(error)})") from None
        self.streams = list(self.container.streams.audio)

    def __iter__(self) -> Iterator:
        av = import_av()
        try:
            for packet in self.container.demux(*self.streams):
                if packet.dts is not None and packet.size:
                    yield packet
        except (av.FFmpegError, OSError) as error:  # damaged audio: what was read is kept
            logger.warning(
                "%s: audio damaged, the rest of it is left out (%s)", self.path, av_problem(error)
            )

    def close(self) -> None:
        """Release the file."""
        self.container.close()

    def __enter__(self) -> AudioPackets:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_audio(path: Path) -> AudioPackets | None:
    """The audio of the video file ``path``, or None when it has none."""
    audio = AudioPackets(path)
    if not audio.streams:
        audio.close()
        return None
    return audio
