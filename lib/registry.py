"""Model registry: ``Model.name`` → backbone class and its published hyper-parameters.

``build_model(cfg)`` takes a config's Model section as a plain dict. No string is evaluated:
names are looked up in :data:`MODELS`. Where the backbones' ImageNet weight files live is not
the model library's business: ``utils.io.checkpoint.load_model`` reads them and passes the
state dict in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import Tensor, nn

from lib.backbones import Res2Net, SwinTransformer
from lib.model import InSPyReNet
from lib.state_dict import CheckpointError

# Keys of the Model section that configure scripts, not the network.
NON_MODEL_KEYS = {"name", "pretrained", "PM", "precision", "backbone"}


@dataclass(frozen=True)
class ModelSpec:
    """A registered variant: backbone class and its default arguments."""

    backbone: type[nn.Module]
    backbone_args: dict = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {
    "InSPyReNet_Res2Net50": ModelSpec(
        Res2Net,
        {"layers": (3, 4, 6, 3), "base_width": 26, "scale": 4},
    ),
    "InSPyReNet_Res2Net101": ModelSpec(
        Res2Net,
        {"layers": (3, 4, 23, 3), "base_width": 26, "scale": 4},
    ),
    "InSPyReNet_SwinT": ModelSpec(
        SwinTransformer,
        {"embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (3, 6, 12, 24), "window_size": 7},
    ),
    "InSPyReNet_SwinS": ModelSpec(
        SwinTransformer,
        {"embed_dim": 96, "depths": (2, 2, 18, 2), "num_heads": (3, 6, 12, 24), "window_size": 7},
    ),
    "InSPyReNet_SwinB": ModelSpec(
        SwinTransformer,
        {"embed_dim": 128, "depths": (2, 2, 18, 2), "num_heads": (4, 8, 16, 32), "window_size": 12},
    ),
    "InSPyReNet_SwinL": ModelSpec(
        SwinTransformer,
        {
            "embed_dim": 192,
            "depths": (2, 2, 18, 2),
            "num_heads": (6, 12, 24, 48),
            "window_size": 12,
        },
    ),
}


def build_model(
    model_cfg: Mapping, backbone_state: Mapping[str, Tensor] | None = None, source: str = ""
) -> InSPyReNet:
    """Build InSPyReNet from a config's Model section (a plain dict).

    Keys: ``name`` (a key of :data:`MODELS`), ``depth`` (64), ``base_size`` ([384, 384]),
    ``threshold`` (512 or None), ``backbone`` (optional overrides of the backbone's
    hyper-parameters, e.g. for the tiny test models); ``pretrained``, ``PM`` and ``precision``
    are read by the callers and ignored here. ``backbone_state``: ImageNet weights loaded into
    the backbone (CheckpointError naming ``source`` when they do not fit).
    """
    name = model_cfg.get("name")
    if name not in MODELS:
        raise ValueError(f"unknown Model.name {name!r}; registered: {', '.join(MODELS)}")
    known = NON_MODEL_KEYS | {"depth", "base_size", "threshold"}
    unknown = sorted(set(model_cfg) - known)
    if unknown:
        raise ValueError(f"unknown Model keys {unknown}; known: {sorted(known)}")
    spec = MODELS[name]
    args = {**spec.backbone_args, **dict(model_cfg.get("backbone") or {})}
    try:
        backbone = spec.backbone(**args)
    except TypeError as error:
        raise ValueError(f"Model.backbone for {name}: {error}") from None
    if backbone_state is not None:
        try:
            backbone.load_pretrained(dict(backbone_state))
        except (RuntimeError, ValueError) as error:
            raise CheckpointError(
                f"{source or 'backbone weights'}: not the expected backbone weights: {error}"
            ) from None
    return InSPyReNet(
        backbone,
        backbone.out_channels,
        depth=int(model_cfg.get("depth", 64)),
        base_size=model_cfg.get("base_size", (384, 384)),
        threshold=model_cfg.get("threshold", 512),
        name=name,
    )
