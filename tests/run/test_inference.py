"""run/Inference.py on real photos and a video made from them, with the tiny Res2Net model and
its real weights (tests/fixtures/golden/tiny_res2net_weights.pth).

Most runs call ``main()`` in this process (fast); the mixed-folder case runs the script as a
user does (subprocess) to check its messages and exit status. Expected maps come from the
predictor itself (utils/inference/predictor.py, tested against the spec chain in
tests/utils/test_predictor.py); here the checks are sizes, modes, names, counts and messages.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from skimage import data

from run import Inference
from tests.tiny_model import TRANSFORMS, tiny_snapshot, write_test_config
from utils.inference.compose import parse_output_type
from utils.inference.outputs import default_dest, plan_jobs
from utils.inference.predictor import Predictor
from utils.io.files import safe_name

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "run" / "Inference.py"
FRAMES, FPS, FRAME_SIZE = 6, 12.0, (192, 128)  # video: frame count, rate, (width, height)


script = Inference


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def write_video(path: Path) -> None:
    """FRAMES frames panning across skimage's astronaut and coffee photos, mp4v."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, FRAME_SIZE)
    assert writer.isOpened()
    strip = np.hstack([shrink(data.astronaut(), 256, 256), shrink(data.coffee(), 384, 256)])
    for index in range(FRAMES):
        crop = strip[:, index * 40 : index * 40 + 384]
        writer.write(np.ascontiguousarray(shrink(crop, *FRAME_SIZE)[..., ::-1]))
    writer.release()


