"""utils.inference.video_writer on real files: a clip made on the fly (data.synthetic_video) is
decoded (data.video), its pictures (with an alpha map for rgba) encoded in every format, and
the results read back with PyAV and OpenCV.

Expected values: the source's frame count, timestamps and audio (its packets, for a copy); the
alpha maps the test wrote, within 2 levels (the alpha plane is coded lossily).
"""

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from data.synthetic_video import write_clip
from data.video import VideoMedia
from utils.inference.video_writer import VIDEO_FORMATS, VideoWriter
from utils.io.atomic import OutputError

WIDTH, HEIGHT, FRAMES, FPS = 64, 48, 24, 12


def alpha_map(index: int) -> np.ndarray:
    """A smooth map that moves with the frame index (as a saliency map does)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    distance = np.hypot(x - 20 - index, y - HEIGHT / 2)
    return np.clip(255 * (1.2 - distance / 20), 0, 255).astype(np.uint8)


def transcode(source: Path, target: Path, video_format: str, alpha: bool = False, **options):
    """Decode ``source``, write its pictures (RGBA with :func:`alpha_map` for ``alpha``)."""
    media = VideoMedia(source).open()
    writer = VideoWriter(target, media, VIDEO_FORMATS[video_format], alpha=alpha, **options)
    for frame in media:
        picture = frame.image
        if alpha:
            picture = np.dstack([picture, alpha_map(frame.index)])
        writer.write(picture, frame.pts)
    assert writer.finish() == target
    return media


def streams(path: Path) -> dict:
    """{type: (codec, frames decoded or packets, duration in seconds)} read back with PyAV."""
    facts = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            if stream.type not in ("video", "audio"):
                continue
            packets = [p for p in container.demux(stream) if p.size]
            container.seek(0)
            end = max((p.pts + p.duration) * p.time_base for p in packets)
            start = min(p.pts * p.time_base for p in packets)
            facts[stream.type] = (stream.codec_context.name, len(packets), float(end - start))
    return facts


def video_times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as container:
        return [frame.pts * frame.time_base for frame in container.decode(video=0)]


def decoded_alpha(path: Path, decoder: str | None = None) -> list[np.ndarray]:
    """The alpha planes of every frame; ``decoder`` names the decoder (``libvpx-vp9``: FFmpeg's
    own vp9 decoder drops the alpha plane of WebM)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if decoder is None:
            frames = list(container.decode(stream))
        else:
            context = av.codec.CodecContext.create(decoder, "r")
            frames = [f for packet in container.demux(stream) for f in context.decode(packet)]
    return [frame.to_ndarray(format="rgba")[..., 3] for frame in frames]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """An H.264 MP4 with an AAC track, 24 frames at 12 fps, 64×48."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_clip(path, FRAMES, FPS, (WIDTH, HEIGHT), audio=True)
    return path


def test_mp4_keeps_frames_timing_and_copies_the_audio(clip, tmp_path):
    target = tmp_path / "out.mp4"
    transcode(clip, target, "mp4")
    source, result = streams(clip), streams(target)
    assert result["video"][:2] == ("h264", FRAMES)
    assert result["audio"] == source["audio"]  # copied: same codec, packets and duration
    assert abs(result["audio"][2] - source["video"][2]) <= 1 / FPS  # audio as long as video
    assert video_times(target) == video_times(clip)
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == FPS and stream.codec_context.pix_fmt == "yuv420p"
        assert stream.codec_context.colorspace == 1  # tagged BT.709
    with open(target, "rb") as handle:  # +faststart: the index before the media data
        head = handle.read(4096)
    assert head.find(b"moov") != -1 and head.find(b"moov") < max(head.find(b"mdat"), 4096)
    capture = cv2.VideoCapture(str(target))  # OpenCV decodes it too
    count = 0
    while capture.read()[0]:
        count += 1
    assert (count, capture.get(cv2.CAP_PROP_FPS)) == (FRAMES, FPS)
    capture.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temporary left


def test_webm_carries_the_alpha_and_opus_audio(clip, tmp_path):
    """At ``crf=0`` the alpha plane is within 2 levels of the maps everywhere (at the default
    CRF 30, 99.9 % of the pixels of a 640×480 clip are; a few edge pixels are off by up to 5)."""
    target = tmp_path / "cut-out.webm"
    transcode(clip, target, "webm", alpha=True, crf=0)
    result = streams(target)
    assert result["video"][:2] == ("vp9", FRAMES)
    assert result["audio"][0] == "opus"  # WebM holds no AAC: re-encoded
    assert abs(result["audio"][2] - FRAMES / FPS) <= 1 / FPS
    alphas = decoded_alpha(target, "libvpx-vp9")
    assert len(alphas) == FRAMES
    for index, alpha in enumerate(alphas):
        error = np.abs(alpha.astype(int) - alpha_map(index))
        assert error.max() <= 2, (index, error.max())
    times = [round(float(t), 3) for t in video_times(target)]  # WebM keeps milliseconds
    assert times == [round(i / FPS, 3) for i in range(FRAMES)]


def test_mov_prores_4444_carries_the_alpha(clip, tmp_path):
    target = tmp_path / "cut-out.mov"
    transcode(clip, target, "mov", alpha=True)
    result = streams(target)
    assert result["video"][:2] == ("prores", FRAMES) and result["audio"][0] == "aac"
    with av.open(str(target)) as container:
        assert container.streams.video[0].codec_context.pix_fmt.startswith("yuva444p")
    for index, alpha in enumerate(decoded_alpha(target)):
        assert np.abs(alpha.astype(int) - alpha_map(index)).max() <= 2


def test_opaque_webm_and_mov_and_the_crf(clip, tmp_path):
    for name, codec, pix_fmt in (("webm", "vp9", "yuv420p"), ("mov", "prores", "yuv422p10le")):
        transcode(clip, tmp_path / f"out.{name}", name)
        with av.open(str(tmp_path / f"out.{name}")) as container:
            context = container.streams.video[0].codec_context
            assert (context.name, context.pix_fmt) == (codec, pix_fmt)
    sizes = {}
    for crf in (0, 51):
        transcode(clip, tmp_path / f"crf{crf}.mp4", "mp4", crf=crf)
        with av.open(str(tmp_path / f"crf{crf}.mp4")) as container:
            sizes[crf] = sum(packet.size for packet in container.demux(video=0))
    assert sizes[0] > 10 * sizes[51]  # lower CRF: better and larger


def test_variable_frame_rate_and_rotation(tmp_path):
    vfr = tmp_path / "vfr.mp4"
    write_clip(vfr, 9, FPS, (WIDTH, HEIGHT), intervals_ms=(100, 40))
    transcode(vfr, tmp_path / "vfr_out.mp4", "mp4")
    assert video_times(tmp_path / "vfr_out.mp4") == video_times(vfr)
    phone = tmp_path / "phone.mp4"
    write_clip(phone, 4, FPS, (WIDTH, HEIGHT), rotation=-90)
    transcode(phone, tmp_path / "upright.mp4", "mp4")
    with av.open(str(tmp_path / "upright.mp4")) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height, frame.rotation) == (HEIGHT, WIDTH, 0)


def test_abort_keeps_the_old_file_and_leaves_nothing(clip, tmp_path):
    target = tmp_path / "out.mp4"
    target.write_bytes(b"the previous result")
    media = VideoMedia(clip).open()
    writer = VideoWriter(target, media, VIDEO_FORMATS["mp4"])
    for frame in media:
        writer.write(frame.image, frame.pts)
        if frame.index == 5:
            break
    writer.abort()
    media.close()
    assert sorted(tmp_path.iterdir()) == [target]
    assert target.read_bytes() == b"the previous result"


def test_odd_sizes_are_padded_and_alpha_needs_a_format_with_alpha(tmp_path, caplog):
    odd = tmp_path / "odd.mkv"
    write_clip(odd, 3, FPS, (WIDTH, HEIGHT))
    media = VideoMedia(odd).open()
    media.size = (HEIGHT - 1, WIDTH - 1)
    writer = VideoWriter(tmp_path / "odd.mp4", media, VIDEO_FORMATS["mp4"])
    for frame in media:
        writer.write(frame.image[1:, 1:], frame.pts)
    writer.finish()
    assert "odd.mp4: 63x47 is odd, padded by one edge pixel to 64x48" in caplog.text
    with pytest.raises(ValueError, match="mp4 video carries no alpha"):
        VideoWriter(tmp_path / "x.mp4", media, VIDEO_FORMATS["mp4"], alpha=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.mkv", "odd.mp4"]


def test_an_unwritable_place_is_an_output_error(clip, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file the user keeps")
    media = VideoMedia(clip).open()
    with pytest.raises(OutputError, match="notes.txt/out.mp4: cannot write: "):
        VideoWriter(blocker / "out.mp4", media, VIDEO_FORMATS["mp4"])
    media.close()
    assert blocker.read_text() == "a file the user keeps"
