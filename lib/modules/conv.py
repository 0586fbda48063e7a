"""The head's convolution wrapper: conv -> optional BatchNorm -> optional ReLU (spec §2)."""

from __future__ import annotations

from torch import Tensor, nn


def _same_padding(kernel: int, dilation: int) -> int:
    """'same' padding of the reference: e = k + (k-1)(d-1); pad = e//2 + (e%2 - 1).

    Every kernel in the model has an odd effective size e, where this is the usual (e-1)/2.
    """
    effective = kernel + (kernel - 1) * (dilation - 1)
    return effective // 2 + (effective % 2 - 1)


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


class ConvBlock(nn.Module):
    """Convolution (no bias) with optional BatchNorm and ReLU, keyed ``conv`` / ``bn``.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size, dilation: int or (h, w); padding is the reference's symmetric 'same'.
        bn: add ``BatchNorm2d(out_channels)`` (PyTorch defaults).
        relu: apply ReLU last.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        dilation: int | tuple[int, int] = 1,
        bn: bool = True,
        relu: bool = False,
    ):
        super().__init__()
        kh, kw = _pair(kernel_size)
        dh, dw = _pair(dilation)
        padding = (_same_padding(kh, dh), _same_padding(kw, dw))
        self.conv = nn.Conv2d(
            in_channels, out_channels, (kh, kw), padding=padding, dilation=(dh, dw), bias=False
        )
        nn.init.kaiming_normal_(self.conv.weight)
        self.bn = nn.BatchNorm2d(out_channels) if bn else None
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu:
            x = x.relu()
        return x