def video_facts(path: Path) -> tuple[float, int, int, int]:
    """(fps, width, height, frames actually decoded)."""
    capture = cv2.VideoCapture(str(path))
    facts = [capture.get(cv2.CAP_PROP_FPS)]
    facts += [
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    ]
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return (*facts, count)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny config + checkpoint, a folder of real photos, a video and a mixed folder."""
    root = tmp_path_factory.mktemp("inference")
    _, model = tiny_snapshot(root / "snapshot")
    model["PM"] = {"patch_size": 384, "stride": 192}
    config = write_test_config(root, model, TRANSFORMS, "tiny")
    photos = root / "photos"
    photos.mkdir()
    coffee = shrink(data.coffee(), 300, 200)[..., ::-1]
    cv2.imwrite(str(photos / "coffee.jpg"), coffee)
    cv2.imwrite(str(photos / "chelsea.PNG"), shrink(data.chelsea(), 300, 200)[..., ::-1])
    write_video(root / "clip.mp4")
    mixed = root / "mixed"
    mixed.mkdir()
    shutil.copy(photos / "coffee.jpg", mixed / "coffee.jpg")
    shutil.copy(root / "clip.mp4", mixed / "clip.mp4")
    (mixed / "notes.txt").write_text("not a picture")
    jpeg = (photos / "coffee.jpg").read_bytes()
    (mixed / "broken.jpg").write_bytes(jpeg[: len(jpeg) // 3])  # truncated JPEG
    background = root / "sea.png"
    cv2.imwrite(str(background), np.full((50, 80, 3), (200, 120, 0), np.uint8))
    return SimpleNamespace(
        root=root,
        config=str(config),
        photos=photos,
        mixed=mixed,
        video=root / "clip.mp4",
        background=str(background),
    )


def run(work, *args: str) -> int:
    return script.main(["--config", work.config, "--no-progress", *args])


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


@pytest.fixture(scope="module")
def map_outputs(work):
    """Gray maps of the photos, one by one, eager: the reference for the other runs."""
    dest = work.root / "out" / "map"
    assert run(work, "--source", str(work.photos), "--dest", str(dest), "--type", "map") == 0
    return dest


@pytest.mark.slow
def test_every_type_on_photos(work, map_outputs):
    types = ["rgba", "green", "white", "[255,0,0]", "blur", "overlay", work.background]
    for number, kind in enumerate(types):
        dest = work.root / "out" / f"type{number}"
        assert run(work, "--source", str(work.photos), "--dest", str(dest), "--type", kind) == 0
        assert sorted(p.name for p in dest.iterdir()) == ["chelsea.png", "coffee.png"]
        for name in ("chelsea.png", "coffee.png"):
            picture, gray = read(dest / name), read(map_outputs / name)
            assert gray.shape == (200, 300)  # map: single channel at the original size
            assert picture.shape == (200, 300, 4 if kind == "rgba" else 3), kind
            if kind == "rgba":
                np.testing.assert_array_equal(picture[..., 3], gray)  # alpha equals the map


def test_default_dest_single_image(work, monkeypatch):
    monkeypatch.chdir(work.root)
    assert run(work, "--source", str(work.photos / "coffee.jpg"), "--type", "[1,2,3]") == 0
    assert (work.root / "results/tiny/colour_1_2_3/coffee.png").is_file()


@pytest.mark.slow
def test_video_keeps_fps_size_and_frame_count(work):
    assert video_facts(work.video) == (FPS, *FRAME_SIZE, FRAMES)  # what the test encoded
    dest = work.root / "out" / "video"
    assert (
        run(
            work,
            "--source",
            str(work.video),
            "--dest",
            str(dest),
            "--type",
            "green",
            "--batch-size",
            "4",
            "--verbose",
        )
        == 0
    )
    assert sorted(p.name for p in dest.iterdir()) == ["clip.mp4"]  # no temporary file left
    assert video_facts(dest / "clip.mp4") == (FPS, *FRAME_SIZE, FRAMES)

    frames_argv = ["--type", "rgba", "--video-format", "png"]
    assert run(work, "--source", str(work.video), "--dest", str(dest), *frames_argv) == 0
    frames = sorted(p.name for p in (dest / "clip").iterdir())
    assert frames == [f"{index:06d}.png" for index in range(FRAMES)]
    assert read(dest / "clip" / "000000.png").shape == (FRAME_SIZE[1], FRAME_SIZE[0], 4)


@pytest.mark.slow
def test_mixed_folder_messages_exit_codes_and_resume(work, capsys):
    dest = work.root / "out" / "mixed"
    command = [
        sys.executable,
        str(SCRIPT),
        "--config",
        work.config,
        "--source",
        str(work.mixed),
        "--dest",
        str(dest),
        "--type",
        "map",
        "--no-progress",
        "--batch-size",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    broken = [line for line in lines if "broken.jpg" in line]
    assert len(broken) == 1 and broken[0].startswith("error: ") and "cannot decode" in broken[0]
    notes = [line for line in lines if "notes.txt" in line]
    assert len(notes) == 1 and notes[0].startswith("warning: ") and "unsupported" in notes[0]
    assert "2 processed, 1 failed" in done.stdout
    assert sorted(p.name for p in dest.iterdir()) == ["clip.mp4", "coffee.png"]
    assert video_facts(dest / "clip.mp4")[3] == FRAMES

    # An interrupted or repeated run resumes: outputs already there are skipped.
    stamps = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    argv = ["--source", str(work.mixed), "--dest", str(dest), "--type", "map"]
    assert run(work, *argv) == 0
    assert "0 processed, 2 already there" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == stamps
    assert run(work, *argv, "--overwrite") == 0
    assert (dest / "coffee.png").stat().st_mtime_ns != stamps["coffee.png"]

    # Nothing usable: exit 1.
    bad = work.root / "bad"
    bad.mkdir()
    shutil.copy(work.mixed / "broken.jpg", bad / "broken.jpg")
    (bad / "notes.txt").write_text("x")
    assert run(work, "--source", str(bad), "--dest", str(work.root / "out" / "bad")) == 1
    err = capsys.readouterr().err
    assert "error: " in err and "broken.jpg" in err


@pytest.mark.slow
@pytest.mark.needs_cxx
def test_jit_and_batched_outputs_equal_one_by_one(work, map_outputs, monkeypatch):
    batches = []
    predict = Predictor.predict_prepared

    def spy(self, items):
        batches.append(len(items))
        return predict(self, items)

    monkeypatch.setattr(Predictor, "predict_prepared", spy)
    for name, extra in (("batched", ["--batch-size", "2"]), ("jit", ["--jit"])):
        dest = work.root / "out" / name
        args = ["--source", str(work.photos), "--dest", str(dest), "--type", "map", *extra]
        assert run(work, *args) == 0
        for image in ("chelsea.png", "coffee.png"):
            difference = read(dest / image).astype(int) - read(map_outputs / image)
            assert np.abs(difference).max() <= 1, (name, image)  # within 1/255
    assert batches[0] == 2  # the two photos went through the network together
    assert list((work.root / "snapshot" / "jit").glob("latest_*_cpu_fp32_1x192x288_384x384.pt2"))


def test_patch_merging(work):
    dest = work.root / "out" / "pm"
    assert run(work, "--source", str(work.photos), "--dest", str(dest), "--PM") == 0
    assert read(dest / "coffee.png").shape == (200, 300)


def test_webcam_without_display_or_camera(work, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        assert run(work, "--source", "0") == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == ["error: webcam0: no display to show the live window (DISPLAY is not set)"]
    monkeypatch.setenv("DISPLAY", ":99")  # a display is claimed, but there is no camera 9
    assert run(work, "--source", "9") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: webcam 9: no camera found at index 9 (cannot open the device)"]


def test_setup_errors_exit_2(work, capsys):
    photo = str(work.photos / "coffee.jpg")
    assert run(work, "--source", photo, "--type", "grey") == 2
    assert "unknown output type 'grey'" in capsys.readouterr().err
    assert run(work, "--source", photo, "--ckpt", str(work.root / "none.pth")) == 2
    assert "none.pth: checkpoint not found" in capsys.readouterr().err
    assert run(work, "--source", str(work.root / "absent.jpg")) == 2
    assert "absent.jpg: no such file or folder" in capsys.readouterr().err
    assert run(work, "--source", photo, "--opts", "Model.dept=3") == 2
    assert "did you mean depth?" in capsys.readouterr().err


def test_output_never_replaces_its_input(work, capsys):
    folder = work.root / "in_place"
    folder.mkdir()
    shutil.copy(work.photos / "chelsea.PNG", folder / "cat.png")
    before = (folder / "cat.png").read_bytes()
    assert run(work, "--source", str(folder), "--dest", str(folder)) == 1
    assert "the output would replace the input" in capsys.readouterr().err
    assert (folder / "cat.png").read_bytes() == before


def test_output_names_stay_inside_dest(tmp_path):
    assert safe_name("..") == "_.."
    assert safe_name(".") == "_."
    assert safe_name("a/../b") == "a_.._b"
    assert safe_name("x\\y\nz") == "x_y_z"
    assert safe_name("") == "_"

    def media(name, kind="image"):
        return SimpleNamespace(name=name, kind=kind, path=Path(f"/in/{name}.ext"))

    items = [media("a"), media("A"), media(".."), media("../../etc/x"), media("..", "video")]
    source = SimpleNamespace(kind="folder", description="/in", media=items)
    jobs = plan_jobs(items, tmp_path, parse_output_type("rgba"), "png")
    names = [job.path.name for job in jobs]
    assert names == ["a.png", "A_ext.png", "_...png", "_.._.._etc_x.png", "_.."]
    assert all(job.path.parent == tmp_path for job in jobs)
    assert jobs[-1].sequence  # --video-format png: a folder of frames, inside dest
    webm = plan_jobs(items, tmp_path, parse_output_type("rgba"))[-1]  # rgba's default: WebM
    assert webm.path == tmp_path / "_...webm" and not webm.sequence
    assert default_dest("my", source, parse_output_type("map")) == Path("results/my/map/in")


@pytest.mark.slow
def test_foreground_option_and_config_key(work):
    """--foreground and Test.foreground reach compose: each output is what compose makes of
    the predictor's map with that method (none: the raw image, as before)."""
    from utils.inference.compose import compose
    from utils.io.images import read_image

    photo = work.photos / "coffee.jpg"
    image = np.asarray(read_image(photo))
    saliency = Predictor.from_config(work.config).predict(image)
    runs = {
        "fast": [],  # the default
        "none": ["--foreground", "none"],
        "ml": ["--opts", "Test.foreground=ml"],
        "none_from_config": ["--opts", "Test.foreground=ml", "--foreground", "none"],
    }
    outputs = {}
    for name, extra in runs.items():
        dest = work.root / "out" / f"foreground_{name}"
        assert (
            run(work, "--source", str(photo), "--dest", str(dest), "--type", "green", *extra) == 0
        )
        outputs[name] = read(dest / "coffee.png")[..., ::-1]  # BGR -> RGB
        method = "none" if name.startswith("none") else name
        expected = compose(image, saliency, "green", foreground=method)
        assert np.abs(outputs[name].astype(int) - expected).max() <= 1, name
    assert (outputs["fast"] != outputs["none"]).any()  # the random-weight map is soft
    # --foreground wins over the config key (runs differ by float rounding of the map only)
    assert np.abs(outputs["none"].astype(int) - outputs["none_from_config"]).max() <= 1


def test_foreground_errors_exit_2(work, capsys, monkeypatch):
    import importlib.util

    photo = str(work.photos / "coffee.jpg")
    assert run(work, "--source", photo, "--opts", "Test.foreground=best") == 2
    assert "Test.foreground" in capsys.readouterr().err
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "pymatting" else real(name, *args),
    )
    assert run(work, "--source", photo, "--type", "rgba", "--foreground", "ml") == 2
    err = capsys.readouterr().err
    assert "--foreground ml needs pymatting: pip install -r requirements-matting.txt" in err
