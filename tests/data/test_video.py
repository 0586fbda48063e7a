"""data.video: video files decoded with PyAV, on real H.264 files made on the fly
(data.synthetic_video): metadata, timestamps (variable frame rate too), rotation metadata,
files cut short or unreadable, and PyAV missing.

Expected values: what the test encoded (frame count, rate, times, the pictures and a white
marker in the first one's top-left corner).
"""

import logging
import sys
from fractions import Fraction

import numpy as np
import pytest

from data.sources import SourceError, open_source
from data.synthetic_video import write_clip
from data.video import VideoMedia, open_audio

WIDTH, HEIGHT, FRAMES, FPS = 64, 48, 24, 12


def _decoded(path):
    media = open_source(path).media[0]
    assert isinstance(media, VideoMedia)
    media.open()
    return media, list(media)


def test_h264_clip_metadata_frames_timestamps_and_audio(tmp_path):
    path = tmp_path / "클립 a.mp4"
    pictures = write_clip(path, FRAMES, FPS, (WIDTH, HEIGHT), audio=True)
    media, frames = _decoded(path)
    assert (media.fps, media.size, media.frame_count) == (FPS, (HEIGHT, WIDTH), FRAMES)
    assert media.rotation == 0 and media.audio_streams == 1
    assert media.duration == pytest.approx(FRAMES / FPS, abs=1 / FPS)
    assert [frame.index for frame in frames] == list(range(FRAMES))
    times = [frame.pts * frame.time_base for frame in frames]
    assert times == [Fraction(index, FPS) for index in range(FRAMES)]
    for frame, picture in zip(frames, pictures, strict=True):
        assert frame.image.shape == (HEIGHT, WIDTH, 3) and frame.image.dtype == np.uint8
        assert np.abs(frame.image.astype(int) - picture).mean() < 8  # RGB order, lossy codec
    with open_audio(path) as audio:
        assert [stream.codec_context.name for stream in audio.streams] == ["aac"]
        assert sum(packet.duration for packet in audio) / 44100 == pytest.approx(2, abs=0.05)


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_rotation_metadata_is_applied_to_the_pixels(tmp_path, rotation):
    """A phone held upright writes a landscape picture and a display matrix of -90° (turn it a
    quarter clockwise); frames come out as a player shows them."""
    path = tmp_path / f"phone{rotation}.mp4"
    pictures = write_clip(path, 6, FPS, (WIDTH, HEIGHT), rotation=rotation)
    media, frames = _decoded(path)
    assert media.rotation == rotation
    turned = (WIDTH, HEIGHT) if rotation % 180 else (HEIGHT, WIDTH)
    assert media.size == turned and frames[0].shape == turned
    expected = np.rot90(pictures[0], rotation // 90)  # counter-clockwise for positive angles
    assert np.abs(frames[0].image.astype(int) - expected).mean() < 8
    marker = np.zeros((HEIGHT, WIDTH), bool)
    marker[2:6, 2:6] = True  # inside the white 8×8 marker of the top-left corner
    where = np.rot90(marker, rotation // 90)
    assert frames[0].image[where].min() > 200
    rows, columns = np.nonzero(where)
    top, left = rows.mean() < where.shape[0] / 2, columns.mean() < where.shape[1] / 2
    assert (top, left) == {-90: (True, False), 90: (False, True), 180: (False, False)}[rotation]


def test_variable_frame_rate_keeps_its_timestamps(tmp_path):
    path = tmp_path / "vfr.mp4"
    write_clip(path, 9, FPS, (WIDTH, HEIGHT), intervals_ms=(100, 40))
    _, frames = _decoded(path)
    milliseconds = [frame.pts * frame.time_base * 1000 for frame in frames]
    assert milliseconds == [0, 100, 140, 240, 280, 380, 420, 520, 560]


def test_a_file_cut_short_keeps_its_frames_with_one_warning(tmp_path, caplog):
    path = tmp_path / "cut.mkv"  # Matroska: the header is at the front, the cut keeps it
    write_clip(path, 48, FPS, (WIDTH, HEIGHT))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 8 // 10])  # the first key frame is 40% of it
    with caplog.at_level(logging.WARNING, logger="data.video"):
        media, frames = _decoded(path)
    assert 5 < len(frames) < 48
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cut.mkv: only" in warnings[0] and "cut short" in warnings[0]


def test_unreadable_files_are_one_line_errors(tmp_path):
    fake = tmp_path / "zeros.mp4"
    fake.write_bytes(b"\0" * 4096)
    with pytest.raises(SourceError, match=r"zeros\.mp4: cannot open video \(") as caught:
        open_source(fake).media[0].open()
    assert "\n" not in str(caught.value)
    clip = tmp_path / "clip.mp4"
    write_clip(clip, 24, FPS, (WIDTH, HEIGHT))
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"  # an MP4 cut before its index (moov at the end): unreadable
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"cut\.mp4: (cannot open video|video has no readable)"):
        open_source(cut).media[0].open()


def test_without_pyav_a_video_says_what_to_install(tmp_path, monkeypatch):
    clip = tmp_path / "clip.mp4"
    write_clip(clip, 3, FPS, (WIDTH, HEIGHT))
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    with pytest.raises(SourceError) as caught:
        open_source(clip).media[0].open()
    assert str(caught.value) == (
        f"{clip}: video files need PyAV: .venv/bin/pip install -r requirements-video.txt"
    )


def test_a_decoding_failure_part_way_is_one_line_naming_the_frame(tmp_path):
    """FFmpeg conceals most damage in the bitstream; what it cannot read (a demuxing or I/O
    error) ends the video with one line naming the frame. Simulated here after two frames."""
    import av

    clip = tmp_path / "clip.mp4"
    write_clip(clip, 6, FPS, (WIDTH, HEIGHT))
    media = VideoMedia(clip).open()
    decoded = media._frames

    def failing():
        yield next(decoded)
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input")

    media._frames = failing()
    with pytest.raises(SourceError) as caught:
        list(media)
    assert str(caught.value) == (
        f"{clip}: damaged at frame 2 (Invalid data found when processing input)"
    )
    assert media._container is None  # released
