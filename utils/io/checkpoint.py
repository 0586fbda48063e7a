"""Checkpoint files in the official format: read safely, written atomically, models built from
a config's Model section with their weights.

    model = load_model(cfg["Model"])                      # ImageNet backbone when pretrained
    model = load_model(cfg["Model"], "snapshots/x/latest.pth")   # a whole trained network
    save_checkpoint(model, "snapshots/x/latest.pth")

Files are read with ``torch.load(..., weights_only=True)``: a pickle that would run code is
refused, never executed. Before torch sees a file, it must be a regular file
(``utils.io.files.file_problem``: a FIFO cannot block the reader) whose first bytes are those of
a ``torch.save`` file (a zip archive holding ``data.pkl``, or a legacy pickle), so anything else
(a huge file of zeros, another zip) is refused at once in one line, without reading it all.
What a file holds is unwrapped and checked by ``lib.state_dict``; weights holding NaN or
infinity (a diverged training run) are refused, naming the first such tensor: they would only
give blank maps.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.serialization import MAGIC_NUMBER

from lib import CheckpointError, build_model, load_state_dict_strict, unwrap_model
from lib.state_dict import unwrap_state_dict
from utils.io.atomic import OutputError, atomic_output, write_bytes_atomic
from utils.io.errors import first_line
from utils.io.files import REPO_ROOT, file_digest, file_problem
from utils.io.manifest import install_item_for

BACKBONE_DIR = REPO_ROOT / "data" / "backbone_ckpt"
# The ImageNet weights file each model's backbone starts from (Model.pretrained), as published.
BACKBONE_WEIGHTS = {
    "InSPyReNet_Res2Net50": "res2net50_v1b_26w_4s-3cf99910.pth",
    "InSPyReNet_Res2Net101": "res2net101_v1b_26w_4s-0812c246.pth",
    "InSPyReNet_SwinT": "swin_tiny_patch4_window7_224.pth",
    "InSPyReNet_SwinS": "swin_small_patch4_window7_224.pth",
    "InSPyReNet_SwinB": "swin_base_patch4_window12_384_22kto1k.pth",
    "InSPyReNet_SwinL": "swin_large_patch4_window12_384_22kto1k.pth",
}
# What torch.save files begin with: a zip's local file header (the new format; torch's own test,
# torch.serialization._is_zipfile), or the legacy format's pickle, which opens with PROTO n for
# protocols 2-5 (torch's default is 2) and, for protocols 0 and 1, with the pickled magic number
# torch writes first.
_ZIP_START = b"PK\x03\x04"
_PICKLE_PROTOCOLS = range(2, 6)
_OLD_PICKLE_STARTS = tuple(pickle.dumps(MAGIC_NUMBER, protocol=p) for p in (0, 1))
_HEAD_BYTES = 64


def load_torch_file(path: str | os.PathLike, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; CheckpointError (one line naming the
    file; ``what`` says what was expected) for a missing, damaged or code-running file."""
    path = Path(path)
    problem = file_problem(path)
    if problem:
        raise CheckpointError(f"{path}: {what} {problem}")
    problem = _format_problem(path, what)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused: the file holds Python objects beyond tensors, which could run "
            f"code when loaded (weights_only=True){refusal_detail(error)}"
        ) from None
    except Exception as error:  # torch raises many types for damaged files; one message
        raise CheckpointError(
            f"{path}: not a readable PyTorch {what} (truncated or corrupt?): {first_line(error)}"
        ) from None


def _format_problem(path: Path, what: str) -> str | None:
    """Why the regular file ``path`` is no ``torch.save`` file, judged from its first bytes (and
    a zip's directory), or None when it may be one: torch then says what else is wrong.

    Reads a few bytes (a zip: its directory too), never the whole file, so a 20 GB file of
    zeros is refused at once: 'not a PyTorch checkpoint (not a zip archive or legacy pickle)'.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if not head:
        return f"{what} file is empty (0 bytes): an interrupted copy or download?"
    if head.startswith(_ZIP_START):
        if _zip_holds_pickle(path):
            return None
        return f"not a PyTorch {what} (it is a zip archive without data.pkl)"
    if _is_legacy_pickle(head):
        return None
    return f"not a PyTorch {what} (not a zip archive or legacy pickle)"


def _is_legacy_pickle(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) opens a pickle torch's legacy format wrote."""
    if head.startswith(_OLD_PICKLE_STARTS):
        return True
    return len(head) > 1 and head[0] == pickle.PROTO[0] and head[1] in _PICKLE_PROTOCOLS


def _zip_holds_pickle(path: str | os.PathLike) -> bool:
    """True when the zip ``path`` holds torch's ``<archive>/data.pkl``, or when its directory
    cannot be read (a truncated checkpoint: torch's message names the damage)."""
    try:
        with zipfile.ZipFile(path) as bundle:
            names = bundle.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError, OSError):
        return True
    return any(name == "data.pkl" or name.endswith("/data.pkl") for name in names)


def refusal_detail(error: BaseException) -> str:
    """What torch's weights-only refusal says the file tried to load, as ``": it loads <name>"``
    ('' when it does not say). torch's own message is several paragraphs with terminal colour
    codes and advice to load unsafely; only the blocked global's name is worth a user's line."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    return f": it loads {found.group(1)}" if found else ""


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The plain state dict of a checkpoint file (unwrapped, without ``module.``).

    Raises CheckpointError for a missing, truncated or non-checkpoint file, for a pickle that
    would run code, and for weights holding NaN or infinity (refused, naming the first such tensor).
    """
    state = unwrap_state_dict(load_torch_file(path, "checkpoint"), str(path))
    problem = _non_finite_problem(state)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    return state


