"""Shared test setup: the repository root on sys.path, the location of tests/fixtures, a small
synthetic data set, one torch thread per module, a maker of decompression-bomb PNGs, and the
`needs_cxx` marker (skipped where no C++ compiler exists: AOTInductor, --jit, needs one)."""

import shutil
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``needs_cxx`` when no C++ compiler is on PATH."""
    if shutil.which("g++") or shutil.which("c++"):
        return
    skip = pytest.mark.skip(reason="--jit (AOTInductor) needs a C++ compiler: none on PATH")
    for item in items:
        if item.get_closest_marker("needs_cxx"):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module: on a small shared machine two OpenMP threads competing
    with other jobs spin-wait and run 10-20x slower than one (measured: 11 s vs 0.5 s a predict),
    and compared runs use the same count. Use with ``pytestmark = usefixtures(...)``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    """A small synthetic data set (data.synthetic: 8 training and 2 test pairs of 64 px, seed 3),
    read-only for the tests that share it."""
    from data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(root, n_train=8, n_test=2, size=64, seed=3)
    return root


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """tests/fixtures: golden fixtures, pysodmetrics peer data, the published download list
    (tests/fixtures/README.md says where each file came from)."""
    return FIXTURES


def _png_claiming(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose header claims ``width``×``height`` (8-bit gray), built by hand."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="session")
def png_claiming() -> Callable[[int, int], bytes]:
    """``png_claiming(width, height)``: the bytes of a tiny PNG whose header claims that size
    (a decompression bomb when it exceeds utils.io.images.MAX_PIXELS)."""
    return _png_claiming
