"""Video outputs encoded with PyAV: H.264 MP4, WebM VP9 (with alpha) and ProRes MOV, with the
source's timestamps and audio, written atomically by a thread of their own.

    writer = VideoWriter(path, media, VIDEO_FORMATS["mp4"], alpha=False, crf=None)
    writer.write(picture, frame.pts)    # RGB (H, W, 3), RGBA (H, W, 4) or gray (H, W) uint8
    writer.finish()                     # or writer.abort(): the target is left as it was

==========  ==================  =============================  ===================================
format      video               alpha (``--type rgba``)        audio
==========  ==================  =============================  ===================================
mp4         H.264 yuv420p, CRF  none (no alpha in H.264)       copied; re-encoded to AAC when MP4
            18 by default                                      cannot hold its codec
webm        VP9 yuv420p, CRF    VP9 yuva420p (alpha plane at   Opus/Vorbis copied; any other codec
            30 by default       full resolution)               (AAC...) re-encoded to Opus 48 kHz
mov         ProRes 422 HQ       ProRes 4444 with alpha,        copied; re-encoded to AAC when MOV
            10-bit (no CRF)     10-bit                         cannot hold its codec
==========  ==================  =============================  ===================================

* Every frame keeps its source timestamp (``pts`` in the media's ``time_base``), so frame
  count, frame rate (variable too), duration and audio sync are those of the source. Pixels
  are upright (the reader applied any rotation), so no rotation metadata is written.
* Colours are converted with BT.709 (limited range) and tagged so; MP4s get ``+faststart``
  (playable while downloading). A picture with an odd width or height (which 4:2:0 cannot
  hold) is padded by one edge pixel row/column, with one warning line.
* The file is written under a hidden temporary name (utils.io.atomic, ``keep_suffix``) and
  renamed over the target by :meth:`VideoWriter.finish`. Encoding and muxing run on a thread
  fed through a short queue, so they overlap the network. Lack of space or permission raises
  :class:`utils.io.atomic.OutputError` (the run stops); any other encoding failure an OSError.
* An audio stream that can be neither copied nor re-encoded is left out with one warning line,
  and so is the rest of an audio stream that turns out damaged; the video is kept.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from data.sources import Media
from data.video import AudioPackets, av_problem, import_av, open_audio
from utils.io.atomic import AtomicFile, output_error

logger = logging.getLogger(__name__)
DEFAULT_FPS = 30.0  # when a video does not say its frame rate
QUEUE_DEPTH = 8  # pictures waiting for the encoder thread
STOP_WAIT_S = 60.0  # at most one picture's encoding
_BT709 = 1  # AVCOL_SPC_BT709 / AVCOL_PRI_BT709 / AVCOL_TRC_BT709
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG
# Failures that no other output would escape: they stop the run (utils.io.atomic.OutputError).
_STOPPING = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


@dataclass(frozen=True)
class VideoFormat:
    """How one ``--video-format`` is encoded (see the module docstring's table)."""

    name: str
    suffix: str
    codec: str
    pix_fmt: str
    alpha_pix_fmt: str | None  # None: this format carries no alpha
    audio_codec: str  # for audio that cannot be copied
    audio_rate: int | None = None  # None: the source's sample rate
    default_crf: int | None = None  # None: the codec has no CRF (ProRes)
    options: dict[str, str] = field(default_factory=dict)
    alpha_options: dict[str, str] = field(default_factory=dict)  # replace options for alpha
    container_options: dict[str, str] = field(default_factory=dict)
    description: str = ""


VIDEO_FORMATS = {
    "mp4": VideoFormat(
        "mp4",
        ".mp4",
        "libx264",
        "yuv420p",
        None,
        "aac",
        default_crf=18,
        options={"preset": "medium"},
        container_options={"movflags": "+faststart"},
        description="H.264 MP4 (plays in browsers and players)",
    ),
    "webm": VideoFormat(
        "webm",
        ".webm",
        "libvpx-vp9",
        "yuv420p",
        "yuva420p",
        "libopus",
        audio_rate=48000,
        default_crf=30,
        options={"b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
        description="WebM VP9 (with alpha for rgba: Chrome, Firefox, Edge, ffmpeg, editors)",
    ),
    "mov": VideoFormat(
        "mov",
        ".mov",
        "prores_ks",
        "yuv422p10le",
        "yuva444p10le",
        "aac",
        options={"profile": "3"},  # ProRes 422 HQ
        alpha_options={"profile": "4", "alpha_bits": "16"},  # ProRes 4444
        description="ProRes MOV (4444 with alpha for rgba: editing software)",
    ),
}


def _numpy_format(picture: np.ndarray) -> str:
    if picture.ndim == 2:
        return "gray"
    return {3: "rgb24", 4: "rgba"}[picture.shape[2]]


def _even(picture: np.ndarray) -> np.ndarray:
    """``picture`` padded by one edge row/column where its height/width is odd."""
    pad_h, pad_w = picture.shape[0] % 2, picture.shape[1] % 2
    if not (pad_h or pad_w):
        return picture
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (picture.ndim - 2)
    return np.pad(picture, widths, mode="edge")


class _AudioCopy:
    """The source's audio streams into the output: copied when the container can hold their
    codec, re-encoded otherwise; fed packet by packet up to a time (interleaving)."""

    def __init__(self, audio: AudioPackets, container, video_format: VideoFormat, target: Path):
        av = import_av()
        self.audio, self.container, self.target = audio, container, target
        self.outputs: dict[int, tuple[object, object | None]] = {}  # index -> (stream, resampler)
        supported = container.supported_codecs
        for source in audio.streams:
            name = source.codec_context.name
            try:
                if name in supported:
                    self.outputs[source.index] = (container.add_stream_from_template(source), None)
                    continue
                encoder = av.codec.Codec(video_format.audio_codec, "w")
                rate = video_format.audio_rate or source.codec_context.sample_rate or 48000
                channels = source.codec_context.channels or 2
                layout = "mono" if channels == 1 else "stereo"
                stream = container.add_stream(video_format.audio_codec, rate=rate, layout=layout)
                resampler = av.AudioResampler(
                    format=encoder.audio_formats[0].name, layout=layout, rate=rate
                )
                self.outputs[source.index] = (stream, resampler)
                logger.info(
                    "%s: audio stream %d (%s) re-encoded to %s: %s cannot hold %s",
                    target,
                    source.index,
                    name,
                    stream.codec_context.name,
                    video_format.name.upper(),
                    name,
                )
            except (av.FFmpegError, ValueError, OSError) as error:
                logger.warning(
                    "%s: audio stream %d (%s) left out (%s)",
                    target,
                    source.index,
                    name,
                    av_problem(error),
                )
        self.packets = iter(audio)
        self.waiting = None  # the next packet, read ahead
        self.broken = not self.outputs

    def mux_until(self, seconds: float | None) -> None:
        """Mux the audio packets that start before ``seconds`` (all of them for None)."""
        av = import_av()
        while not self.broken:
            if self.waiting is None:
                self.waiting = next(self.packets, None)
                if self.waiting is None:
                    self._flush()
                    self.broken = True
                    return
            packet = self.waiting
            if seconds is not None and float(packet.dts * packet.time_base) > seconds:
                return
            self.waiting = None
            if packet.stream_index not in self.outputs:
                continue
            try:
                self._mux(packet)
            except (av.FFmpegError, ValueError) as error:
                logger.warning(
                    "%s: the rest of the audio is left out (%s)", self.target, av_problem(error)
                )
                self.broken = True

    def _mux(self, packet) -> None:
        stream, resampler = self.outputs[packet.stream_index]
        if resampler is None:
            packet.stream = stream
            self.container.mux(packet)
            return
        for frame in packet.decode():
            for resampled in resampler.resample(frame):
                self.container.mux(stream.encode(resampled))

    def _flush(self) -> None:
        for stream, resampler in self.outputs.values():
            if resampler is not None:
                for resampled in resampler.resample(None):
                    self.container.mux(stream.encode(resampled))
                self.container.mux(stream.encode(None))


class VideoWriter:
    """One video output (see the module docstring): ``write`` pictures, then ``finish`` or
    ``abort``. ``media`` is the opened source (size, fps, time base, audio)."""

    def __init__(
        self,
        path: Path,
        media: Media,
        video_format: VideoFormat,
        *,
        alpha: bool = False,
        crf: int | None = None,
    ):
        av = import_av()
        self.path = path
        self.format = video_format
        self.output = AtomicFile(path, keep_suffix=True)
        self.container = None
        self.audio: AudioPackets | None = None
        self._audio_copy: _AudioCopy | None = None
        self._warned_odd = False
        try:
            self.container = av.open(
                str(self.output.tmp), "w", options=dict(video_format.container_options)
            )
            self.stream = self._add_video_stream(media, alpha, crf)
            if media.path is not None and getattr(media, "audio_streams", 0):
                self.audio = open_audio(media.path)
                if self.audio is not None:
                    self._audio_copy = _AudioCopy(self.audio, self.container, video_format, path)
            self.container.start_encoding()
        except BaseException as error:
            self._close()
            self.output.discard()
            if isinstance(error, (av.FFmpegError, OSError)):
                raise self._error(error) from None
            raise
        self.pix_fmt = self.stream.codec_context.pix_fmt
        self._pictures: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._encode_all, daemon=True)
        self._thread.start()

    def _add_video_stream(self, media: Media, alpha: bool, crf: int | None):
        fmt = self.format
        if alpha and fmt.alpha_pix_fmt is None:
            raise ValueError(f"{fmt.name} video carries no alpha")
        fps = Fraction(media.fps or DEFAULT_FPS).limit_denominator(1001 * 1000)
        options = dict(fmt.alpha_options or fmt.options) if alpha else dict(fmt.options)
        quality = crf if crf is not None else fmt.default_crf
        if quality is not None and fmt.default_crf is not None:
            options["crf"] = str(quality)
        stream = self.container.add_stream(fmt.codec, rate=fps, options=options)
        height, width = media.size
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = fmt.alpha_pix_fmt if alpha else fmt.pix_fmt
        time_base = getattr(media, "time_base", None) or 1 / fps
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        context = stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = _BT709
        context.color_range = _LIMITED_RANGE
        stream.thread_type = "AUTO"
        return stream

    # -- the caller's side ---------------------------------------------------------------------
    def write(self, picture: np.ndarray, pts: int | None = None) -> None:
        """Queue one picture (uint8 gray, RGB or RGBA) shown at ``pts`` (the source frame's,
        in its time base; None: one frame after the previous). Raises what encoding raised."""
        self._raise_failure()
        while True:
            try:
                self._pictures.put((picture, pts), timeout=0.1)
                return
            except queue.Full:
                self._raise_failure()
                if not self._thread.is_alive():
                    raise OSError("the video encoder stopped") from None

    def finish(self) -> Path:
        """Encode what is queued, close the file and put it in place; returns the path."""
        while self._thread.is_alive():
            try:
                self._pictures.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join()
        try:
            self._raise_failure()
        except BaseException:
            self.output.discard()
            raise
        return self.output.commit()

    def abort(self) -> None:
        """Stop encoding, delete the temporary file; the target is left as it was."""
        self._stop.set()
        self._thread.join(timeout=STOP_WAIT_S)
        if not self._thread.is_alive():
            self._close()
        self.output.discard()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    # -- the encoder thread --------------------------------------------------------------------
    def _encode_all(self) -> None:
        av = import_av()
        try:
            pts = None
            while not self._stop.is_set():
                try:
                    item = self._pictures.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is None:
                    self._mux_video(self.stream.encode(None))
                    if self._audio_copy is not None:
                        self._audio_copy.mux_until(None)
                    self._close(raise_errors=True)
                    return
                picture, wanted = item
                pts = wanted if wanted is not None else (0 if pts is None else pts + 1)
                self._mux_video(self.stream.encode(self._frame(picture, pts)))
        except (av.FFmpegError, OSError, ValueError) as error:
            self._failure = self._error(error)
        except BaseException as error:  # reported to the caller, whatever it is
            self._failure = error
        finally:
            if self._failure is not None:
                self._close()

    def _frame(self, picture: np.ndarray, pts: int):
        av = import_av()
        if picture.shape[0] % 2 or picture.shape[1] % 2:
            if not self._warned_odd:
                logger.warning(
                    "%s: %dx%d is odd, padded by one edge pixel to %dx%d",
                    self.path,
                    picture.shape[1],
                    picture.shape[0],
                    self.stream.width,
                    self.stream.height,
                )
                self._warned_odd = True
            picture = _even(picture)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), _numpy_format(picture))
        frame = frame.reformat(format=self.pix_fmt, dst_colorspace="ITU709")
        frame.pts = pts
        frame.time_base = self.stream.codec_context.time_base
        return frame

    def _mux_video(self, packets) -> None:
        for packet in packets:
            if self._audio_copy is not None and packet.dts is not None:
                self._audio_copy.mux_until(float(packet.dts * packet.time_base))
            self.container.mux(packet)

    def _close(self, raise_errors: bool = False) -> None:
        """Close the output container (writing its trailer) and the audio source."""
        container, self.container = self.container, None
        try:
            if container is not None:
                container.close()
        except Exception:
            if raise_errors:
                raise
        finally:
            if self.audio is not None:
                self.audio.close()
                self.audio = None

    def _error(self, error: BaseException) -> OSError:
        """``error`` as an OutputError (no space or permission: the run stops) or an OSError
        saying what FFmpeg complained about."""
        if isinstance(error, OSError) and error.errno in _STOPPING:
            return output_error(self.path, error)
        return OSError(f"cannot encode {self.format.name} video ({av_problem(error)})")
