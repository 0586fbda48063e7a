"""Real video files made on the fly (PyAV), for tests and benchmarks: a pan across a photo,
encoded as H.264 MP4 (yuv420p), optionally with an AAC tone, a display-matrix rotation (as
phones write) or variable frame intervals.

    write_clip(path, frames=24, fps=12, size=(64, 48), audio=True)
    write_clip(path, frames=24, fps=12, size=(64, 48), rotation=-90)   # a phone held upright
    write_clip(path, frames=24, size=(64, 48), intervals_ms=(100, 40))  # variable frame rate
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from data.video import import_av

AUDIO_RATE = 44100
TONE_HZ = 440.0


def pan_frames(photo: np.ndarray, frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``frames`` RGB pictures of ``size`` (width, height) panning left to right across
    ``photo`` (RGB uint8), the first one with a white 8×8 marker in its top-left corner."""
    width, height = size
    scale = height / photo.shape[0]
    strip_width = max(width + frames, round(photo.shape[1] * scale))
    strip = cv2.resize(photo, (strip_width, height), interpolation=cv2.INTER_AREA)
    step = (strip_width - width) / max(frames - 1, 1)
    pictures = []
    for index in range(frames):
        left = round(index * step)
        pictures.append(np.ascontiguousarray(strip[:, left : left + width]))
    pictures[0] = pictures[0].copy()
    pictures[0][:8, :8] = 255
    return pictures


def write_clip(
    path: Path,
    frames: int = 24,
    fps: int = 12,
    size: tuple[int, int] = (64, 48),
    *,
    photo: np.ndarray | None = None,
    audio: bool = False,
    rotation: int = 0,
    intervals_ms: Sequence[int] | None = None,
    crf: int = 23,
) -> list[np.ndarray]:
    """Write an H.264 MP4 of :func:`pan_frames` (over ``photo``, default skimage's astronaut)
    at ``fps``, or with the frame intervals cycling through ``intervals_ms`` (time base 1 ms);
    ``audio``: a mono AAC tone as long as the video; ``rotation``: a display matrix rotating
    the pictures that many degrees counter-clockwise for display (phones write -90 for a video
    held upright). Returns the pictures as encoded (before any rotation)."""
    av = import_av()
    if photo is None:
        from skimage import data as samples

        photo = samples.astronaut()
    pictures = pan_frames(photo, frames, size)
    time_base = Fraction(1, 1000) if intervals_ms else Fraction(1, fps)
    times = [0]
    for index in range(1, frames):
        step = intervals_ms[(index - 1) % len(intervals_ms)] if intervals_ms else 1
        times.append(times[-1] + step)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"crf": str(crf)})
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = time_base
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
        for picture, pts in zip(pictures, times, strict=True):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            seconds = float((times[-1] + (times[-1] - times[-2] if frames > 1 else 1)) * time_base)
            t = np.arange(round(AUDIO_RATE * seconds)) / AUDIO_RATE
            tone = (0.3 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = AUDIO_RATE, 0
            container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return pictures
