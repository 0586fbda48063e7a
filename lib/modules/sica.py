"""SICA: scale-invariant context attention (spec §6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.modules.conv import ConvBlock


class SICA(nn.Module):
    """Attention from the pixels to a few context vectors pooled at a fixed stage size.

    Args:
        in_channels: channels of the feature input ``x``.
        depth: width of the query/key/value and output convolutions.
        stage_size: (h, w) at which the context is pooled: ``base_size // 2**stage``. It is
            part of the model definition: it must match the checkpoint's config.
        lmap_in: whether a Laplacian map is given (adds ``lthreshold`` and two context maps).
        out_channels: channels of the output logits.

    Quirks kept (checklist 2-5): the resized feature map is *raw-reshaped* from (b, c, sh, sw)
    to (b, sh*sw, c) without a permute; ``cg = threshold - |p|`` is not clipped; the key/value
    convolutions run on a (b, c, ctx, 1) "image"; ``conv_out4`` has a one-channel BatchNorm.
    """

    def __init__(
        self,
        in_channels: int,
        depth: int,
        stage_size: tuple[int, int],
        lmap_in: bool,
        out_channels: int = 1,
    ):
        super().__init__()
        self.stage_size = (int(stage_size[0]), int(stage_size[1]))
        self.lmap_in = lmap_in
        self.depth = depth
        self.threshold = nn.Parameter(torch.tensor([0.5]))
        if lmap_in:
            self.lthreshold = nn.Parameter(torch.tensor([0.5]))
        self.conv_query = nn.Sequential(
            ConvBlock(in_channels, depth, 3, relu=True), ConvBlock(depth, depth, 3, relu=True)
        )
        self.conv_key = nn.Sequential(
            ConvBlock(in_channels, depth, 1, relu=True), ConvBlock(depth, depth, 1, relu=True)
        )
        self.conv_value = nn.Sequential(
            ConvBlock(in_channels, depth, 1, relu=True), ConvBlock(depth, depth, 1, relu=True)
        )
        self.conv_out1 = ConvBlock(depth, depth, 3, relu=True)
        self.conv_out2 = ConvBlock(in_channels + depth, depth, 3, relu=True)
        self.conv_out3 = ConvBlock(depth, depth, 3, relu=True)
        self.conv_out4 = ConvBlock(depth, out_channels, 1)

    def _context_probabilities(self, smap: Tensor, lmap: Tensor | None, size) -> Tensor:
        p = torch.sigmoid(F.interpolate(smap, size=size, mode="bilinear", align_corners=False))
        p = p - self.threshold
        fg = p.clamp(0, 1)
        bg = (-p).clamp(0, 1)
        cg = self.threshold - p.abs()
        if lmap is None:
            return torch.cat([fg, bg, cg], dim=1)
        lp = torch.sigmoid(F.interpolate(lmap, size=size, mode="bilinear", align_corners=False))
        lp = lp - self.lthreshold
        return torch.cat([fg, bg, cg, lp.clamp(0, 1), (-lp).clamp(0, 1)], dim=1)

    def forward(self, x: Tensor, smap: Tensor, lmap: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if (lmap is not None) != self.lmap_in:
            raise ValueError("SICA: lmap must be given exactly when the module was built lmap_in")
        # Nested calls rather than named locals: every full-resolution intermediate (query,
        # attended map, concatenation) is freed as soon as it is used, which lowers the peak
        # memory of high-resolution inference without changing a single operation.
        y = self.conv_out2(torch.cat([x, self.conv_out1(self._attend(x, smap, lmap))], dim=1))
        y = self.conv_out3(y)
        return y, self.conv_out4(y)

    def _attend(self, x: Tensor, smap: Tensor, lmap: Tensor | None) -> Tensor:
        """Attention of every pixel to the pooled context vectors: (b, depth, h, w)."""
        b, c, h, w = x.shape
        prob = self._context_probabilities(smap, lmap, (h, w))
        contexts = prob.shape[1]

        sh, sw = self.stage_size
        pooled = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False)
        pooled = pooled.reshape(b, sh * sw, c)  # raw reshape, no permute (QUIRK)
        prob = F.interpolate(prob, size=(sh, sw), mode="bilinear", align_corners=False)
        prob = prob.reshape(b, contexts, sh * sw)
        context = torch.bmm(prob, pooled).transpose(1, 2).unsqueeze(3)  # (b, c, ctx, 1)

        key = self.conv_key(context).reshape(b, self.depth, contexts)
        value = self.conv_value(context).reshape(b, self.depth, contexts).transpose(1, 2)
        query = self.conv_query(x).reshape(b, self.depth, h * w).transpose(1, 2)
        similarity = torch.softmax(torch.bmm(query, key) * self.depth**-0.5, dim=-1)
        del query
        return torch.bmm(similarity, value).transpose(1, 2).reshape(b, self.depth, h, w)
