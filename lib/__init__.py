"""The InSPyReNet model library: plain dicts and tensors in, no files, YAML or command lines.

Public API::

    from lib import build_model, load_state_dict_strict
    model = build_model({"name": "InSPyReNet_SwinB", "base_size": [384, 384], "threshold": 512})
    load_state_dict_strict(model, state, "latest.pth")   # state: a plain official state dict
    out = model.eval()({"image": x})        # out["pred"], out["saliency"], out["laplacian"]

Checkpoint files are read and written by ``utils.io.checkpoint`` (``load_checkpoint``,
``save_checkpoint``, ``load_model``).
"""

from lib.model import InSPyReNet
from lib.pm import PatchMergeInference
from lib.registry import MODELS, build_model
from lib.state_dict import (
    CheckpointError,
    check_compatible,
    load_state_dict_strict,
    unwrap_model,
    unwrap_state_dict,
)

__all__ = [
    "MODELS",
    "CheckpointError",
    "InSPyReNet",
    "PatchMergeInference",
    "build_model",
    "check_compatible",
    "load_state_dict_strict",
    "unwrap_model",
    "unwrap_state_dict",
]
