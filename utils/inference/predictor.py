"""Predict saliency maps at an image's original size: the one code path for Inference and Test.

    predictor = Predictor.from_config("configs/InSPyReNet_SwinB.yaml")  # <ckpt dir>/latest.pth
    saliency = predictor.predict(image)          # PIL image or RGB uint8 array -> float32 (H, W)
    maps = predictor.predict_batch(images)       # same numbers, several images per forward pass
    png = to_uint8(saliency)                     # floor(m·255), what Test writes (spec §16.3)

Numerics (architecture §16): the config's ``Test.Dataset.transforms`` (static resize, or dynamic
resize whose large inputs take the pyramid-blending path of the model, §10), the network, then
σ and min–max normalisation of the finest logits, then ``bilinT`` (bilinear, align_corners=True)
to the original (H, W). With ``pm=True`` the network runs by patches (Patch Merging, §18, with
``Model.PM``; the pre-processing is ``Test.Dataset.transforms_PM`` when the config has it, else
the usual test transforms).

Batches: the model normalises ``pred`` over the whole batch (checklist 15), so a batch of two
images would not give the maps each one gets alone. The predictor therefore takes the finest
logits (``saliency[-1]``) and applies the model's own σ + min–max *per image*; for one image
this is exactly the model's ``pred``, so batched and one-by-one outputs agree (up to float
rounding of batched convolutions). Transformed inputs are stacked only when their sizes match.

``jit=True`` compiles ``(image[, image_resized]) -> model(sample)['saliency'][-1]`` ahead of
time (``torch.export`` + AOTInductor) once per device, precision, batch size and input size,
and caches the package next to the checkpoint, keyed by the checkpoint's SHA-256 (not its size
and time): :mod:`utils.inference.compiled` says why this path and how the cache works.
Patch Merging runs eagerly (its patch loop is Python), so ``jit`` is ignored with ``pm``.

Device: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or None (auto: cuda, else mps, else cpu); the
choice is said once in the log. TF32 is switched off (spec §11). ``precision`` ``bf16``/``fp16``
run the network under autocast (the published results are fp32).

Speed (``optimize=True``, the default): the predictor owns its model and rewrites it for
inference with :func:`lib.inference_opt.optimize_for_inference` (BatchNorm folded into the
head's convolutions, channels-last weights and inputs), which changes logits by float32
rounding only (mean 1e-5 on the fixture models; tests/lib/test_inference_opt.py). ``compile``
wraps the network in ``torch.compile`` (inductor; minutes of compilation per input size on a
small CPU, see README "Performance").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from data.transforms import CONFIG_CHECKS, build_transforms
from lib import PatchMergeInference
from lib.inference_opt import optimize_for_inference
from lib.model import normalize_prediction
from utils.config import SCHEMA, load_config
from utils.inference.compiled import CompiledCache
from utils.inference.compose import to_uint8
from utils.inference.inputs import as_rgb_pil, same_size_groups
from utils.io.checkpoint import load_model
from utils.runtime import (
    autocast,
    check_precision,
    cpu_has_fast_bf16,
    disable_tf32,
    select_device,
)

__all__ = ["Prepared", "Predictor", "PredictorError", "to_uint8"]

logger = logging.getLogger(__name__)


class PredictorError(ValueError):
    """A setup problem (device, config, precision); ``str()`` is one line saying what to do."""


def _section(config: Mapping, *keys: str):
    node = config
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


@dataclass
class Prepared:
    """An image after the test transforms: network inputs (CPU tensors, no batch dimension)
    and the original ``shape`` (H, W). Made by :meth:`Predictor.prepare` (thread-safe)."""

    image: Tensor
    image_resized: Tensor | None
    shape: tuple[int, int]

    @property
    def key(self) -> tuple:
        """Inputs with equal keys can be stacked into one batch."""
        resized = None if self.image_resized is None else tuple(self.image_resized.shape)
        return tuple(self.image.shape), resized


class Predictor:
    """Saliency maps at the original image size from a model and the test transforms.

    Usually built with :meth:`from_config`. Args: ``model`` (an InSPyReNet with its weights),
    ``transforms`` (the config's ``Test.Dataset.transforms`` mapping, or a built callable),
    ``device``, ``jit`` (compile and cache, see the module docstring), ``pm`` (None, or
    ``(patch_size, stride)`` for Patch Merging), ``precision`` (fp32, bf16, fp16),
    ``ckpt_path`` (where the jit cache goes; None: memory only), ``pm_batch_size`` (patches per
    forward pass in PM), ``model_config`` (part of the jit cache key), ``optimize`` (rewrite the
    model for inference, in place; module docstring), ``compile`` (``torch.compile`` it).
    """

    def __init__(
        self,
        model: nn.Module,
        transforms,
        device: torch.device | str = "cpu",
        *,
        jit: bool = False,
        pm: tuple[int, int] | None = None,
        precision: str = "fp32",
        ckpt_path: str | os.PathLike | None = None,
        pm_batch_size: int = 4,
        model_config: Mapping | None = None,
        optimize: bool = True,
        compile: bool = False,
    ):
        check_precision(precision)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.optimized = optimize
        if optimize:
            optimize_for_inference(self.model)
        self._network = torch.compile(self.model) if compile else self.model
        self.transforms = transforms if callable(transforms) else build_transforms(transforms)
        self.precision = precision
        if precision == "bf16" and self.device.type == "cpu" and not cpu_has_fast_bf16():
            logger.warning(
                "this CPU has neither AVX512-BF16 nor AMX: bf16 runs slower than fp32 here"
            )
        if precision == "fp16" and self.device.type == "cpu":
            logger.warning("fp16 is meant for GPUs; on a CPU use bf16 (or fp32)")
        self.pm = None if pm is None else PatchMergeInference(self.model, *pm, pm_batch_size)
        if jit and self.pm is not None:
            logger.info("note: --jit is not used with --PM (patch merging runs the eager model)")
        self.jit = jit and self.pm is None
        self.ckpt_path = None if ckpt_path is None else Path(ckpt_path)
        self._compiled = None
        if self.jit:
            self._compiled = CompiledCache(
                self.model, self.device, precision, self.ckpt_path, model_config, optimize
            )

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: str | os.PathLike | Mapping,
        ckpt: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        jit: bool = False,
        pm: bool = False,
        precision: str | None = None,
        opts: Sequence[str] = (),
        pm_batch_size: int = 4,
        optimize: bool = True,
        compile: bool = False,
    ) -> Predictor:
        """Build the model of ``config`` (a YAML path, with ``opts`` overrides, or a loaded
        config dict) and load ``ckpt`` (default ``<Test.Checkpoint.checkpoint_dir>/latest.pth``).

        ``precision`` None means the config's ``Model.precision`` (default fp32). Raises
        PredictorError / CheckpointError / ConfigError (all ValueError) with one clear line; a
        missing checkpoint names its path and the ``bash install.sh --only <item>`` that
        fetches it.
        """
        if not isinstance(config, Mapping):
            config = load_config(
                config, list(opts), require=("Model", "Test"), checks=CONFIG_CHECKS
            )
        model_cfg = _section(config, "Model")
        if not isinstance(model_cfg, Mapping):
            raise PredictorError("config has no Model section")
        transforms = _section(config, "Test", "Dataset", "transforms")
        if pm and _section(config, "Test", "Dataset", "transforms_PM"):
            transforms = _section(config, "Test", "Dataset", "transforms_PM")
        if not isinstance(transforms, Mapping):
            raise PredictorError("config has no Test.Dataset.transforms (the test pipeline)")
        if ckpt is None:
            folder = _section(config, "Test", "Checkpoint", "checkpoint_dir")
            if not folder:
                raise PredictorError(
                    "config has no Test.Checkpoint.checkpoint_dir: give the checkpoint (--ckpt)"
                )
            ckpt = Path(folder) / "latest.pth"
        ckpt = Path(ckpt)
        if precision is None:
            precision = model_cfg.get("precision", SCHEMA["Model"]["precision"].default)
        pm_cfg = dict(model_cfg.get("PM") or {})
        pm_size = (
            int(pm_cfg.get("patch_size", SCHEMA["Model"]["PM"]["patch_size"].default)),
            int(pm_cfg.get("stride", SCHEMA["Model"]["PM"]["stride"].default)),
        )
        disable_tf32()  # spec §11: float32 throughout
        device = select_device(None if device is None else str(device))
        model = load_model(model_cfg, ckpt)  # the whole network: no ImageNet weights needed
        return cls(
            model,
            transforms,
            device,
            jit=jit,
            pm=pm_size if pm else None,
            precision=precision,
            ckpt_path=ckpt,
            pm_batch_size=pm_batch_size,
            model_config=model_cfg,
            optimize=optimize,
            compile=compile,
        )

    # -- public API -----------------------------------------------------------------------------
    to_uint8 = staticmethod(to_uint8)

    def prepare(self, image: Image.Image | np.ndarray) -> Prepared:
        """Apply the test transforms to one image (CPU only; safe in a loader thread)."""
        pil = as_rgb_pil(image)
        shape = (pil.height, pil.width)
        sample = self.transforms({"image": pil, "name": "", "shape": shape})
        resized = sample.get("image_resized")
        return Prepared(sample["image"], resized, shape)

    def predict(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """The saliency map of one image: float32 (H, W) in [0, 1] at its original size."""
        return self.predict_prepared([self.prepare(image)])[0]

    def predict_batch(self, images: Sequence[Image.Image | np.ndarray]) -> list[np.ndarray]:
        """Maps of several images; same-size inputs share a forward pass (module docstring)."""
        return self.predict_prepared([self.prepare(image) for image in images])

    def predict_prepared(self, items: Sequence[Prepared]) -> list[np.ndarray]:
        """Maps of :meth:`prepare` d inputs, in order; equal-size inputs run as one batch."""
        results: list[np.ndarray | None] = [None] * len(items)
        with torch.inference_mode():
            for indices in same_size_groups(items):
                image = self._batch([items[i].image for i in indices])
                resized = None
                if items[indices[0]].image_resized is not None:
                    resized = self._batch([items[i].image_resized for i in indices])
                logits = self._logits(image, resized).float()
                for row, index in enumerate(indices):
                    results[index] = self._finish(logits[row : row + 1], items[index].shape)
        return results

    # -- internals ------------------------------------------------------------------------------
    def _batch(self, tensors: Sequence[Tensor]) -> Tensor:
        """Stack (C, H, W) tensors on the device, channels-last when the model is optimised."""
        batch = torch.stack(list(tensors)).to(self.device)
        if self.optimized:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    @staticmethod
    def _finish(logits: Tensor, shape: tuple[int, int]) -> np.ndarray:
        """σ + min–max of one image (the model's own post-processing), then bilinT to shape."""
        pred = normalize_prediction(logits)
        pred = F.interpolate(pred, size=shape, mode="bilinear", align_corners=True)
        return pred[0, 0].cpu().numpy().astype(np.float32, copy=False)

    def _logits(self, image: Tensor, image_resized: Tensor | None) -> Tensor:
        """Finest saliency logits (B, 1, h, w) of a batch."""
        with autocast(self.device, self.precision):
            if self.pm is not None:
                return self.pm({"image": image})["saliency"][-1]
            if self._compiled is not None:
                return self._compiled(image, image_resized)
            sample = {"image": image}
            if image_resized is not None:
                sample["image_resized"] = image_resized
            return self._network(sample)["saliency"][-1]

    def jit_cache_path(self, image: Tensor, image_resized: Tensor | None = None) -> Path | None:
        """Where the compiled model for this batch of inputs is cached (None: no checkpoint,
        or no ``jit``)."""
        return None if self._compiled is None else self._compiled.path(image, image_resized)
