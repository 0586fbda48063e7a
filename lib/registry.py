"""Model registry: ``Model.name`` → backbone class, its published hyper-parameters and weights.

``build_model(cfg)`` takes a config's Model section as a plain dict. No string is evaluated:
names are looked up in :data:`MODELS`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from lib.backbones import Res2Net, SwinTransformer
from lib.checkpoint import CheckpointError, read_state_dict
from lib.model import InSPyReNet

DEFAULT_BACKBONE_DIR = Path(__file__).resolve().parents[1] / "data" / "backbone_ckpt"
# Keys of the Model section that configure scripts, not the network.
NON_MODEL_KEYS = {"name", "pretrained", "PM", "precision", "backbone"}


@dataclass(frozen=True)
class ModelSpec:
    """A registered variant: backbone class, its default arguments and ImageNet weights file."""

    backbone: type[nn.Module]
    backbone_args: dict = field(default_factory=dict)
    weights: str = ""
    install_item: str = ""


MODELS: dict[str, ModelSpec] = {
    "InSPyReNet_Res2Net50": ModelSpec(
        Res2Net,
        {"layers": (3, 4, 6, 3), "base_width": 26, "scale": 4},
        "res2net50_v1b_26w_4s-3cf99910.pth",
        "Res2Net50",
    ),
    "InSPyReNet_Res2Net101": ModelSpec(
        Res2Net,
        {"layers": (3, 4, 23, 3), "base_width": 26, "scale": 4},
        "res2net101_v1b_26w_4s-0812c246.pth",
        "Res2Net101",
    ),
    "InSPyReNet_SwinT": ModelSpec(
        SwinTransformer,
        {"embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (3, 6, 12, 24), "window_size": 7},
        "swin_tiny_patch4_window7_224.pth",
        "SwinT",
    ),
    "InSPyReNet_SwinS": ModelSpec(
        SwinTransformer,
        {"embed_dim": 96, "depths": (2, 2, 18, 2), "num_heads": (3, 6, 12, 24), "window_size": 7},
        "swin_small_patch4_window7_224.pth",
        "SwinS",
    ),
    "InSPyReNet_SwinB": ModelSpec(
        SwinTransformer,
        {"embed_dim": 128, "depths": (2, 2, 18, 2), "num_heads": (4, 8, 16, 32), "window_size": 12},
        "swin_base_patch4_window12_384_22kto1k.pth",
        "SwinB",
    ),
    "InSPyReNet_SwinL": ModelSpec(
        SwinTransformer,
        {
            "embed_dim": 192,
            "depths": (2, 2, 18, 2),
            "num_heads": (6, 12, 24, 48),
            "window_size": 12,
        },
        "swin_large_patch4_window12_384_22kto1k.pth",
        "SwinL",
    ),
}


def build_model(model_cfg: Mapping, backbone_dir: str | os.PathLike | None = None) -> InSPyReNet:
    """Build InSPyReNet from a config's Model section (a plain dict).

    Keys: ``name`` (a key of :data:`MODELS`), ``depth`` (64), ``base_size`` ([384, 384]),
    ``threshold`` (512 or None), ``pretrained`` (load the backbone's ImageNet weights from
    ``backbone_dir``, default ``data/backbone_ckpt``), ``backbone`` (optional overrides of the
    backbone's hyper-parameters, e.g. for the tiny test models); ``PM`` and ``precision`` are
    read by the scripts and ignored here.
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
    if model_cfg.get("pretrained", False):
        _load_backbone_weights(backbone, spec, Path(backbone_dir or DEFAULT_BACKBONE_DIR))
    return InSPyReNet(
        backbone,
        backbone.out_channels,
        depth=int(model_cfg.get("depth", 64)),
        base_size=model_cfg.get("base_size", (384, 384)),
        threshold=model_cfg.get("threshold", 512),
        name=name,
    )


def _load_backbone_weights(backbone: nn.Module, spec: ModelSpec, directory: Path) -> None:
    path = directory / spec.weights
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: ImageNet weights for the backbone are missing (Model.pretrained is true). "
            f"Fetch them with `bash install.sh --only {spec.install_item}`, or set "
            "Model.pretrained to false to start from random weights."
        )
    try:
        backbone.load_pretrained(read_state_dict(path))
    except (RuntimeError, ValueError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{path}: not the expected backbone weights: {error}") from None
