"""Keep glibc's malloc from returning large blocks to the kernel between forward passes.

By default glibc serves every allocation above an adaptive threshold (at most 32 MiB on 64-bit)
with its own ``mmap`` and ``munmap``s it on free. A forward pass allocates and frees hundreds of
feature maps of that size, so each one comes back as fresh pages that the kernel must fault in
and zero: about 370,000 minor page faults and ~20 % of the wall time of a SwinB forward at 384²
on CPU (measured with ``getrusage`` in bench/infer_speed.py's worker). ``mallopt`` (which has no
Python binding, hence ctypes) turns that off: ``M_MMAP_MAX = 0`` serves large blocks from the
heap, and a high ``M_TRIM_THRESHOLD`` keeps freed heap memory for the next pass. Page faults
per pass drop to zero; the price is that the process keeps its peak heap until it exits, which
is what an inference loop wants anyway (the next image needs the same memory).

Linux with glibc only; anywhere else, or with ``SOD_MALLOC_TUNING=0`` in the environment, it
does nothing. The scripts (Inference, Test, Train, Expr, benchmarks) call it once at start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["tune_malloc"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_TRIM_THRESHOLD_BYTES = 1 << 30
_STATE = {"tuned": False}


def tune_malloc() -> bool:
    """Apply the settings above once per process; True when they are in effect."""
    if _STATE["tuned"]:
        return True
    if os.environ.get("SOD_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # musl, macOS: not glibc
            return False
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES) == 1 and ok
    except (OSError, AttributeError):  # no libc or no mallopt
        return False
    _STATE["tuned"] = ok
    return ok
