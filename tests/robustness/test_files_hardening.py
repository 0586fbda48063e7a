"""Checkpoints, images, archives, the jit cache and folder listings against hostile files (issue
"Reliability II"), each input built on the fly.

Expected outcomes come from the modules' docstrings: utils/io/checkpoint.py (regular files, the
torch.save formats, non-finite weights), utils/io/images.py (MAX_PIXELS, the memory check),
utils/downloads/archive.py and fetch.py (limits, ``file://`` paths), utils/inference/predictor.py
(the jit cache key) and data/sources.py, data/dataset.py (entries named like images).

A test that gives a FIFO to code that could open it runs that code in a thread with a time limit:
a regression fails the test (the FIFO is then opened for writing, which releases the reader)
instead of hanging the suite.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from data.dataset import SODDataset
from data.sources import SourceError, open_source
from lib import CheckpointError, build_model
from run import Inference
from utils.config import load_config
from utils.downloads import archive as archive_module
from utils.downloads.archive import safe_extract
from utils.downloads.verify import VerifyError
from utils.inference.predictor import Predictor
from utils.io import checkpoint as checkpoint_module
from utils.io import images as image_io
from utils.io.checkpoint import load_model, read_state_dict
from utils.io.images import ImageReadError, read_image, read_image_size, read_mask

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "InSPyReNet_Tiny.yaml"
BOMB = "refused as a possible decompression bomb"  # tests/robustness/conftest.py relies on it
LIMIT_S = 60  # far above what any of these calls needs; only a blocked call reaches it


# ------------------------------------------------------------------------------------------------
# helpers


def within(seconds: float, function: Callable, *args, fifos: tuple[Path, ...] = ()):
    """``function(*args)`` in a thread; fails the test when it has not returned in ``seconds``
    (then each of ``fifos`` is opened for writing and closed, so a reader blocked on it ends)."""
    outcome: dict = {}

    def call():
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # nobody reads it
                pass
        thread.join(5)
        pytest.fail(f"{getattr(function, '__name__', function)} blocked (it opened a FIFO?)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def bytes_read_by_this_process() -> int:
    """Bytes this process has read through read() calls (/proc/self/io's rchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def write_photo(path: Path, size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
    """A small RGB photo (width, height) of noise."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def tiny_model_cfg() -> dict:
    return load_config(CONFIG)["Model"]


def one_line(error: BaseException) -> str:
    message = str(error)
    assert "\n" not in message, message
    return message


# ------------------------------------------------------------------------------------------------
# 1. checkpoints holding NaN or infinity are refused when loaded


@pytest.fixture
def poisoned(checkpoint, tmp_path):
    """``poisoned(values)``: a copy of the tiny checkpoint with ``values[i]`` put into one element
    of the i-th chosen tensor (two weights in the middle of the state dict); returns the path and
    the chosen keys."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    floats = [key for key, tensor in state.items() if tensor.is_floating_point()]
    keys = [floats[len(floats) // 2], floats[len(floats) // 2 + 3]]

    def make(values: list[float]) -> tuple[Path, list[str]]:
        copy = {key: tensor.clone() for key, tensor in state.items()}
        for key, value in zip(keys, values, strict=False):
            copy[key].view(-1)[1] = value
        path = tmp_path / "diverged.pth"
        torch.save(copy, path)
        return path, keys

    return make


@pytest.mark.parametrize(("value", "kind"), [(float("nan"), "nan"), (float("inf"), "inf")])
def test_checkpoint_with_non_finite_weights_is_refused_naming_the_key(poisoned, value, kind):
    path, keys = poisoned([value])
    for load in (read_state_dict, lambda p: load_model(tiny_model_cfg(), p)):
        with pytest.raises(CheckpointError) as info:
            load(path)
        message = one_line(info.value)
        assert message.startswith(f"{path}: holds non-finite values ({kind}) in {keys[0]}")


def test_first_non_finite_key_is_named_and_the_others_counted(poisoned):
    path, keys = poisoned([float("-inf"), float("nan")])
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    message = one_line(info.value)
    assert f"(inf) in {keys[0]} (and 1 more tensors)" in message
    assert keys[1] not in message


def test_inference_with_a_diverged_checkpoint_fails_in_one_line(poisoned, run_script, tmp_path):
    """Exit 2 (run/Inference.py: a checkpoint error) instead of all-zero maps and exit 0."""
    path, keys = poisoned([float("nan")])
    photo = write_photo(tmp_path / "photo.png")
    run = run_script(
        Inference.main,
        ["--config", str(CONFIG), "--ckpt", str(path), "--device", "cpu", "--no-progress"]
        + ["--source", str(photo), "--dest", str(tmp_path / "out")],
    )
    assert run.status == 2
    lines = run.naming(path)
    assert len(lines) == 1
    assert lines[0].startswith(f"error: {path}: holds non-finite values (nan) in {keys[0]}")
    assert list(tmp_path.glob("out/*.png")) == []


# ------------------------------------------------------------------------------------------------
# 2. what is no torch.save file is refused at once, in one clear line


def test_zip_archive_that_is_no_checkpoint(tmp_path):
    path = tmp_path / "weights.pth"
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("model/readme.txt", "not tensors")
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    assert one_line(info.value) == (
        f"{path}: not a PyTorch checkpoint (it is a zip archive without data.pkl)"
    )


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs /proc")
def test_20_gb_of_zeros_is_refused_after_reading_a_few_bytes(tmp_path):
    path = tmp_path / "zeros.pth"
    with open(path, "wb") as handle:
        handle.truncate(20 * 2**30)  # sparse: nothing is written
    if path.stat().st_blocks * 512 > 2**20:  # this file system cannot hold it sparse
        path.unlink()
        pytest.skip("no sparse files here")
    before = bytes_read_by_this_process()
    with pytest.raises(CheckpointError) as info:
        within(LIMIT_S, read_state_dict, path)
    read = bytes_read_by_this_process() - before
    assert one_line(info.value) == (
        f"{path}: not a PyTorch checkpoint (not a zip archive or legacy pickle)"
    )
    assert read < 2**20, f"read {read} bytes of a 20 GB file"


def test_real_checkpoints_in_both_formats_still_load(checkpoint, tmp_path):
    """The format check lets torch.save's zip and legacy files through (same tensors)."""
    state = read_state_dict(checkpoint)
    legacy = tmp_path / "legacy.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    again = read_state_dict(legacy)
    assert list(again) == list(state)
    assert all(torch.equal(again[key], state[key]) for key in state)


def test_fifo_given_as_checkpoint_is_refused_without_blocking(tmp_path, run_script):
    fifo = tmp_path / "latest.pth"
    os.mkfifo(fifo)
    for load in (read_state_dict, lambda p: load_model(tiny_model_cfg(), p)):
        with pytest.raises(CheckpointError) as info:
            within(LIMIT_S, load, fifo, fifos=(fifo,))
        assert one_line(info.value) == (
            f"{fifo}: checkpoint is a FIFO (named pipe), not a regular file"
        )
    photo = write_photo(tmp_path / "photo.png")
    argv = ["--config", str(CONFIG), "--ckpt", str(fifo), "--device", "cpu", "--no-progress"]
    run = within(
        LIMIT_S,
        run_script,
        Inference.main,
        [*argv, "--source", str(photo), "--dest", str(tmp_path / "out")],
        fifos=(fifo,),
    )
    assert run.status == 2
    assert run.naming(fifo) == [
        f"error: {fifo}: checkpoint is a FIFO (named pipe), not a regular file"
    ]


# ------------------------------------------------------------------------------------------------
# 3. a size cap that holds: pixels from the header, and the decoded size against free memory


def test_png_claiming_361_mpx_is_refused_from_its_header(tmp_path, png_claiming):
    """19000x19000 (361 Mpx) was under the former 400 Mpx cap and took a process to 4.3 GB."""
    path = tmp_path / "huge.png"
    path.write_bytes(png_claiming(19000, 19000))
    for reader in (read_image_size, read_image, read_mask):
        with pytest.raises(ImageReadError) as info:
            reader(path)
        message = one_line(info.value)
        assert message.startswith(f"{path}: image has more than") and BOMB in message


def test_decode_larger_than_the_free_memory_is_refused(tmp_path, monkeypatch):
    """The system's MemAvailable (here said to be 1 MB) against 1000x800 RGB: 2.4 MB decoded."""
    path = write_photo(tmp_path / "photo.png", (1000, 800))
    monkeypatch.setattr(image_io, "_memory_available", lambda: (1_000_000, "MemAvailable"))
    for reader in (read_image, read_mask):
        with pytest.raises(ImageReadError) as info:
            reader(path)
        assert one_line(info.value) == (
            f"{path}: decoding this 1000x800 RGB image needs 2.4 MB, more than the 1.0 MB this "
            "process can allocate now (MemAvailable); refused (free memory, or shrink the image)"
        )
    assert read_image_size(path) == (800, 1000)  # the header alone is still read
    monkeypatch.setattr(image_io, "_memory_available", lambda: (10**9, "MemAvailable"))
    assert read_image(path).size == (1000, 800)


CHILD = """
import resource, sys
from utils.io.images import ImageReadError, read_image
used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
hard = resource.getrlimit(resource.RLIMIT_AS)[1]
resource.setrlimit(resource.RLIMIT_AS, (used + 64 * 2**20, hard))
try:
    read_image(sys.argv[1])
except ImageReadError as error:
    print(error)
    sys.exit(3)
except MemoryError:
    print("MemoryError")
    sys.exit(4)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc")
def test_decode_beyond_rlimit_as_is_refused_in_one_line(tmp_path, png_claiming):
    """Under ``ulimit -v`` (64 MB of room left), a 100 Mpx gray PNG (100 MB decoded, under
    MAX_PIXELS) is refused before decoding instead of a MemoryError."""
    path = tmp_path / "big.png"
    path.write_bytes(png_claiming(10000, 10000))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    line = done.stdout.strip()
    assert line.startswith(f"{path}: decoding this 10000x10000 L image needs 100.0 MB, more than")
    assert line.endswith("(RLIMIT_AS); refused (free memory, or shrink the image)")


# ------------------------------------------------------------------------------------------------
# 4. archives: limits on what they unpack to; --url files that are no regular files


def zeros_zip(path: Path, size: int) -> Path:
    """A zip whose one entry is ``size`` zero bytes, deflated (~1000 times smaller)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        with bundle.open("Foo-TE/images/zeros.bmp", "w") as entry:
            for _ in range(size // 2**20):
                entry.write(bytes(2**20))
    return path


def test_zip_bomb_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    """40 MB of zeros in a ~40 KB zip: ratio ~1000 > MAX_RATIO (100)."""
    archive = zeros_zip(tmp_path / "bomb.zip", 40 * 2**20)
    assert archive.stat().st_size < 200_000
    written = []
    monkeypatch.setattr(archive_module, "_write", lambda *args: written.append(args))
    target = tmp_path / "tree"
    with pytest.raises(VerifyError) as info:
        safe_extract(archive, target)
    message = one_line(info.value)
    assert message.startswith("refused: the archive unpacks to more than")
    assert "100 times the archive's" in message and "zip bomb" in message
    assert written == [] and not target.exists()


def test_bytes_are_counted_as_they_stream(tmp_path, monkeypatch):
    """An entry that streams more than the limit allows (whatever its header declared) stops
    at the limit: what reaches the disk never passes it."""
    archive = zeros_zip(tmp_path / "small.zip", 2**20)
    monkeypatch.setattr(archive_module, "CHUNK", 4096)
    budget = archive_module._Budget(archive)  # ratio limit: 100 x ~1 KB
    written = tmp_path / "entry"
    with pytest.raises(VerifyError, match="unpacks to more than"):
        archive_module._write(io.BytesIO(bytes(2**20)), written, budget)
    assert 0 < written.stat().st_size <= budget.limit < 2**20


def test_tar_gz_declaring_too_much_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    archive = tmp_path / "set.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        for index in range(3):
            info = tarfile.TarInfo(f"Foo-TE/masks/{index}.png")
            data = os.urandom(300_000)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(archive_module, "MAX_UNPACKED_BYTES", 500_000)
    with pytest.raises(VerifyError, match="unpacks to more than 488.3 KB"):
        safe_extract(archive, tmp_path / "tree")
    assert not (tmp_path / "tree").exists()


def test_archive_within_the_limits_is_extracted(tmp_path):
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("Foo-TE/images/a.jpg", b"jpeg" * 1000)  # ratio ~ 30 < 100
        bundle.writestr("Foo-TE/masks/", b"")
    safe_extract(archive, tmp_path / "tree")
    assert (tmp_path / "tree/Foo-TE/images/a.jpg").read_bytes() == b"jpeg" * 1000
    assert (tmp_path / "tree/Foo-TE/masks").is_dir()


def install(manifest: Path, root: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m utils.downloads`` (install.sh's Python side) in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "utils.downloads", "--manifest", str(manifest)]
        + ["--dest", str(root), *args],
        capture_output=True,
        text=True,
        timeout=LIMIT_S * 2,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )


@pytest.fixture
def manifest(tmp_path) -> Path:
    """A manifest with one data set, Foo-TE, and no URL (given with --url)."""
    groups = [{"name": "test", "default": True, "help": "test sets"}]
    item = {"name": "Foo-TE", "group": "test", "kind": "dataset", "dest": "data/Foo-TE"}
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"groups": groups, "items": [{**item, "sources": []}]}))
    return path


def test_zip_bomb_given_with_url_is_refused_in_one_line(tmp_path, manifest):
    archive = zeros_zip(tmp_path / "Foo-TE.zip", 40 * 2**20)
    root = tmp_path / "install"
    done = install(manifest, root, "--only", "Foo-TE", "--url", f"Foo-TE={archive}")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if archive.as_uri() in line]
    assert any("failed: refused: the archive unpacks to more than" in line for line in lines)
    assert not (root / "data/Foo-TE").exists()
    assert [path.name for path in (root / "data").iterdir()] == []  # no staging folder left


def test_fifo_given_with_url_is_refused_without_blocking(tmp_path, manifest):
    fifo = tmp_path / "Foo-TE.zip"
    os.mkfifo(fifo)
    try:
        done = install(
            manifest, tmp_path / "install", "--only", "Foo-TE", "--url", f"Foo-TE={fifo}"
        )
    except subprocess.TimeoutExpired:
        pytest.fail("install.sh blocked on the FIFO")
    assert done.returncode == 1
    assert f"{fifo}: is a FIFO (named pipe), not a regular file" in done.stderr


# ------------------------------------------------------------------------------------------------
# 5. the jit cache is keyed by the checkpoint's content


def save_weights(path: Path, seed: int, mtime_ns: int) -> None:
    """Random weights (``seed``) of the tiny model at ``path`` (replaced: a new inode), with
    the given mtime."""
    torch.manual_seed(seed)
    temporary = path.with_name("new.pth")
    torch.save(build_model(tiny_model_cfg()).state_dict(), temporary)
    os.replace(temporary, path)
    os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.mark.slow
@pytest.mark.needs_cxx
def test_jit_cache_follows_the_weights_not_size_and_time(tmp_path, monkeypatch):
    path = tmp_path / "snap" / "latest.pth"
    path.parent.mkdir()
    when = 1_700_000_000 * 10**9
    photo = np.asarray(Image.open(write_photo(tmp_path / "photo.png", (64, 48))))

    def predictor(jit: bool) -> Predictor:
        return Predictor.from_config(CONFIG, ckpt=path, device="cpu", jit=jit)

    save_weights(path, 0, when)
    first_bytes = path.read_bytes()
    first = predictor(jit=True).predict(photo)
    cached = list((path.parent / "jit").glob("*.pt2"))
    assert len(cached) == 1

    # Other weights in a file of the same size and mtime: another cache file (not compiled
    # here: its name is enough), and other maps.
    save_weights(path, 1, when)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (len(first_bytes), when)
    other = predictor(jit=True)
    prepared = other.prepare(photo)
    batch = (prepared.image[None], prepared.image_resized)
    assert other.jit_cache_path(*batch) not in cached
    assert np.abs(predictor(jit=False).predict(photo) - first).max() > 0.05

    # The first weights written back into the same file (same inode, size and mtime as the
    # second's): their package is found again by content, without compiling.
    with open(path, "r+b") as handle:
        handle.write(first_bytes)
    os.utime(path, ns=(when, when))
    assert predictor(jit=True).jit_cache_path(*batch) == cached[0]
    monkeypatch.setattr(
        torch._inductor, "aoti_compile_and_package", lambda *a, **k: pytest.fail("compiled")
    )
    np.testing.assert_allclose(predictor(jit=True).predict(photo), first, atol=1e-6)


@pytest.mark.slow
@pytest.mark.needs_cxx
def test_jit_without_a_writable_cache_folder_compiles_in_memory(tmp_path, caplog):
    path = tmp_path / "snap" / "latest.pth"
    path.parent.mkdir()
    save_weights(path, 0, 1_700_000_000 * 10**9)
    (path.parent / "jit").write_text("a file where the cache folder would go\n")
    photo = np.asarray(Image.open(write_photo(tmp_path / "photo.png", (64, 48))))
    eager = Predictor.from_config(CONFIG, ckpt=path, device="cpu").predict(photo)
    with caplog.at_level(logging.INFO):
        compiled = Predictor.from_config(CONFIG, ckpt=path, device="cpu", jit=True)
        np.testing.assert_allclose(compiled.predict(photo), eager, atol=1e-4)
    assert "cannot cache it at" in caplog.text and "kept in memory" in caplog.text
    assert (path.parent / "jit").read_text() == "a file where the cache folder would go\n"


def test_checkpoint_hash_is_recorded_and_reused(checkpoint, tmp_path, monkeypatch):
    path = tmp_path / "latest.pth"
    path.write_bytes(checkpoint.read_bytes())
    digest = checkpoint_module.checkpoint_sha256(path)
    assert (tmp_path / ".latest.pth.sha256.json").is_file()
    hashed = []
    monkeypatch.setattr(
        checkpoint_module, "file_digest", lambda *args: hashed.append(args) or "0" * 64
    )
    assert checkpoint_module.checkpoint_sha256(path) == digest and hashed == []
    # Size and mtime kept, the ctime moved on (os.utime cannot set it back): hashed again.
    recorded = path.stat()
    while path.stat().st_ctime_ns == recorded.st_ctime_ns:  # the clock's next tick
        os.utime(path, ns=(recorded.st_atime_ns, recorded.st_mtime_ns))
    assert checkpoint_module.checkpoint_sha256(path) == "0" * 64 and len(hashed) == 1


# ------------------------------------------------------------------------------------------------
# 6. entries named like images that are no regular files: one warning each, never opened


def odd_entries(folder: Path) -> dict[str, str]:
    """A FIFO, a broken link and a folder named like images in ``folder``; name -> the words
    of utils.io.files.file_problem."""
    os.mkfifo(folder / "pipe.jpg")
    (folder / "gone.png").symlink_to(folder / "nowhere.png")
    (folder / "album.jpg").mkdir()
    return {
        "pipe.jpg": "is a FIFO (named pipe), not a regular file",
        "gone.png": "is a broken symbolic link",
        "album.jpg": "is a folder, not a file",
    }


def warnings_naming(caplog, path: Path) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and str(path) in record.getMessage()
    ]


