"""run/Inference.py on real video files made on the fly (data.synthetic_video), with the tiny
Res2Net model and its real weights: H.264 + AAC in, MP4 / WebM / ProRes / PNG frames out,
rotation, variable frame rate, damaged files and PyAV missing.

Expected values: the source's frame count, rate, timestamps and audio; for ``rgba`` the maps
of the same run written as PNG frames (``--type map --video-format png``).
"""

import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest

from data.synthetic_video import write_clip
from run import Inference
from tests.tiny_model import tiny_snapshot, write_test_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT, FRAMES, FPS = 64, 48, 12, 12


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The tiny config and checkpoint, and an H.264 clip with an AAC track."""
    root = tmp_path_factory.mktemp("video")
    _, model = tiny_snapshot(root / "snapshot")
    transforms = {
        "static_resize": {"size": [64, 64]},
        "tonumpy": None,
        "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "totensor": None,
    }
    config = write_test_config(root, model, transforms, "tiny")
    clip = root / "clip.mp4"
    write_clip(clip, FRAMES, FPS, (WIDTH, HEIGHT), audio=True)
    return SimpleNamespace(root=root, config=str(config), clip=clip)


def run(work, source: Path, dest: Path, *args: str) -> int:
    argv = ["--config", work.config, "--no-progress", "--source", str(source), "--dest", str(dest)]
    return Inference.main([*argv, *args])


def facts(path: Path) -> dict:
    """{stream type: (codec, packets, seconds from first start to last end)}."""
    result = {}
    with av.open(str(path)) as container:
        for stream in container.streams:
            packets = [p for p in container.demux(stream) if p.size]
            container.seek(0)
            start = min(p.pts * p.time_base for p in packets)
            end = max((p.pts + p.duration) * p.time_base for p in packets)
            result[stream.type] = (stream.codec_context.name, len(packets), float(end - start))
    return result


def times(path: Path) -> list:
    with av.open(str(path)) as container:
        return [frame.pts * frame.time_base for frame in container.decode(video=0)]


@pytest.mark.slow
def test_h264_with_audio_gives_a_browser_mp4_with_the_same_frames_and_audio(work):
    dest = work.root / "green"
    assert run(work, work.clip, dest, "--type", "green", "--batch-size", "4") == 0
    assert sorted(p.name for p in dest.iterdir()) == ["clip.mp4"]  # no temporary left
    source, result = facts(work.clip), facts(dest / "clip.mp4")
    assert result["video"][:2] == ("h264", FRAMES)
    assert abs(result["video"][2] - source["video"][2]) <= 1 / FPS
    assert result["audio"] == source["audio"]  # the AAC packets copied
    assert times(dest / "clip.mp4") == times(work.clip)
    with av.open(str(dest / "clip.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.average_rate, stream.codec_context.pix_fmt) == (FPS, "yuv420p")
    capture = cv2.VideoCapture(str(dest / "clip.mp4"))
    count = 0
    while capture.read()[0]:
        count += 1
    assert (count, capture.get(cv2.CAP_PROP_FPS)) == (FRAMES, FPS)
    capture.release()


@pytest.mark.slow
def test_rgba_gives_videos_with_alpha_equal_to_the_maps(work):
    maps_dest = work.root / "maps"
    assert run(work, work.clip, maps_dest, "--type", "map", "--video-format", "png") == 0
    maps = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(maps_dest.glob("clip/*"))]
    assert len(maps) == FRAMES and maps[0].shape == (HEIGHT, WIDTH)

    dest = work.root / "rgba"
    assert run(work, work.clip, dest, "--type", "rgba", "--crf", "0", "--batch-size", "2") == 0
    assert run(work, work.clip, dest, "--type", "rgba", "--video-format", "mov") == 0
    assert sorted(p.name for p in dest.iterdir()) == ["clip.mov", "clip.webm"]
    assert facts(dest / "clip.webm")["audio"][0] == "opus"  # AAC re-encoded for WebM
    codec, _, seconds = facts(dest / "clip.mov")["audio"]  # copied (MOV's edit list may
    assert codec == "aac" and abs(seconds - FRAMES / FPS) <= 1 / FPS  # end it with the video)
    with av.open(str(dest / "clip.webm")) as container:
        stream = container.streams.video[0]
        decoder = av.codec.CodecContext.create("libvpx-vp9", "r")  # keeps the alpha plane
        webm = [f for packet in container.demux(stream) for f in decoder.decode(packet)]
    with av.open(str(dest / "clip.mov")) as container:
        mov = list(container.decode(video=0))
        assert container.streams.video[0].codec_context.pix_fmt.startswith("yuva444p")
    for frames in (webm, mov):
        assert len(frames) == FRAMES
        for frame, expected in zip(frames, maps, strict=True):
            alpha = frame.to_ndarray(format="rgba")[..., 3].astype(int)
            assert np.abs(alpha - expected).max() <= 2


def test_rotated_phone_video_comes_out_upright_and_vfr_keeps_its_times(work):
    phone = work.root / "phone.mp4"
    write_clip(phone, 4, FPS, (WIDTH, HEIGHT), rotation=-90)
    vfr = work.root / "vfr.mp4"
    write_clip(vfr, 7, FPS, (WIDTH, HEIGHT), intervals_ms=(100, 40))
    dest = work.root / "upright"
    assert run(work, phone, dest, "--type", "white") == 0
    with av.open(str(dest / "phone.mp4")) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height, frame.rotation) == (HEIGHT, WIDTH, 0)
    assert run(work, vfr, dest, "--type", "map") == 0
    assert times(dest / "vfr.mp4") == times(vfr)


def test_bad_videos_and_bad_options_are_one_line_each(work, tmp_path, capsys, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "zeros.mp4").write_bytes(b"\0" * 4096)
    data = work.clip.read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])  # its index is at the end: gone
    shutil.copy(work.clip, folder / "good.mp4")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "cut.mp4").write_bytes(b"an older result")
    assert run(work, folder, dest, "--overwrite") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert "cut.mp4: " in err[0] and "zeros.mp4: cannot open video" in err[1]
    assert sorted(p.name for p in dest.iterdir()) == ["cut.mp4", "good.mp4"]
    assert (dest / "cut.mp4").read_bytes() == b"an older result"  # kept as it was

    with pytest.raises(SystemExit):
        run(work, work.clip, dest, "--type", "rgba", "--video-format", "mp4")
    assert "mp4 (H.264) carries no alpha" in capsys.readouterr().err
    for extra, message in (
        (["--crf", "52"], "--crf for mp4 must be in 0..51"),
        (["--type", "rgba", "--crf", "64"], "--crf for webm must be in 0..63"),
        (["--video-format", "mov", "--crf", "10"], "--crf applies to mp4 and webm video, not mov"),
    ):
        with pytest.raises(SystemExit):
            run(work, work.clip, dest, *extra)
        assert message in capsys.readouterr().err

    monkeypatch.setitem(sys.modules, "av", None)  # PyAV not installed
    assert run(work, work.clip, dest) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {work.clip}: video files need PyAV: "
        ".venv/bin/pip install -r requirements-video.txt"
    ]
