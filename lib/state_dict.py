"""State dicts in the official format: unwrapping, a strict compatibility check, loading.

Our modules are laid out exactly as the authors' (same attribute names and registration
order), so the key mapping between this project and the official checkpoints is the identity
in both directions. The only normalisations are unwrapping a ``{'model': ...}`` /
``{'state_dict': ...}`` container and removing a DDP ``module.`` prefix. Reading and writing
checkpoint files is the job of ``utils.io.checkpoint``; this module touches no files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "net")
DDP_PREFIX = "module."


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; ``str()`` names the file and the problem."""


def unwrap_model(model: nn.Module) -> nn.Module:
    """The network inside a DDP/DataParallel wrapper and/or a ``torch.compile`` wrapper."""
    while True:
        if isinstance(getattr(model, "_orig_mod", None), nn.Module):  # torch.compile
            model = model._orig_mod
        elif isinstance(getattr(model, "module", None), nn.Module):  # DDP, DataParallel
            model = model.module
        else:
            return model


def unwrap_state_dict(obj: Any, source: str) -> dict[str, Tensor]:
    """The plain state dict inside ``obj`` (a loaded checkpoint), without ``module.``;
    CheckpointError naming ``source`` when it holds none."""
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: not a checkpoint: it holds a {type(obj).__name__}")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{source}: not a state dict: entries {not_tensors[:3]} are not tensors"
        )
    state = dict(obj)
    if all(k.startswith(DDP_PREFIX) for k in state):
        state = {k[len(DDP_PREFIX) :]: v for k, v in state.items()}
    return state


def check_compatible(model: nn.Module, state: Mapping[str, Tensor], source: str) -> None:
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


def load_state_dict_strict(model: nn.Module, state: Mapping[str, Tensor], source: str) -> nn.Module:
    """Load ``state`` into (the unwrapped) ``model`` strictly after :func:`check_compatible`;
    returns ``model``."""
    target = unwrap_model(model)
    check_compatible(target, state, source)
    target.load_state_dict(state, strict=True)
    return model
