"""The InSPyReNet model library: plain dicts and tensors in, no files or YAML.

Public API::

    from lib import build_model, load_checkpoint, save_checkpoint
    model = build_model({"name": "InSPyReNet_SwinB", "base_size": [384, 384], "threshold": 512})
    load_checkpoint(model, "snapshots/InSPyReNet_SwinB/latest.pth")
    out = model.eval()({"image": x})        # out["pred"], out["saliency"], out["laplacian"]
"""

from lib.checkpoint import CheckpointError, load_checkpoint, read_state_dict, save_checkpoint
from lib.model import InSPyReNet
from lib.pm import PatchMergeInference
from lib.registry import MODELS, build_model

__all__ = [
    "MODELS",
    "CheckpointError",
    "InSPyReNet",
    "PatchMergeInference",
    "build_model",
    "load_checkpoint",
    "read_state_dict",
    "save_checkpoint",
]
