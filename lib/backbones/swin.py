"""Swin Transformer backbone, detection-style, as the InSPyReNet checkpoints need (spec §13).

timm's Swin cannot be used as is (spec §13.3): it rolls before padding, turns the shift off on
maps no larger than one window, keeps ``relative_position_index`` out of the state dict, puts
the downsampling at the start of the next stage and has no ``norm0..3``. Each of these changes
the published checkpoints' keys or numbers, so the attention, block, stage and patch layers are
written here; timm provides the parts that match exactly (Mlp, DropPath, trunc_normal_).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp, trunc_normal_
from torch import Tensor, nn


def window_partition(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) -> (B·nW, window², C), windows row-major, tokens row-major inside."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B·nW, window², C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(window: int) -> Tensor:
    """idx(i, j) = (h_i − h_j + W−1)·(2W−1) + (w_i − w_j + W−1) for tokens i, j of a window."""
    coords = torch.stack(
        torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    ).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[..., 0] * (2 * window - 1) + relative[..., 1]


def shifted_window_mask(hp: int, wp: int, window: int, shift: int, device) -> Tensor:
    """(nW, window², window²) mask: 0 within a region, −100 across regions of the rolled map."""
    labels = torch.zeros(1, hp, wp, 1, device=device)
    regions = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in regions:
        for cols in regions:
            labels[:, rows, cols, :] = label
            label += 1
    windows = window_partition(labels, window).squeeze(-1)
    mask = windows.unsqueeze(1) - windows.unsqueeze(2)
    return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)


class WindowAttention(nn.Module):
    """Multi-head attention inside a window with a relative position bias."""

    def __init__(self, dim: int, window: int, num_heads: int, attn_drop: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads)
        )
        # Persistent: the published checkpoints contain it (checklist 16).
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        windows, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(windows, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        # Explicit order, not fused SDPA, for exactness: scale q, q·kᵀ, +bias, +mask, softmax.
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(tokens, tokens, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            n_windows = mask.shape[0]
            attn = attn.view(-1, n_windows, self.num_heads, tokens, tokens) + mask[None, :, None]
            attn = attn.view(-1, self.num_heads, tokens, tokens)
        attn = self.attn_drop(attn.softmax(dim=-1))
        return self.proj((attn @ v).transpose(1, 2).reshape(windows, tokens, channels))


class SwinBlock(nn.Module):
    """Pre-norm window attention + MLP; pads after norm1 and before the roll (checklist 16)."""

    def __init__(
        self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float
    ):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        pad_r, pad_b = (-w) % self.window, (-h) % self.window
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = self.attn(window_partition(x, self.window), mask if self.shift else None)
        x = window_reverse(windows, self.window, hp, wp)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x[:, :h, :w, :].reshape(b, h * w, c)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2×2 neighbourhood concatenation (zero-padded to even size), LayerNorm, linear 4C→2C."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        b, _, c = x.shape
        x = F.pad(x.view(b, h, w, c), (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1
        )
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    """``depth`` blocks (odd ones shifted), then optional downsampling at the stage's end."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window: int,
        mlp_ratio: float,
        drop_paths: Sequence[float],
        downsample: bool,
    ):
        super().__init__()
        self.window, self.shift = window, window // 2
        self.blocks = nn.ModuleList(
            SwinBlock(dim, num_heads, window, 0 if i % 2 == 0 else self.shift, mlp_ratio, dp)
            for i, dp in enumerate(drop_paths)
        )
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: Tensor, h: int, w: int) -> tuple[Tensor, Tensor, int, int]:
        """Returns (stage output, input of the next stage, its height, its width)."""
        hp, wp = h + (-h) % self.window, w + (-w) % self.window
        mask = shifted_window_mask(hp, wp, self.window, self.shift, x.device).to(x.dtype)
        for block in self.blocks:
            x = block(x, h, w, mask)
        if self.downsample is None:
            return x, x, h, w
        return x, self.downsample(x, h, w), (h + 1) // 2, (w + 1) // 2


class PatchEmbed(nn.Module):
    """Pad right/bottom to a multiple of the patch, 4×4 stride-4 conv, token LayerNorm."""

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % self.patch_size, 0, (-h) % self.patch_size))
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class SwinTransformer(nn.Module):
    """Swin backbone giving five maps: the patch embedding (stride 4) and the four stage outputs.

    Args:
        embed_dim: channels of the first stage (stages double it).
        depths: blocks per stage.
        num_heads: attention heads per stage.
        window_size: attention window (7 or 12 in the published models).
        mlp_ratio: MLP hidden width over the block width.
        drop_path_rate: stochastic depth, linearly 0 → rate over all blocks (training only).
        patch_size, in_channels: patch embedding geometry.
    """

    def __init__(
        self,
        embed_dim: int = 128,
        depths: Sequence[int] = (2, 2, 18, 2),
        num_heads: Sequence[int] = (4, 8, 16, 32),
        window_size: int = 12,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.2,
        patch_size: int = 4,
        in_channels: int = 3,
    ):
        super().__init__()
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError("Swin needs four stages: depths and num_heads of length 4")
        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        widths = [embed_dim * 2**i for i in range(4)]
        self.layers = nn.ModuleList()
        for i in range(4):
            first = sum(depths[:i])
            self.layers.append(
                SwinStage(
                    widths[i],
                    depths[i],
                    num_heads[i],
                    window_size,
                    mlp_ratio,
                    rates[first : first + depths[i]],
                    downsample=i < 3,
                )
            )
        for i in range(4):
            self.add_module(f"norm{i}", nn.LayerNorm(widths[i]))
        self.out_channels = [embed_dim, *widths]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.patch_embed(x)
        outputs = [x]
        h, w = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        for i, stage in enumerate(self.layers):
            out, x, next_h, next_w = stage(x, h, w)
            out = getattr(self, f"norm{i}")(out)
            outputs.append(out.view(-1, h, w, out.shape[-1]).permute(0, 3, 1, 2).contiguous())
            h, w = next_h, next_w
        return outputs

    def load_pretrained(self, state: dict[str, Tensor]) -> None:
        """Load an ImageNet Swin checkpoint (its ``model`` dict) non-strictly, as the authors did.

        The classifier head, the final norm and the shift masks of the classification model
        are ignored; every backbone weight must be present with the right shape.
        """
        state = state.get("model", state)
        own = self.state_dict()
        missing = [k for k in own if k not in state and not k.startswith("norm")]
        wrong = [k for k in own if k in state and state[k].shape != own[k].shape]
        if missing or wrong:
            raise ValueError(
                f"not a matching Swin checkpoint: missing {missing[:3]}, wrong shape {wrong[:3]}"
            )
        self.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
