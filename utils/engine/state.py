"""Training checkpoints: the published-format weights and a self-contained resume state.

A checkpoint folder (``Train.Checkpoint.checkpoint_dir``) holds::

    latest.pth     the model's plain state dict (official format, no ``module.``): what Test,
                   Inference and the authors' code load
    state.pth      everything ``--resume`` needs: the model weights again, optimiser, scheduler,
                   grad scaler, progress counters and the RNG states of every rank
    config.yaml    the effective config of the run

Both ``.pth`` files are written atomically (temporary file + rename), ``state.pth`` first, so a
kill at any moment leaves the previous complete pair or the new one; ``state.pth`` carries its
own copy of the weights, so resuming never mixes two checkpoints. The temporary file a kill
leaves behind (hidden, ``.state.pth.<8 characters>.tmp``) is deleted by the next checkpoint
write in that folder (``utils.io.atomic.remove_stale_temporaries``). Every entry is a tensor or a
plain Python value, so ``torch.load(..., weights_only=True)`` reads it: no pickled code.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lib import CheckpointError, unwrap_model
from utils.io.atomic import remove_stale_temporaries
from utils.io.checkpoint import load_torch_file, save_checkpoint, save_torch_atomic

LATEST = "latest.pth"
STATE = "state.pth"
CONFIG = "config.yaml"
STATE_VERSION = 1


class StateError(RuntimeError):
    """A resume state that cannot be used; ``str()`` is one line naming the file."""


def rng_state() -> dict[str, Any]:
    """This process's Python, NumPy and torch (CPU and CUDA) RNG states as tensors/plain values."""
    numpy_state = np.random.get_state(legacy=False)
    version, internal, gauss = random.getstate()
    return {
        "python": {"version": version, "state": torch.tensor(internal), "gauss": gauss},
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss"]))
    numpy = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": numpy["bit_generator"],
            "state": {"key": numpy["key"].numpy().astype(np.uint32), "pos": numpy["pos"]},
            "has_gauss": numpy["has_gauss"],
            "gauss": numpy["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def save_training_checkpoint(
    directory: str | os.PathLike, model: nn.Module, state: dict[str, Any]
) -> Path:
    """Write ``state.pth`` (``state`` plus the model weights) then ``latest.pth``; return the
    latter's path. Both writes are atomic."""
    directory = Path(directory)
    remove_stale_temporaries(directory)  # what a killed earlier write left behind
    weights = {key: value.detach().cpu() for key, value in unwrap_model(model).state_dict().items()}
    save_torch_atomic({"version": STATE_VERSION, **state, "model": weights}, directory / STATE)
    save_checkpoint(unwrap_model(model), directory / LATEST)
    return directory / LATEST


def load_training_state(directory: str | os.PathLike) -> dict[str, Any]:
    """Read ``<directory>/state.pth`` safely (``weights_only=True``).

    Raises StateError naming the file when it is missing, damaged or not a resume state.
    """
    path = Path(directory) / STATE
    if not path.is_file():
        raise StateError(
            f"{path}: no training state to resume from (run without --resume to start afresh)"
        )
    try:
        state = load_torch_file(path, "training state")
    except CheckpointError as error:
        raise StateError(str(error)) from None
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise StateError(f"{path}: not a training state written by this version of run/Train.py")
    return state
