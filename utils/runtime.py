"""Where and how the network runs: device choice, precision, TF32, and the malloc tuning.

    device = select_device("auto")              # cuda, else mps, else cpu (said once in the log)
    disable_tf32()                              # float32 stays float32 on GPUs (spec §11)
    with autocast(device, "bf16"): ...          # precision: fp32 (none), bf16 or fp16
    tune_malloc()                               # the scripts call it once at start

Malloc tuning: keep glibc's malloc from returning large blocks to the kernel between forward passes.

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
import logging
import os
from contextlib import AbstractContextManager, nullcontext

import torch

logger = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_ANNOUNCED: set[str] = set()


class DeviceError(ValueError):
    """A device that cannot be used here; ``str()`` is one line saying what to do."""


def select_device(name: str | None = None, local_rank: int | None = None) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N``, ``mps``, or None/``auto`` (cuda, else mps, else cpu).

    ``local_rank`` (under torchrun): a plain ``cuda`` or auto on a CUDA machine means GPU
    ``local_rank``. Raises DeviceError when the device is not available here. The chosen device
    is said once per process on stderr.
    """
    text = (name or "auto").strip().lower()
    if local_rank is not None and torch.cuda.is_available() and text in ("auto", "cuda"):
        text = f"cuda:{local_rank}"
    if text == "auto":
        if torch.cuda.is_available():
            text = "cuda"
        elif torch.backends.mps.is_available():
            text = "mps"
        else:
            text = "cpu"
    try:
        device = torch.device(text)
    except RuntimeError:
        raise DeviceError(
            f"--device {name}: unknown device (use cpu, cuda, cuda:N or mps)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {name}: CUDA is not available here (no GPU, or torch "
                f"{torch.__version__} was built without CUDA); use --device cpu"
            )
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {name}: there are only {torch.cuda.device_count()} CUDA devices"
            )
        device = torch.device("cuda", index)
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"--device {name}: Apple MPS is not available here")
    elif device.type != "cpu":
        raise DeviceError(f"--device {name}: unsupported device (use cpu, cuda, cuda:N or mps)")
    label = str(device)
    if label not in _ANNOUNCED:
        _ANNOUNCED.add(label)
        detail = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
        logger.info("device: %s%s", label, detail)
    return device


def disable_tf32() -> None:
    """Plain float32 matmuls and convolutions on CUDA (architecture §11: TF32 off)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def check_precision(precision: str) -> torch.dtype:
    """The dtype of ``precision`` (fp32, bf16, fp16); DeviceError for any other name."""
    if precision not in PRECISIONS:
        raise DeviceError(f"precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Autocast to ``precision`` on ``device`` (nothing for fp32)."""
    dtype = check_precision(precision)
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (AVX512-BF16 or AMX tiles).

    torch exposes the checks only as private functions of ``torch.cpu``; without them we
    assume the answer is yes (the note it guards is advice, not an error)."""
    checks = [
        getattr(torch.cpu, name, None)
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    checks = [check for check in checks if check is not None]
    return not checks or any(check() for check in checks)


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
