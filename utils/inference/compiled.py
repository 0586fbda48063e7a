"""The ``--jit`` path: the network compiled ahead of time with AOTInductor, cached per input size.

Why AOTInductor: TorchScript tracing (the old ``--jit``) is deprecated in torch 2.x and warned on
every run. Of the supported replacements, an exported program (``torch.export``) run as is gives
no speed-up (it runs the same ATen operators one by one, as eager does), and an ONNX engine
needs the optional onnxruntime. ``torch.export`` followed by AOTInductor
(``torch._inductor.aoti_compile_and_package``, the documented ahead-of-time path) compiles the
graph into a shared library. ``bench/jit_speed.py`` at 384² on a 2-core AVX-512 AMD EPYC: SwinB
1.10x eager per image (1.375 s against 1.517 s), the tiny config 1.30x; a cached package loads
and makes its first map in 2.7 s (SwinB). The price is a C++ compiler and one compilation per
input size (SwinB 140 s, tiny 48 s there; then cached).

Cache: ``<ckpt dir>/jit/<ckpt stem>_<tag>_<device>_<precision>_<B>x<H>x<W>[_<h>x<w>].pt2``
(``h×w`` the ``image_resized`` size; ``tag`` a hash of the key: the Model section, the
checkpoint's SHA-256, the torch version, whether the model was optimised and the device's
instruction set or compute capability, so other weights are compiled afresh whatever their
file's size and time). The package holds its whole key (``extra/cache_key.json``) and is used
only when it matches; a damaged package is compiled again. Files are written atomically; an
unwritable folder keeps the compiled model in memory (with a note). The export fixes the branch
the model takes for that input size, which is why the size is in the key.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from utils.io.atomic import write_bytes_atomic
from utils.io.checkpoint import checkpoint_sha256
from utils.io.errors import first_line
from utils.runtime import autocast

__all__ = ["CompiledCache", "Logits"]

logger = logging.getLogger(__name__)
# Where, inside a package (a zip archive whose records sit under one top folder), its key is.
_KEY_RECORD = "extra/cache_key.json"


class Logits(nn.Module):
    """``(image[, image_resized]) -> model(sample)['saliency'][-1]`` under the predictor's
    autocast: the function that is exported and compiled."""

    def __init__(self, model: nn.Module, device: torch.device, precision: str):
        super().__init__()
        self.model = model
        self.device = device
        self.precision = precision

    def forward(self, image: Tensor, image_resized: Tensor | None = None) -> Tensor:
        sample = {"image": image}
        if image_resized is not None:
            sample["image_resized"] = image_resized
        with autocast(self.device, self.precision):
            return self.model(sample)["saliency"][-1]


class CompiledCache:
    """Compiled networks for ``model`` by input size, in memory and under ``<ckpt dir>/jit``.

    ``ckpt_path`` None keeps them in memory only. ``model_config`` and ``optimized`` are part
    of the key. The checkpoint's SHA-256 is taken now (the closest to when its weights were
    read), through :func:`utils.io.checkpoint.checkpoint_sha256` (recorded beside it)."""

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        precision: str,
        ckpt_path: str | os.PathLike | None = None,
        model_config: Mapping | None = None,
        optimized: bool = True,
    ):
        self.logits = Logits(model, device, precision)
        self.device = device
        self.precision = precision
        self.ckpt_path = None if ckpt_path is None else Path(ckpt_path)
        sha256 = None if self.ckpt_path is None else checkpoint_sha256(self.ckpt_path)
        key = [dict(model_config or {}), sha256, torch.__version__, optimized, _target(device)]
        self.key = json.dumps(key, sort_keys=True, default=str).encode("utf-8")
        self._loaded: dict[str, Callable[..., Tensor]] = {}

    def __call__(self, image: Tensor, image_resized: Tensor | None = None) -> Tensor:
        """Finest logits of a batch by the network compiled for its sizes."""
        return self.compiled_for(image, image_resized)(*_inputs(image, image_resized))

    def name(self, image: Tensor, image_resized: Tensor | None = None) -> str:
        """The cache name of a batch of this shape (module docstring)."""
        b, _, h, w = image.shape
        device = self.device.type + ("" if self.device.index is None else str(self.device.index))
        name = f"{device}_{self.precision}_{b}x{h}x{w}"
        if image_resized is not None:
            name += "_{}x{}".format(*image_resized.shape[-2:])
        if self.ckpt_path is None:
            return name
        tag = hashlib.sha1(self.key).hexdigest()[:8]
        return f"{self.ckpt_path.stem}_{tag}_{name}"

    def path(self, image: Tensor, image_resized: Tensor | None = None) -> Path | None:
        """Where the package for this batch shape is cached (None: no checkpoint)."""
        if self.ckpt_path is None:
            return None
        return self.ckpt_path.parent / "jit" / f"{self.name(image, image_resized)}.pt2"

    def compiled_for(self, image: Tensor, image_resized: Tensor | None = None):
        """The compiled network for this batch shape: from memory, the disk cache, or made."""
        name = self.name(image, image_resized)
        if name not in self._loaded:
            path = self.path(image, image_resized)
            compiled = None if path is None else self._load(path)
            if compiled is None:
                compiled = self._compile(image, image_resized, path)
            self._loaded[name] = compiled
        return self._loaded[name]

    # -- internals ------------------------------------------------------------------------------
    def _load(self, path: Path):
        """The package at ``path`` when it was made for this key, else None (absent, damaged,
        or another key under the same short name)."""
        if not path.is_file():
            return None
        try:
            with zipfile.ZipFile(path) as archive:
                records = [n for n in archive.namelist() if n.endswith("/" + _KEY_RECORD)]
                key = archive.read(records[0]) if len(records) == 1 else b""
            if key != self.key:
                logger.info("note: %s was compiled for another checkpoint or config, again", path)
                return None
            return torch._inductor.aoti_load_package(str(path), device_index=self._index())
        except (OSError, RuntimeError, ValueError, zipfile.BadZipFile) as error:
            logger.info("note: %s: cannot load it (%s), compiling again", path, first_line(error))
            return None

    def _compile(self, image: Tensor, image_resized: Tensor | None, path: Path | None):
        """Export and compile for these shapes; cache the package at ``path`` when given."""
        logger.info("compiling the network for input %s (once per size)", tuple(image.shape))
        # Exporting records plain tensors: inference-mode tensors cannot enter it, so clone them.
        # The caller's autocast is switched off: Logits' own autocast is what the graph records.
        no_autocast = torch.autocast(self.device.type, enabled=False)
        with torch.inference_mode(False), torch.no_grad(), no_autocast:
            inputs = tuple(t.clone() for t in _inputs(image, image_resized))
            program = torch.export.export(self.logits, inputs)
        from torch._inductor.exc import CppCompileError, InvalidCxxCompiler  # not at start-up

        package = io.BytesIO()
        try:
            torch._inductor.aoti_compile_and_package(program, package_path=package)
        except (InvalidCxxCompiler, CppCompileError) as error:
            logger.warning(
                "--jit needs a working C++ compiler (%s); running the eager network instead",
                first_line(error),
            )
            return self.logits
        with zipfile.ZipFile(package, "a") as archive:
            top = archive.namelist()[0].split("/", 1)[0]
            archive.writestr(f"{top}/{_KEY_RECORD}", self.key)
        if path is not None:
            try:
                write_bytes_atomic(path, package.getvalue())
                return torch._inductor.aoti_load_package(str(path), device_index=self._index())
            except OSError as error:
                logger.info("note: cannot cache it at %s (%s); kept in memory", path, error)
        package.seek(0)
        return torch._inductor.aoti_load_package(package, device_index=self._index())

    def _index(self) -> int:
        return -1 if self.device.index is None else self.device.index


def _target(device: torch.device) -> str:
    """What the compiled code depends on besides torch: the CPU's vector instruction set, or
    the GPU's compute capability."""
    if device.type == "cuda":
        return "cuda sm_{}{}".format(*torch.cuda.get_device_capability(device))
    return f"{device.type} {torch.backends.cpu.get_cpu_capability()}"


def _inputs(image: Tensor, image_resized: Tensor | None) -> tuple[Tensor, ...]:
    return (image,) if image_resized is None else (image, image_resized)