def _non_finite_problem(state: Mapping[str, Tensor]) -> str | None:
    """'holds non-finite values (nan) in <key> ...' for the first floating-point tensor of
    ``state`` holding NaN or infinity, or None when every value is finite. Such weights (a
    diverged training run) give NaN logits, which the min-max normalisation turns into
    all-zero maps: refused here rather than written as blank results."""
    bad = [key for key, tensor in state.items() if _has_non_finite(tensor)]
    if not bad:
        return None
    tensor = state[bad[0]]
    kinds = [
        name for name, test in (("nan", torch.isnan), ("inf", torch.isinf)) if test(tensor).any()
    ]
    more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
    return (
        f"holds non-finite values ({', '.join(kinds)}) in {bad[0]}{more}: unusable weights "
        "(did training diverge?); use an earlier checkpoint"
    )


def _has_non_finite(tensor: Tensor) -> bool:
    """True for a floating-point or complex tensor holding NaN or infinity."""
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return False
    return not bool(torch.isfinite(tensor).all())


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load an official-format checkpoint into ``model`` strictly; returns the model."""
    return load_state_dict_strict(model, read_state_dict(path), str(path))


def checkpoint_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a checkpoint file's bytes, computed once and kept in the record
    ``.<name>.sha256.json`` beside it, reused while the file's device, inode, size, mtime and
    ctime equal the record's (ctime too: ``os.utime`` can set an edited file's mtime back, not
    its ctime). An unwritable folder only means hashing again next time. Raises OSError when
    the file cannot be read."""
    path = Path(path)
    record = path.with_name(f".{path.name}.sha256.json")
    identity = _file_identity(path)
    known = _read_json(record)
    if known.get("file") == identity and isinstance(known.get("sha256"), str):
        return known["sha256"]
    digest = file_digest(path, "sha256")
    if _file_identity(path) == identity:  # unchanged while it was read: worth recording
        with contextlib.suppress(OSError):
            text = json.dumps({"file": identity, "sha256": digest}, sort_keys=True)
            write_bytes_atomic(record, text.encode("utf-8"))
    return digest


def _file_identity(path: Path) -> dict[str, int]:
    """What changes when a file's bytes may have changed (see :func:`checkpoint_sha256`)."""
    stat = path.stat()
    return {
        "device": stat.st_dev,
        "inode": stat.st_ino,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
    }


def _read_json(path: Path) -> dict:
    """The JSON object in the regular file ``path``; {} when absent, unreadable or no object."""
    if file_problem(path):
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def save_torch_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (utils.io.atomic); OutputError (one line)
    when it cannot be written, the previous file kept."""
    with atomic_output(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as error:  # torch's zip writer: "unexpected pos ..." on a full disk
            free = shutil.disk_usage(tmp.parent).free
            problem = first_line(error)
            raise OutputError(
                path,
                f"torch could not write it ({problem}); {free / 2**20:.0f} MiB free there: if "
                "the disk is full, free some space or choose another folder",
            ) from None


def save_checkpoint(model: nn.Module, path: str | os.PathLike) -> None:
    """Write the model's plain state dict (official format, no ``module.``) atomically."""
    save_torch_atomic(unwrap_model(model).state_dict(), path)


def load_model(
    model_cfg: Mapping,
    checkpoint: str | os.PathLike | None = None,
    backbone_dir: str | os.PathLike | None = None,
) -> nn.Module:
    """The network of a config's Model section, with its weights.

    With ``checkpoint`` the whole network is loaded from it (strictly; the backbone's ImageNet
    weights are not needed). Otherwise, when ``Model.pretrained`` is true, the backbone starts
    from its ImageNet weights in ``backbone_dir`` (default ``data/backbone_ckpt``); a missing
    file is a FileNotFoundError naming it and the ``bash install.sh --only ...`` that fetches it.
    """
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.exists():  # missing: say where to get it (anything else: load_torch_file)
            item = install_item_for(path)
            hint = (
                f"fetch it with `bash install.sh --only {item}`"
                if item
                else "train it (run/Train.py), fetch a published one (`bash install.sh --list`), "
                "or give another with --ckpt PATH"
            )
            link = " (a broken symbolic link)" if path.is_symlink() else ""
            raise CheckpointError(f"{path}: checkpoint not found{link}; {hint}")
        return load_checkpoint(build_model(model_cfg), path)
    if not model_cfg.get("pretrained", False):
        return build_model(model_cfg)
    name = model_cfg.get("name")
    if name not in BACKBONE_WEIGHTS:
        return build_model(model_cfg)  # an unknown name: build_model says so
    path = Path(backbone_dir or BACKBONE_DIR) / BACKBONE_WEIGHTS[name]
    if not path.exists():
        item = install_item_for(BACKBONE_DIR / BACKBONE_WEIGHTS[name])  # where install.sh puts it
        fetch = f"Fetch them with `bash install.sh --only {item}`, or set" if item else "Set"
        raise FileNotFoundError(
            f"{path}: ImageNet weights for the backbone are missing (Model.pretrained is true). "
            f"{fetch} Model.pretrained to false to start from random weights."
        )
    return build_model(model_cfg, read_state_dict(path), str(path))
