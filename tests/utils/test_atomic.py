"""utils.io.atomic and utils.io.files: permissions of finished files, the one temporary naming
(videos included) and its sweep, and a natural sort that takes any Unicode name."""

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from torch import nn

from data.dataset import SODDataset
from data.sources import open_source
from utils.inference.video_writer import VIDEO_FORMATS, VideoWriter
from utils.io.atomic import atomic_output, remove_stale_temporaries, write_bytes_atomic
from utils.io.checkpoint import save_checkpoint
from utils.io.files import natural_key
from utils.io.images import write_png_atomic


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_every_writer_follows_the_umask(tmp_path, umask_022):
    """Checkpoints, PNGs and plain files come out 0644 under umask 022 (mkstemp alone: 0600)."""
    save_checkpoint(nn.Linear(2, 2), tmp_path / "latest.pth")
    write_png_atomic(tmp_path / "map.png", np.zeros((4, 4), np.uint8))
    write_bytes_atomic(tmp_path / "table.csv", b"method\n")
    for name in ("latest.pth", "map.png", "table.csv"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    os.umask(0o077)
    save_checkpoint(nn.Linear(2, 2), tmp_path / "private.pth")
    assert (tmp_path / "private.pth").stat().st_mode & 0o777 == 0o600


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "latest.pth"
    target.write_bytes(b"good")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"good" and sorted(tmp_path.iterdir()) == [target]


KILLED_WRITER = """
import os, sys, time
from pathlib import Path
from types import SimpleNamespace
import numpy as np
from utils.inference.video_writer import VIDEO_FORMATS, VideoWriter
from utils.io.atomic import AtomicFile
media = SimpleNamespace(path=None, fps=10.0, size=(16, 16), time_base=None)
video = VideoWriter(Path(sys.argv[1]) / "clip.mp4", media, VIDEO_FORMATS["mp4"])
video.write(np.zeros((16, 16, 3), np.uint8))
AtomicFile(video.path.parent / "state.pth")
time.sleep(0.5)
os._exit(0)  # as a kill: nothing renamed, nothing cleaned
"""


def test_video_temporaries_are_named_and_swept_like_any_other(tmp_path):
    """A video's temporary file keeps its extension (the writer needs it); what a killed run
    left (video and checkpoint alike) is swept by the next run, whatever its age."""
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], check=True)
    left = sorted(tmp_path.iterdir())
    assert [path.name.split(".sodtmp.")[0] for path in left] == [".clip.mp4", ".state.pth"]
    assert left[0].name.endswith(".tmp.mp4") and left[1].name.endswith(".tmp")
    assert sorted(remove_stale_temporaries(tmp_path)) == left
    assert list(tmp_path.iterdir()) == []


def test_a_live_writers_video_is_not_swept(tmp_path):
    media = SimpleNamespace(path=None, fps=10.0, size=(16, 16), time_base=None)
    video = VideoWriter(tmp_path / "clip.mp4", media, VIDEO_FORMATS["mp4"])
    assert remove_stale_temporaries(tmp_path) == [] and video.output.tmp.exists()
    video.abort()
    assert list(tmp_path.iterdir()) == []


def test_natural_key_takes_any_unicode_name():
    names = ["img10.png", "x²y.png", "img2.png", "1²3.png", "٣.png", "Img1.png", "²", ""]
    ordered = sorted(names, key=natural_key)
    assert ordered.index("Img1.png") < ordered.index("img2.png") < ordered.index("img10.png")
    assert natural_key("1²3") == ((0, 1, ""), (1, 0, "²"), (0, 3, ""))


def test_a_file_named_x_squared_y_sorts_and_loads(tmp_path):
    images, masks = tmp_path / "Set" / "images", tmp_path / "Set" / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for stem in ("x²y", "img1²", "img2"):
        write_png_atomic(images / f"{stem}.png", np.full((8, 8, 3), 90, np.uint8))
        write_png_atomic(masks / f"{stem}.png", np.full((8, 8), 255, np.uint8))
    dataset = SODDataset(tmp_path, ["Set"])
    assert [pair.name for pair in dataset.samples] == ["img1²", "img2", "x²y"]
    sample = dataset.load(2)
    assert sample["name"] == "x²y" and np.asarray(sample["gt"]).min() == 255
    assert [media.name for media in open_source(images)] == ["img1²", "img2", "x²y"]
