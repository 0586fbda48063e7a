"""Checkpoint files in the official format: read safely, written atomically, models built from
a config's Model section with their weights.

    model = load_model(cfg["Model"])                      # ImageNet backbone when pretrained
    model = load_model(cfg["Model"], "snapshots/x/latest.pth")   # a whole trained network
    save_checkpoint(model, "snapshots/x/latest.pth")

Files are read with ``torch.load(..., weights_only=True)``: a pickle that would run code is
refused, never executed. What a file holds is unwrapped and checked by ``lib.state_dict``.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lib import CheckpointError, build_model, load_state_dict_strict, unwrap_model
from lib.state_dict import unwrap_state_dict
from utils.io.atomic import OutputError, atomic_output
from utils.io.files import REPO_ROOT
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


def load_torch_file(path: str | os.PathLike, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; CheckpointError (one line naming the
    file; ``what`` says what was expected) for a missing, damaged or code-running file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused: the file holds Python objects beyond tensors, which could run "
            f"code when loaded (weights_only=True){refusal_detail(error)}"
        ) from None
    except Exception as error:  # torch raises many types for damaged files; one message
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(
            f"{path}: not a readable PyTorch {what} (truncated or corrupt?): {first}"
        ) from None


def refusal_detail(error: BaseException) -> str:
    """What torch's weights-only refusal says the file tried to load, as ``": it loads <name>"``
    ('' when it does not say). torch's own message is several paragraphs with terminal colour
    codes and advice to load unsafely; only the blocked global's name is worth a user's line."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    return f": it loads {found.group(1)}" if found else ""


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The plain state dict of a checkpoint file (unwrapped, without ``module.``).

    Raises CheckpointError for a missing, truncated or non-checkpoint file, and for a pickle
    that would run code.
    """
    return unwrap_state_dict(load_torch_file(path, "checkpoint"), str(path))


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load an official-format checkpoint into ``model`` strictly; returns the model."""
    return load_state_dict_strict(model, read_state_dict(path), str(path))


def save_torch_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically (utils.io.atomic); OutputError (one line)
    when it cannot be written, the previous file kept."""
    with atomic_output(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as error:  # torch's zip writer: "unexpected pos ..." on a full disk
            free = shutil.disk_usage(tmp.parent).free
            problem = str(error).splitlines()[0] if str(error) else type(error).__name__
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
        if not path.is_file():
            item = install_item_for(path)
            hint = (
                f"fetch it with `bash install.sh --only {item}`"
                if item
                else "train it (run/Train.py), fetch a published one (`bash install.sh --list`), "
                "or give another with --ckpt PATH"
            )
            raise CheckpointError(f"{path}: checkpoint not found; {hint}")
        return load_checkpoint(build_model(model_cfg), path)
    if not model_cfg.get("pretrained", False):
        return build_model(model_cfg)
    name = model_cfg.get("name")
    if name not in BACKBONE_WEIGHTS:
        return build_model(model_cfg)  # an unknown name: build_model says so
    path = Path(backbone_dir or BACKBONE_DIR) / BACKBONE_WEIGHTS[name]
    if not path.is_file():
        item = install_item_for(BACKBONE_DIR / BACKBONE_WEIGHTS[name])  # where install.sh puts it
        fetch = f"Fetch them with `bash install.sh --only {item}`, or set" if item else "Set"
        raise FileNotFoundError(
            f"{path}: ImageNet weights for the backbone are missing (Model.pretrained is true). "
            f"{fetch} Model.pretrained to false to start from random weights."
        )
    return build_model(model_cfg, read_state_dict(path), str(path))
