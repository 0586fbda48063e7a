"""Patch-merging (PM) inference for large inputs, from the 2021 seed version (spec §18).

The image is cut into ``patch_size`` patches every ``stride`` pixels, the patches run through
the network in batches, and the pyramids are merged level by level by *selection*: the coarsest
saliency is the per-pixel max of the patches' logits, and each finer Laplacian comes from the
patch whose saliency was highest at the next coarser level (spec §18.3). The full-resolution
map is then reconstructed with the model's own pyramid.

Differences from the seed, all documented: the final model's reflect-padded ``reconstruct`` is
used (the seed's network had zero padding); inputs whose size the grid does not cover exactly
are edge-padded to a covered size and the outputs cropped back (the seed left such pixels
at −inf); the prediction is post-processed as in the final version (σ, batch min–max).
Memory: the patches' Laplacians are kept until merging (about 1.3·P² floats per patch) and the
merged maps are O(H·W); no (patches × H × W) buffer is built.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from lib.model import InSPyReNet, normalize_prediction

SCALES = (8, 4, 2, 1)  # downscale of d3, d2, d1, d0


def _covered(size: int, patch: int, stride: int) -> int:
    """Smallest size >= ``size`` that the patch grid tiles exactly (a multiple of 32)."""
    return patch + math.ceil((max(size, patch) - patch) / stride) * stride


def _up2(index: Tensor) -> Tensor:
    return index.repeat_interleave(2, dim=0).repeat_interleave(2, dim=1)


class PatchMergeInference:
    """Run ``model`` on a large image by patches and merge the pyramids (spec §18).

    Args:
        model: an InSPyReNet (put in eval mode by the caller).
        patch_size: patch side P (``Model.PM.patch_size``; 384 in the published configs).
        stride: distance between patches (``Model.PM.stride``; 96 for SwinB, 192 otherwise).
        batch_size: patches per forward pass (bounds memory; results do not depend on it).

    Call with a sample dict holding ``image`` (B, 3, H, W); returns it with ``pred``,
    ``saliency``, ``laplacian`` and ``loss`` like the model.
    """

    def __init__(self, model: InSPyReNet, patch_size: int, stride: int, batch_size: int = 4):
        if stride <= 0 or stride > patch_size or patch_size % 32 or stride % 32:
            raise ValueError(
                f"PM needs patch_size and stride multiples of 32 with 0 < stride <= patch_size, "
                f"got {patch_size} and {stride}"
            )
        self.model = model
        self.patch_size = patch_size
        self.stride = stride
        self.batch_size = max(1, batch_size)

    def __call__(self, sample: dict) -> dict:
        merged = [self._merge_one(image[None]) for image in sample["image"]]
        saliency = [torch.cat([m[0][i] for m in merged]) for i in range(4)]
        laplacian = [torch.cat([m[1][i] for m in merged]) for i in range(3)]
        sample.update(
            pred=normalize_prediction(saliency[-1]),
            saliency=saliency,
            laplacian=laplacian,
            loss=0,
        )
        return sample

    def grid(self, height: int, width: int) -> list[tuple[int, int]]:
        """Top-left corners of the patches covering a (height, width) padded input."""
        p, s = self.patch_size, self.stride
        return [(y, x) for y in range(0, height - p + 1, s) for x in range(0, width - p + 1, s)]

    def _run_patches(self, image: Tensor, corners) -> tuple[list[Tensor], list[Tensor]]:
        p = self.patch_size
        saliency: list[list[Tensor]] = [[] for _ in SCALES]
        laplacian: list[list[Tensor]] = [[] for _ in range(3)]
        for start in range(0, len(corners), self.batch_size):
            batch = torch.cat(
                [
                    image[..., y : y + p, x : x + p]
                    for y, x in corners[start : start + self.batch_size]
                ]
            )
            levels, laps = self.model.forward_inspyre(batch)
            for store, maps in zip(saliency + laplacian, levels + laps, strict=True):
                store.append(maps[:, 0])
        return [torch.cat(s) for s in saliency], [torch.cat(lap) for lap in laplacian]

    def _merge_one(self, image: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        h, w = image.shape[-2:]
        hp, wp = (_covered(n, self.patch_size, self.stride) for n in (h, w))
        padded = F.pad(image, (0, wp - w, 0, hp - h), mode="replicate")
        corners = self.grid(hp, wp)
        saliency, laplacian = self._run_patches(padded, corners)

        d3, index3 = self._max_merge(saliency[0], corners, SCALES[0], hp, wp)
        _, index2 = self._max_merge(saliency[1], corners, SCALES[1], hp, wp)
        _, index1 = self._max_merge(saliency[2], corners, SCALES[2], hp, wp)
        pyramid = self.model.image_pyramid
        levels, laps = [d3], []
        for lap, index, scale in zip(laplacian, (index3, index2, index1), SCALES[1:], strict=True):
            p = self._select(lap, _up2(index), corners, scale)[None, None]
            levels.append(pyramid.reconstruct(levels[-1], p))
            laps.append(p)
        crop = [
            t[..., : math.ceil(h / s), : math.ceil(w / s)]
            for t, s in zip(levels, SCALES, strict=True)
        ]
        lap_crop = [
            t[..., : math.ceil(h / s), : math.ceil(w / s)]
            for t, s in zip(laps, SCALES[1:], strict=True)
        ]
        return crop, lap_crop

    def _max_merge(self, maps: Tensor, corners, scale: int, hp: int, wp: int):
        """Per-pixel max over the patches covering it, and the (first) argmax patch index."""
        value = maps.new_full((hp // scale, wp // scale), float("-inf"))
        index = torch.full(value.shape, -1, dtype=torch.long, device=maps.device)
        side = self.patch_size // scale
        for k, (y, x) in enumerate(corners):
            region = (slice(y // scale, y // scale + side), slice(x // scale, x // scale + side))
            better = maps[k] > value[region]
            value[region] = torch.where(better, maps[k], value[region])
            index[region] = torch.where(better, k, index[region])
        return value[None, None], index

    def _select(self, maps: Tensor, index: Tensor, corners, scale: int) -> Tensor:
        """Per pixel, the value of the patch named by ``index`` (zero where none covers)."""
        out = maps.new_zeros(index.shape)
        side = self.patch_size // scale
        for k, (y, x) in enumerate(corners):
            region = (slice(y // scale, y // scale + side), slice(x // scale, x // scale + side))
            out[region] = torch.where(index[region] == k, maps[k], out[region])
        return out
