"""The robustness suite's corpus (issue "Robustness: bad inputs, interruptions and untrusted files
never cost a user their work"), built on the fly: no binary file is committed.

* ``corpus.clean``: a tiny synthetic data set (data.synthetic, 64 px): ``Train_Dataset/Synth-TR``
  and ``Test_Dataset/Synth-TE`` with 5 and 4 pairs, and ``Test_Dataset/Synth-EV/masks`` (the test
  masks plus the plain 8-bit twins of the usable awkward masks, for Eval).
* ``corpus.bad``: the same, plus every awkward or broken input of the issue (``PHOTOS`` in
  Synth-TR and Synth-TE with plain masks, ``MASKS`` with plain photos in Synth-TR and as masks
  in Synth-EV). ``corpus.inputs[file name]`` says what each must give.
* ``checkpoint``: one random-weight checkpoint of configs/InSPyReNet_Tiny.yaml for the session.
* ``run_script(main, argv)``: a script's ``main`` run in this process, its exit status and every
  line it printed or logged.
* ``plant_leftovers(folder)``: the temporary files a killed write would have left there.

Expected outcomes come from the rules in utils/io/images.py (read_image, read_mask) and the
scripts' docstrings (exit status, skipped files).
"""

import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from data.synthetic import make_pair, make_synthetic_dataset
from lib import build_model
from utils.config import load_config
from utils.io.atomic import temporary_prefix
from utils.io.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "InSPyReNet_Tiny.yaml"
BOMB_SIDE = 30000  # 900 Mpx claimed: more than utils.io.images.MAX_PIXELS (400 Mpx)

# Awkward or broken photos (each with a plain mask) and masks (each with a plain photo).
PHOTOS = (
    "cmyk.jpg",
    "progressive.jpg",
    "exif_rotated.jpg",
    "gray.jpg",
    "rgba.png",
    "사진 01.jpg",
    "middle_truncated.jpg",
    "bomb.png",
)
MASKS = ("deep16.png", "rgb_mask.png", "마스크 01.png", "truncated_mask.png", "bomb_mask.png")
CANNOT_DECODE = "cannot decode image"
BOMB = "refused as a possible decompression bomb"
PROBLEMS = {  # the refused inputs and a phrase of their one-line message (utils.io.images)
    "middle_truncated.jpg": CANNOT_DECODE,
    "bomb.png": BOMB,
    "truncated_mask.png": CANNOT_DECODE,
    "bomb_mask.png": BOMB,
}


@dataclass
class BadInput:
    """One awkward or broken file and what reading it must give."""

    name: str  # the file name
    folder: str  # where it is in a set: "images" (PHOTOS) or "masks" (MASKS)
    problem: str | None  # a phrase of the one-line refusal; None: the file is usable
    shape: tuple[int, int]  # (H, W) of the pair as displayed: the size of its outputs
    mask: np.ndarray | None = None  # a usable mask's expected 8-bit values

    @property
    def stem(self) -> str:
        """The name without its extension: the pair's name and its outputs' stem."""
        return Path(self.name).stem


@dataclass
class Corpus:
    """The two data set folders and the catalogue of bad inputs, by file name."""

    clean: Path
    bad: Path
    inputs: dict[str, BadInput]


