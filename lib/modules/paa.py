"""Parallel axial attention: the context module PAA_e and the decoder PAA_d (spec §4, §5).

Class names follow the paper and the checkpoints' key names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.modules.conv import ConvBlock
from lib.modules.self_attention import SelfAttention


class PAA_kernel(nn.Module):
    """1×r, r×1 separable conv, axial attention (h + w), then a 3×3 conv of dilation r."""

    def __init__(self, in_channels: int, out_channels: int, receptive_size: int):
        super().__init__()
        r = receptive_size
        self.conv0 = ConvBlock(in_channels, out_channels, 1)
        self.conv1 = ConvBlock(out_channels, out_channels, (1, r))
        self.conv2 = ConvBlock(out_channels, out_channels, (r, 1))
        self.conv3 = ConvBlock(out_channels, out_channels, 3, dilation=r)
        self.Hattn = SelfAttention(out_channels, "h")
        self.Wattn = SelfAttention(out_channels, "w")

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv2(self.conv1(self.conv0(x)))
        x = self.Hattn(x) + self.Wattn(x)
        return self.conv3(x)


class PAA_e(nn.Module):
    """Context module: a 1×1 branch and three PAA kernels (r = 3, 5, 7), fused with a residual."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.branch0 = ConvBlock(in_channels, out_channels, 1)
        self.branch1 = PAA_kernel(in_channels, out_channels, 3)
        self.branch2 = PAA_kernel(in_channels, out_channels, 5)
        self.branch3 = PAA_kernel(in_channels, out_channels, 7)
        self.conv_cat = ConvBlock(4 * out_channels, out_channels, 3)
        self.conv_res = ConvBlock(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        branches = [self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)]
        return (self.conv_cat(torch.cat(branches, dim=1)) + self.conv_res(x)).relu()


class PAA_d(nn.Module):
    """Decoder over [c3, c4, c5]: returns the feature map and the coarsest saliency logits d3."""

    def __init__(self, in_channels: int, depth: int, out_channels: int = 1):
        super().__init__()
        self.conv1 = ConvBlock(in_channels, depth, 3)
        self.conv2 = ConvBlock(depth, depth, 3)
        self.conv3 = ConvBlock(depth, depth, 3)
        self.conv4 = ConvBlock(depth, depth, 3)
        self.conv5 = ConvBlock(depth, out_channels, 3, bn=False)
        self.Hattn = SelfAttention(depth, "h")
        self.Wattn = SelfAttention(depth, "w")

    def forward(self, features: list[Tensor]) -> tuple[Tensor, Tensor]:
        c3, c4, c5 = features
        size = c3.shape[-2:]
        c4 = F.interpolate(c4, size=size, mode="bilinear", align_corners=True)
        c5 = F.interpolate(c5, size=size, mode="bilinear", align_corners=True)
        x = self.conv1(torch.cat([c5, c4, c3], dim=1))  # deepest first (checklist 7)
        x = self.conv2(self.Hattn(x) + self.Wattn(x))
        x = self.conv4(self.conv3(x))
        return x, self.conv5(x)
