"""data.sources: images, folders, videos and webcams for inference.

Expected values: what the test wrote (frame count, fps, size, colours of skimage's sample photos
and of a pure-red frame, which shows a BGR/RGB mix-up), and the module's error rules.
"""

import logging

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data as samples

from data.sources import Frame, ImageMedia, SourceError, open_source
from data.video import VideoMedia

WIDTH, HEIGHT, FPS = 64, 48, 12.0


def _frames():
    """RGB frames: three skimage photos and a pure red frame, 64×48."""
    photos = [samples.astronaut(), samples.coffee(), samples.chelsea()]
    frames = [cv2.resize(photo, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA) for photo in photos]
    frames.append(np.full((HEIGHT, WIDTH, 3), (255, 0, 0), np.uint8))
    return frames * 2


def _write_video(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def test_video_metadata_frames_and_rgb_order(tmp_path):
    path = tmp_path / "영상 폴더" / "my clip.MP4"  # unicode, spaces, upper-case extension
    path.parent.mkdir()
    frames = _frames()
    _write_video(path, frames)
    source = open_source(str(path))
    assert source.kind == "video" and len(source) == 1
    media = next(iter(source))
    assert isinstance(media, VideoMedia) and media.name == "my clip"
    with media:
        assert media.fps == pytest.approx(FPS) and media.size == (HEIGHT, WIDTH)
        assert media.frame_count == len(frames)
    read = list(media)
    assert [frame.index for frame in read] == list(range(len(frames)))
    assert all(frame.image.dtype == np.uint8 and frame.shape == (HEIGHT, WIDTH) for frame in read)
    red = read[3].image.reshape(-1, 3).mean(axis=0)
    assert red[0] > 200 and red[2] < 60  # converted BGR -> RGB
    error = np.abs(read[0].image.astype(int) - frames[0].astype(int)).mean()
    assert error < 20  # the astronaut, through a lossy codec
    assert len(list(media)) == len(frames)  # iterating again reopens the file
    assert [frame.pts for frame in read] == sorted({frame.pts for frame in read})  # timestamps


def test_single_image_and_sample(tmp_path):
    path = tmp_path / "사진 하나.JPG"
    Image.fromarray(_frames()[1]).save(path, format="JPEG")
    source = open_source(path)
    assert source.kind == "image"
    (media,) = list(source)
    assert isinstance(media, ImageMedia) and media.open().size == (HEIGHT, WIDTH)
    (frame,) = list(media)
    assert isinstance(frame, Frame) and frame.index == 0 and frame.name == "사진 하나"
    sample = frame.to_sample()
    assert sample["image"].mode == "RGB" and sample["shape"] == (HEIGHT, WIDTH)
    assert sample["name"] == "사진 하나"


def test_folder_mixes_images_videos_and_reports_bad_files(tmp_path, caplog):
    Image.fromarray(_frames()[0]).save(tmp_path / "img10.png")
    Image.fromarray(_frames()[1]).save(tmp_path / "img2.webp")
    _write_video(tmp_path / "clip.avi", _frames()[:3])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    (tmp_path / "readme.txt").write_text("hello")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    with caplog.at_level(logging.WARNING, logger="data.sources"):
        source = open_source(tmp_path)
    assert "readme.txt: unsupported file type, skipped" in caplog.text
    assert source.kind == "folder"
    assert [m.name for m in source] == ["broken", "clip", "img2", "img10"]
    results, errors = {}, []
    for media in source:
        try:
            results[media.name] = [frame.shape for frame in media]
        except SourceError as error:
            errors.append(str(error))
    assert results == {
        "clip": [(HEIGHT, WIDTH)] * 3,
        "img2": [(HEIGHT, WIDTH)],
        "img10": [(HEIGHT, WIDTH)],
    }
    assert len(errors) == 1 and "broken.jpg" in errors[0] and "\n" not in errors[0]


def test_webcam_without_camera_is_one_line_error():
    source = open_source("57")  # no machine has a 58th camera
    assert source.kind == "webcam"
    (media,) = list(source)
    with pytest.raises(SourceError, match="webcam 57: no camera found at index 57") as caught:
        list(media)
    assert "\n" not in str(caught.value)


def test_bad_inputs(tmp_path):
    with pytest.raises(SourceError, match="no such file or folder"):
        open_source(tmp_path / "missing.jpg")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match="unsupported file type"):
        open_source(tmp_path / "notes.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="folder holds no image or video"):
        open_source(empty)
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\0" * 100)
    with pytest.raises(SourceError, match="fake.mp4: cannot open video"):
        open_source(fake).media[0].open()