def test_inference_folder_warns_once_per_odd_entry(tmp_path, caplog):
    write_photo(tmp_path / "photo.jpg")
    (tmp_path / "plain folder").mkdir()  # not named like an image: no warning
    odd = odd_entries(tmp_path)
    with caplog.at_level(logging.WARNING):
        source = within(LIMIT_S, open_source, tmp_path, fifos=(tmp_path / "pipe.jpg",))
    assert [media.name for media in source] == ["photo"]
    for name, problem in odd.items():
        assert warnings_naming(caplog, tmp_path / name) == [
            f"{tmp_path / name}: {problem}, skipped"
        ]
    assert warnings_naming(caplog, tmp_path / "plain folder") == []


def test_fifo_named_like_an_image_given_alone(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(SourceError) as info:
        within(LIMIT_S, open_source, fifo, fifos=(fifo,))
    assert one_line(info.value) == f"{fifo}: is a FIFO (named pipe), not a regular file"
    with pytest.raises(ImageReadError) as info:
        within(LIMIT_S, read_image, fifo, fifos=(fifo,))
    assert one_line(info.value) == f"{fifo}: is a FIFO (named pipe), not a regular file"


def test_dataset_listing_warns_once_per_odd_entry(tmp_path, caplog):
    images, masks = tmp_path / "Set/images", tmp_path / "Set/masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for stem in ("a", "b"):
        write_photo(images / f"{stem}.jpg")
        Image.new("L", (40, 30)).save(masks / f"{stem}.png")
    odd = odd_entries(images)
    os.mkfifo(masks / "c.png")
    with caplog.at_level(logging.WARNING):
        dataset = within(
            LIMIT_S, SODDataset, tmp_path, "Set", fifos=(images / "pipe.jpg", masks / "c.png")
        )
    assert [pair.name for pair in dataset.samples] == ["a", "b"]
    for name, problem in odd.items():
        assert warnings_naming(caplog, images / name) == [f"{images / name}: {problem}, skipped"]
    assert warnings_naming(caplog, masks / "c.png") == [
        f"{masks / 'c.png'}: is a FIFO (named pipe), not a regular file, skipped"
    ]
