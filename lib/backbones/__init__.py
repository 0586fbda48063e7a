"""Backbones giving InSPyReNet's five feature maps."""

from lib.backbones.res2net import Res2Net
from lib.backbones.swin import SwinTransformer

__all__ = ["Res2Net", "SwinTransformer"]
