"""Checkpoint I/O in the official format: a plain state dict, loaded strictly.

Our modules are laid out exactly as the authors' (same attribute names and registration
order), so the key mapping between this project and the official checkpoints is the identity
in both directions: what :func:`save_checkpoint` writes loads into the authors' code and the
published ``latest.pth`` files load here unchanged. The only normalisations on reading are
unwrapping a ``{'model': ...}`` / ``{'state_dict': ...}`` container and removing a DDP
``module.`` prefix.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from pathlib import Path

import torch
from torch import Tensor, nn

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "net")
DDP_PREFIX = "module."


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; ``str()`` names the file and the problem."""


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a state dict safely (``weights_only=True``), unwrapped and without ``module.``.

    Raises CheckpointError for a missing, truncated or non-checkpoint file, and for a pickle
    that would run code (which is refused, never executed).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: refused: the file holds Python objects beyond tensors, which could run "
            f"code when loaded (weights_only=True){refusal_detail(error)}"
        ) from None
    except Exception as error:  # torch raises many types for damaged files; one message
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): "
            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
        ) from None
    return _unwrap(obj, path)


def refusal_detail(error: BaseException) -> str:
    """What torch's weights-only refusal says the file tried to load, as ``": loads <name>"``
    ('' when it does not say). torch's own message is several paragraphs with terminal colour
    codes and advice to load unsafely; only the blocked global's name is worth a user's line."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    return f": it loads {found.group(1)}" if found else ""


def _unwrap(obj, path: Path) -> dict[str, Tensor]:
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: not a checkpoint: it holds a {type(obj).__name__}")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{path}: not a state dict: entries {not_tensors[:3]} are not tensors"
        )
    if all(k.startswith(DDP_PREFIX) for k in obj):
        obj = {k[len(DDP_PREFIX) :]: v for k, v in obj.items()}
    return obj


def check_compatible(model: nn.Module, state: dict[str, Tensor], source: str) -> None:
    """Raise one clear CheckpointError unless ``state`` matches the model key for key."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if not (missing or unexpected or shapes):
        return
    name = getattr(model, "name", type(model).__name__)
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:3])})")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches (first: {'; '.join(shapes[:3])})")
    raise CheckpointError(
        f"{source}: does not match model {name}: {'; '.join(parts)}. Is the config (Model.name, "
        "depth, backbone) the one this checkpoint was trained with?"
    )


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load an official-format checkpoint into ``model`` strictly; returns the model."""
    state = read_state_dict(path)
    target = model.module if hasattr(model, "module") else model
    check_compatible(target, state, str(path))
    target.load_state_dict(state, strict=True)
    return model


def save_checkpoint(model: nn.Module, path: str | os.PathLike) -> None:
    """Write the model's plain state dict (official format, no ``module.``) atomically."""
    target = model.module if hasattr(model, "module") else model
    save_atomic(target.state_dict(), path)


def save_atomic(obj, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
