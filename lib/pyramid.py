"""The Laplacian image pyramid: reduce, expand, deconstruct, reconstruct (spec §7)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def gaussian_kernel_2d(size: int = 7, sigma: float = 1.0) -> Tensor:
    """Outer product of the normalised 1-D Gaussian, built in float64, then cast to float32.

    Equals OpenCV's ``getGaussianKernel(size, sigma)`` outer product (spec §7).
    """
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(offsets**2) / (2 * sigma**2))
    g /= g.sum()
    return torch.from_numpy(np.outer(g, g).astype(np.float32))


class ImagePyramid(nn.Module):
    """Gaussian/Laplacian pyramid operations on single-channel maps.

    The kernel is a *non-persistent* buffer: it follows ``.to(device)`` but is not in the
    state dict, which the published checkpoints require (checklist 22).
    """

    def __init__(self, ksize: int = 7, sigma: float = 1.0, channels: int = 1):
        super().__init__()
        kernel = gaussian_kernel_2d(ksize, sigma).expand(channels, 1, ksize, ksize).contiguous()
        self.register_buffer("kernel", kernel, persistent=False)
        self.channels = channels
        self.pad = ksize // 2

    def _blur(self, x: Tensor, kernel: Tensor) -> Tensor:
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return F.conv2d(x, kernel, groups=self.channels)

    def reduce(self, x: Tensor) -> Tensor:
        """Blur (reflect padding) and keep even rows/columns: size ceil(n/2)."""
        return self._blur(x, self.kernel)[..., ::2, ::2]

    def expand(self, x: Tensor) -> Tensor:
        """Zero-insert to (2h, 2w) at even positions, reflect-pad, blur with 4·K.

        The padding is applied to the zero-inserted map, so borders are asymmetric (QUIRK).
        """
        b, c, h, w = x.shape
        up = x.new_zeros(b, c, 2 * h, 2 * w)
        up[..., ::2, ::2] = x
        return self._blur(up, self.kernel * 4)

    def reconstruct(self, x: Tensor, laplacian: Tensor) -> Tensor:
        """expand(x) plus the Laplacian, resized (bilinear, align_corners=True) to fit.

        The reference always runs the resize (checklist 11); it is an identity at equal size.
        """
        expanded = self.expand(x)
        if laplacian.shape[-2:] != expanded.shape[-2:]:
            laplacian = F.interpolate(
                laplacian, size=expanded.shape[-2:], mode="bilinear", align_corners=True
            )
        return expanded + laplacian

    def deconstruct(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """One pyramid level: (reduced map, Laplacian residual x - expand(reduce(x)))."""
        reduced = self.reduce(x)
        expanded = self.expand(reduced)
        if expanded.shape[-2:] != x.shape[-2:]:
            expanded = F.interpolate(expanded, size=x.shape[-2:], mode="nearest")
        return reduced, x - expanded
