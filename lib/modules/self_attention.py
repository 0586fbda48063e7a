"""Axial self-attention of the context modules and the decoder (spec §3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lib.modules.conv import ConvBlock


class SelfAttention(nn.Module):
    """One L×L attention map per image, L = H ('h') or W ('w').

    QUIRK kept (spec §3, checklist 1): the maps are *raw reshapes* of the NCHW memory into rows
    of length L, not transposes. For 'h' on a non-square map the rows straddle image rows; for
    square maps 'h' and 'w' attend along the same axis. The published weights depend on it.
    """

    def __init__(self, channels: int, mode: str):
        super().__init__()
        if mode not in ("h", "w"):
            raise ValueError(f"SelfAttention mode must be 'h' or 'w', not {mode!r}")
        self.mode = mode
        self.query_conv = ConvBlock(channels, channels // 8, 1)
        self.key_conv = ConvBlock(channels, channels // 8, 1)
        self.value_conv = ConvBlock(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        axis = height if self.mode == "h" else width
        query = self.query_conv(x).reshape(batch, -1, axis)
        key = self.key_conv(x).reshape(batch, -1, axis)
        value = self.value_conv(x).reshape(batch, -1, axis)
        attention = torch.softmax(torch.bmm(query.transpose(1, 2), key), dim=-1)
        out = torch.bmm(value, attention.transpose(1, 2)).reshape(batch, channels, height, width)
        return self.gamma * out + x
