"""InSPyReNet: inverse saliency pyramid reconstruction network (spec §1, §9, §10)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.modules.paa import PAA_d, PAA_e
from lib.modules.sica import SICA
from lib.modules.transition import Transition
from lib.optim.loss import pyramid_loss
from lib.pyramid import ImagePyramid


def _bilinear(x: Tensor, size: Sequence[int]) -> Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def normalize_prediction(logits: Tensor) -> Tensor:
    """σ(logits), min–max normalised over the *whole batch* with +1e-8 (QUIRK, checklist 15)."""
    pred = torch.sigmoid(logits)
    return (pred - pred.min()) / (pred.max() - pred.min() + 1e-8)


class InSPyReNet(nn.Module):
    """The network: backbone, five context modules, decoder and three SICA stages.

    Args:
        backbone: module returning five maps (strides 4, 4, 8, 16, 32).
        in_channels: channels of those five maps.
        depth: width of the head (64 in every published model).
        base_size: training size (H, W); sets SICA's context pooling size, so it must match
            the checkpoint's config.
        threshold: inputs with H or W <= threshold run a single pass (on ``image_resized`` when
            given); larger ones use pyramid blending. ``None`` always runs on ``image``.
        name: the registry name, used in messages.

    Called with a sample dict (``image``, optional ``image_resized``, optional ``gt``); returns
    the same dict with ``pred`` (normalised map), ``saliency`` ([d3, d2, d1, d0] logits at
    1/8..1), ``laplacian`` ([p2, p1, p0]) and ``loss``. ``model.eval()`` selects the inference
    path and ``model.train()`` the training path. Like the reference (checklist 12), a fresh
    model runs the inference path and ``train(False)`` keeps the training path.
    """

    def __init__(
        self,
        backbone: nn.Module,
        in_channels: Sequence[int],
        depth: int = 64,
        base_size: Sequence[int] = (384, 384),
        threshold: int | None = 512,
        name: str = "InSPyReNet",
    ):
        super().__init__()
        self.name = name
        self.depth = depth
        self.base_size = (int(base_size[0]), int(base_size[1]))
        self.threshold = threshold
        self.backbone = backbone
        for i, channels in enumerate(in_channels, 1):
            self.add_module(f"context{i}", PAA_e(channels, depth))
        self.decoder = PAA_d(depth * 3, depth)
        h, w = self.base_size
        self.attention0 = SICA(depth, depth, (h, w), lmap_in=True)
        self.attention1 = SICA(depth * 2, depth, (h // 2, w // 2), lmap_in=True)
        self.attention2 = SICA(depth * 2, depth, (h // 4, w // 4), lmap_in=False)
        self.image_pyramid = ImagePyramid(ksize=7, sigma=1.0, channels=1)
        self.transition0 = Transition(17)
        self.transition1 = Transition(9)
        self.transition2 = Transition(5)
        self._inference = True

    # -- mode switching (checklist 12) ------------------------------------------------------
    def train(self, mode: bool = True) -> InSPyReNet:
        """BatchNorm/dropout mode as usual; installs the training forward (even for False)."""
        super().train(mode)
        self._inference = False
        return self

    def eval(self) -> InSPyReNet:
        """Evaluation mode with the inference forward (threshold logic, pyramid blending)."""
        super().train(False)
        self._inference = True
        return self

    def forward(self, sample: dict) -> dict:
        if self._inference:
            return self.forward_inference(sample)
        return self.forward_train(sample)

    # -- the network ------------------------------------------------------------------------
    def forward_inspyre(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """One pass: saliency logits [d3, d2, d1, d0] and Laplacians [p2, p1, p0] (spec §1.2)."""
        h, w = x.shape[-2:]
        features = self.backbone(x)
        c1, c2, c3, c4, c5 = (getattr(self, f"context{i}")(f) for i, f in enumerate(features, 1))
        pyramid = self.image_pyramid

        f3, d3 = self.decoder([c3, c4, c5])
        f3 = _bilinear(f3, (h // 4, w // 4))
        f2, p2 = self.attention2(torch.cat([c2, f3], dim=1), d3.detach())
        d2 = pyramid.reconstruct(d3.detach(), p2)

        c1 = _bilinear(c1, (h // 2, w // 2))
        f2 = _bilinear(f2, (h // 2, w // 2))
        f1, p1 = self.attention1(torch.cat([c1, f2], dim=1), d2.detach(), p2.detach())
        d1 = pyramid.reconstruct(d2.detach(), p1)

        f1 = _bilinear(f1, (h, w))
        _, p0 = self.attention0(f1, d1.detach(), p1.detach())
        d0 = pyramid.reconstruct(d1.detach(), p0)
        return [d3, d2, d1, d0], [p2, p1, p0]

    def forward_train(self, sample: dict) -> dict:
        """Single pass on ``image``; the loss of spec §15.1 when ``gt`` is given, else 0."""
        saliency, laplacian = self.forward_inspyre(sample["image"])
        gt = sample.get("gt")
        loss = pyramid_loss(saliency, gt, self.image_pyramid) if gt is not None else 0
        return self._finish(sample, saliency, laplacian, loss)

    def forward_inference(self, sample: dict) -> dict:
        """Threshold logic and pyramid blending (spec §10)."""
        image = sample["image"]
        h, w = image.shape[-2:]
        if self.threshold is None:
            saliency, laplacian = self.forward_inspyre(image)
        elif h <= self.threshold or w <= self.threshold:
            saliency, laplacian = self.forward_inspyre(sample.get("image_resized", image))
        else:
            if sample.get("image_resized") is None:
                raise ValueError(
                    f"{self.name}: a {h}x{w} input is above the threshold {self.threshold}, so "
                    "pyramid blending needs sample['image_resized'] (the image at base size, as "
                    "the dynamic_resize transform makes it)"
                )
            saliency, laplacian = self.pyramid_blend(image, sample["image_resized"])
        return self._finish(sample, saliency, laplacian, 0)

    def pyramid_blend(self, image: Tensor, image_resized: Tensor) -> tuple[list, list]:
        """LR pass for the coarse map, HR Laplacians inside transition bands (spec §10.2)."""
        lr_saliency, _ = self.forward_inspyre(image_resized)
        hr_saliency, hr_laplacian = self.forward_inspyre(image)
        d = _bilinear(lr_saliency[-1], hr_saliency[0].shape[-2:])
        saliency, laplacian = [d], []
        for transition, lap in zip(
            (self.transition2, self.transition1, self.transition0), hr_laplacian, strict=True
        ):
            p = _bilinear(transition(d), lap.shape[-2:]) * lap
            d = self.image_pyramid.reconstruct(d, p)
            saliency.append(d)
            laplacian.append(p)
        return saliency, laplacian

    @staticmethod
    def _finish(sample: dict, saliency: list, laplacian: list, loss) -> dict:
        sample["pred"] = normalize_prediction(saliency[-1])
        sample["loss"] = loss
        sample["saliency"] = saliency
        sample["laplacian"] = laplacian
        return sample