def _pair(index: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic (RGB, 0/255 mask) pair that is not square (so a rotation shows)."""
    image, mask = make_pair(np.random.default_rng([11, index]), 64)
    if image.shape[0] == image.shape[1]:
        image, mask = image[:, :-8], mask[:, :-8]
    return image, mask


def _soft(mask: np.ndarray) -> np.ndarray:
    """The mask with blurred edges: values between 0 and 255 too."""
    return cv2.GaussianBlur(mask, (7, 7), 2)


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])  # the header stays: the size is readable


def _write_photo(name: str, image: np.ndarray, path: Path, bomb: bytes) -> None:
    """Write photo input ``name`` (showing ``image`` once read) to ``path``."""
    picture = Image.fromarray(image)
    if name == "cmyk.jpg":
        picture.convert("CMYK").save(path, quality=95)
    elif name == "progressive.jpg":
        picture.save(path, progressive=True, quality=90)
    elif name == "exif_rotated.jpg":  # stored turned left; orientation 6 turns it back right
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(np.rot90(image)).save(path, quality=95, exif=exif)
    elif name == "gray.jpg":
        picture.convert("L").save(path, quality=95)
    elif name == "rgba.png":
        Image.fromarray(np.dstack([image, np.full(image.shape[:2], 60, np.uint8)])).save(path)
    elif name == "bomb.png":
        path.write_bytes(bomb)
    else:  # "사진 01.jpg" and the one truncated afterwards
        picture.save(path, quality=95)
    if name == "middle_truncated.jpg":
        _truncate(path, 0.5)


def _write_mask(name: str, mask: np.ndarray, path: Path, bomb: bytes) -> np.ndarray | None:
    """Write mask input ``name`` to ``path``; return its expected 8-bit values (None: refused)."""
    soft = _soft(mask)
    if name == "deep16.png":
        Image.fromarray(soft.astype(np.uint16) * 257).save(path)  # v·257 reads back as v
    elif name == "rgb_mask.png":
        Image.fromarray(np.dstack([soft, soft, soft])).save(path)  # equal channels: gray v
    elif name == "bomb_mask.png":
        path.write_bytes(bomb)
        return None
    else:  # "마스크 01.png" and the one truncated afterwards
        Image.fromarray(soft).save(path)
    if name == "truncated_mask.png":
        _truncate(path, 0.75)
        return None
    return soft


def _build(root: Path, bomb: bytes) -> Corpus:
    clean, bad = root / "clean", root / "bad"
    make_synthetic_dataset(clean, n_train=5, n_test=4, size=64, seed=2)
    shutil.copytree(clean, bad)
    evaluation = "Test_Dataset/Synth-EV/masks"
    shutil.copytree(clean / "Test_Dataset/Synth-TE/masks", clean / evaluation)
    shutil.copytree(clean / evaluation, bad / evaluation)
    inputs = {}
    for index, name in enumerate(PHOTOS):
        image, mask = _pair(index)
        stem = Path(name).stem
        for split in ("Train_Dataset/Synth-TR", "Test_Dataset/Synth-TE"):
            _write_photo(name, image, bad / split / "images" / name, bomb)
            Image.fromarray(mask).save(bad / split / "masks" / f"{stem}.png")
        inputs[name] = BadInput(name, "images", PROBLEMS.get(name), mask.shape)
    for index, name in enumerate(MASKS, start=len(PHOTOS)):
        image, mask = _pair(index)
        stem = Path(name).stem
        folder = bad / "Train_Dataset/Synth-TR"
        Image.fromarray(image).save(folder / "images" / f"{stem}.jpg", quality=95)
        expected = _write_mask(name, mask, folder / "masks" / name, bomb)
        shutil.copy(folder / "masks" / name, bad / evaluation / name)
        if expected is not None:  # the plain twin Eval must score identically
            Image.fromarray(expected).save(clean / evaluation / f"{stem}.png")
        inputs[name] = BadInput(name, "masks", PROBLEMS.get(name), mask.shape, expected)
    return Corpus(clean, bad, inputs)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, png_claiming) -> Corpus:
    """The clean and the bad data sets (see the module docstring)."""
    return _build(tmp_path_factory.mktemp("corpus"), png_claiming(BOMB_SIDE, BOMB_SIDE))


@pytest.fixture(params=PHOTOS)
def photo(request, corpus) -> BadInput:
    """Each awkward or broken photo in turn."""
    return corpus.inputs[request.param]


@pytest.fixture(params=MASKS)
def mask(request, corpus) -> BadInput:
    """Each awkward or broken mask in turn."""
    return corpus.inputs[request.param]


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A random-weight checkpoint of the tiny config (seed 0): what is checked here (which files
    are written, their sizes, messages) does not depend on training."""
    torch.manual_seed(0)
    model = build_model(load_config(CONFIG)["Model"])
    path = tmp_path_factory.mktemp("checkpoint") / "latest.pth"
    save_checkpoint(model, path)
    return path


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Every robustness module runs on one intra-op thread (tests/conftest.py)."""
    yield


@dataclass
class Run:
    """How a script's ``main`` ended and what it said (stdout and stderr)."""

    status: int
    lines: list[str]

    def naming(self, path: Path) -> list[str]:
        """The lines that name ``path``."""
        return [line for line in self.lines if str(path) in line]


def _run_script(main: Callable[[list[str]], int], argv: list[str]) -> Run:
    """Every line goes through the scripts' console log (utils.cli), which writes to the
    current stdout and stderr: both are captured here."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    lines = out.getvalue().splitlines() + err.getvalue().splitlines()
    assert not any(line.startswith("Traceback") for line in lines), "\n".join(lines)
    return Run(status, lines)


@pytest.fixture(scope="session")
def run_script() -> Callable[[Callable[[list[str]], int], list[str]], Run]:
    """``run_script(main, argv)`` -> :class:`Run` (see the module docstring)."""
    return _run_script


@dataclass
class Leftovers:
    """Temporary files as killed and running writes leave them (utils.io.atomic's names), and a
    user's own hidden files that merely look like temporary files."""

    stale: Path  # a killed write's temporary file (its process is gone): the next run deletes it
    young: Path  # a live writer's: it may be writing there now, so it stays
    users: list[Path]  # the user's own files, however old: never touched


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def temporary_name(target: str, pid: int) -> str:
    """The name utils.io.atomic gives the temporary file of ``target`` written by ``pid``."""
    prefix = temporary_prefix(Path(target)).replace(f".{os.getpid()}.", f".{pid}.")
    return f"{prefix}abcd1234.tmp"


def _plant_leftovers(folder: Path) -> Leftovers:
    folder.mkdir(parents=True, exist_ok=True)
    stale = folder / temporary_name("old.png", dead_pid())
    young = folder / temporary_name("new.png", os.getppid())  # pytest's parent: alive
    users = [folder / name for name in (".old.png.abcd1234.tmp", ".notes.sodtmp.tmp", ".x.tmp")]
    an_hour_ago = time.time() - 3600
    for path in [stale, young, *users]:
        path.write_bytes(b"\x89PNG half a map")
        os.utime(path, (an_hour_ago, an_hour_ago))
    return Leftovers(stale, young, users)


@pytest.fixture(scope="session")
def plant_leftovers() -> Callable[[Path], Leftovers]:
    """``plant_leftovers(folder)`` -> :class:`Leftovers` written into ``folder``."""
    return _plant_leftovers


def _assert_same_pngs(folder: Path, clean_folder: Path, count: int) -> None:
    good = sorted(path.name for path in clean_folder.glob("*.png"))
    assert len(good) == count
    for name in good:
        assert (folder / name).read_bytes() == (clean_folder / name).read_bytes(), name


@pytest.fixture(scope="session")
def assert_same_pngs() -> Callable[[Path, Path, int], None]:
    """``assert_same_pngs(folder, clean_folder, count)``: the ``count`` PNGs of the run on good
    files only (``clean_folder``) are byte-identical in ``folder``."""
    return _assert_same_pngs
