"""Export a config's inference network to ONNX or OpenVINO IR, checked against PyTorch.

    files = export_model(config, ckpt, out_dir, "onnx", sizes=[(1024, 1024)])

For every graph of :func:`utils.export.plan.plan_graphs`: ``torch.onnx.export`` with the
``torch.export``-based exporter (``dynamo=True``; the TorchScript-based one is deprecated in
torch 2.9+), batch dimension dynamic, height and width fixed (README "Exported engines" says
why), opset :data:`OPSET`. OpenVINO files are converted from that ONNX graph
(``openvino.convert_model``) and saved in float32 (``compress_to_fp16=False``).

The check: the exported file, run by the engine that will run it (onnxruntime for ``.onnx``,
openvino for IR), against the PyTorch model (float32, eval) on real photos stacked into one
batch. The export is refused (ExportError, one line with the worst difference; nothing is
written) when a logit differs by more than ``tolerance`` or a normalised map (σ + min–max, the
model's post-processing) by more than 1/255. Files are written atomically, with the metadata of
:data:`utils.inference.exported.METADATA_KEYS`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from data.transforms import build_transforms
from utils.export.plan import ExportError, ExportRefusedError, GraphSpec, plan_graphs
from utils.inference.engines import INSTALL, META_PREFIX, import_engine, open_graph
from utils.inference.exported import FORMAT_VERSION, normalize_logits
from utils.io.atomic import AtomicFile
from utils.io.checkpoint import checkpoint_sha256, load_model
from utils.io.files import REPO_ROOT

logger = logging.getLogger(__name__)

FORMATS = {"onnx": (".onnx", "onnxruntime"), "openvino": (".xml", "openvino")}
OPSET = 18
# Worst |logit difference| accepted. float32 rounding of a different operation order (fused
# convolutions, other GEMM blocking) moves the tiny test models' logits by up to ~1e-2 on real
# photos at |logits| of 10-30; a wrong graph moves them by whole units.
TOLERANCE = 0.05
MAP_TOLERANCE = 1 / 255
DEFAULT_PHOTO = REPO_ROOT / "docs" / "samples" / "input.png"


class _Single(nn.Module):
    """``image -> finest logits`` of one pyramid pass (``forward_inspyre``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> Tensor:
        return self.model.forward_inspyre(image)[0][-1]


class _Blend(nn.Module):
    """``(image, image_resized) -> finest logits`` of pyramid blending (architecture §10.2)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor, image_resized: Tensor) -> Tensor:
        return self.model.pyramid_blend(image, image_resized)[0][-1]


def project_version() -> str:
    """The installed inspyrenet package's version (pyproject.toml), or 'unknown'."""
    try:
        return package_metadata.version("inspyrenet")
    except package_metadata.PackageNotFoundError:
        return "unknown"


def check_photos(paths: Sequence[str | os.PathLike] = ()) -> list[Image.Image]:
    """RGB photos for the export check: ``paths``, or the README's sample photo and its mirror
    image (two, so that the batch dimension is checked too)."""
    if paths:
        return [Image.open(p).convert("RGB") for p in paths]
    photo = Image.open(DEFAULT_PHOTO).convert("RGB")
    return [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]


def _normalised(transforms_cfg: Mapping, picture: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """``picture`` resized (PIL bilinear, as the transforms resize) to ``size`` and normalised
    by the config's own ``tonumpy``/``normalize``: a float32 CHW array."""
    steps = {k: v for k, v in transforms_cfg.items() if k in ("tonumpy", "normalize")}
    resized = picture.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    array = build_transforms(steps)({"image": resized})["image"]
    return np.ascontiguousarray(np.asarray(array, np.float32).transpose(2, 0, 1))


def _check_inputs(spec: GraphSpec, transforms_cfg: Mapping, photos) -> dict[str, np.ndarray]:
    return {
        name: np.stack([_normalised(transforms_cfg, p, tuple(size)) for p in photos])
        for name, size in spec.inputs.items()
    }


def compare(reference: np.ndarray, exported: np.ndarray) -> tuple[float, float]:
    """Worst |logit difference| and worst |map difference| (per image σ + min–max) of two
    batches of logits."""
    logit = float(np.abs(reference - exported).max())
    maps = max(
        float(np.abs(normalize_logits(r) - normalize_logits(e)).max())
        for r, e in zip(reference, exported, strict=True)
    )
    return logit, maps


def _metadata(spec: GraphSpec, config: Mapping, ckpt: Path, sha256: str, check: dict) -> dict:
    model_cfg = dict(config["Model"])
    transforms = dict(config["Test"]["Dataset"]["transforms"])
    values = {
        "format_version": FORMAT_VERSION,
        "kind": spec.kind,
        "inputs": spec.inputs,
        "model": model_cfg,
        "transforms": transforms,
        "normalize": transforms.get("normalize"),
        "base_size": model_cfg.get("base_size"),
        "threshold": model_cfg.get("threshold"),
        "checkpoint": ckpt.name,
        "checkpoint_sha256": sha256,
        "project_version": project_version(),
        "exporter": {"torch": torch.__version__, "opset": OPSET},
        "check": check,
    }
    return {
        k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in values.items()
    }


def _torch_export(module: nn.Module, spec: GraphSpec, path: Path) -> None:
    """``torch.onnx.export`` of ``module`` for ``spec`` into ``path`` (batch dimension dynamic;
    traced with a batch of 2, since torch.export specialises a dimension of size 1)."""
    examples = tuple(torch.rand(2, 3, *size) for size in spec.inputs.values())
    batch = torch.export.Dim("batch")
    dynamic = {name: {0: batch} for name in spec.inputs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            examples,
            str(path),
            input_names=list(spec.inputs),
            output_names=["logits"],
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes=dynamic,
            external_data=False,
            verbose=False,
        )


def _require_packages(engine: str) -> None:
    """ExportError naming what to install when the exporter or the checking engine is missing."""
    import_engine(engine)
    for package in ("onnx", "onnxscript"):  # torch.onnx.export(dynamo=True) needs both
        try:
            __import__(package)
        except ImportError:
            raise ExportError(f"exporting needs the '{package}' package: {INSTALL}") from None


def _set_onnx_metadata(path: Path, values: Mapping[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {META_PREFIX + k: v for k, v in values.items()})
    onnx.save(proto, str(path))


def _save_openvino(model, xml_path: Path, values: Mapping[str, str]) -> Path:
    """Save the OpenVINO ``model`` as float32 IR at ``xml_path`` (and the ``.bin`` it returns)
    with ``values`` in its rt_info."""
    for key, value in values.items():
        model.set_rt_info(value, ["inspyrenet", key])
    import_engine("openvino").save_model(model, str(xml_path), compress_to_fp16=False)
    return xml_path.with_suffix(".bin")


def export_model(
    config: Mapping,
    ckpt: str | os.PathLike,
    out_dir: str | os.PathLike,
    fmt: str = "onnx",
    sizes: Sequence[tuple[int, int]] = (),
    *,
    tolerance: float = TOLERANCE,
    photos: Sequence[Image.Image] | None = None,
) -> list[Path]:
    """Export, check and write every graph of the config's test path; returns the files
    written (``<out_dir>/<kind>_<H>x<W>.onnx`` or ``.xml`` + ``.bin``). Raises ExportError
    (refused check, unexportable path), EngineError (missing package), CheckpointError."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format '{fmt}'; valid: {', '.join(FORMATS)}")
    suffix, engine = FORMATS[fmt]
    _require_packages(engine)  # a missing package: one line before minutes of exporting
    ckpt, out_dir = Path(ckpt), Path(out_dir)
    specs = plan_graphs(config["Model"], config["Test"]["Dataset"]["transforms"], sizes)
    model = load_model(config["Model"], ckpt).eval()
    sha256 = checkpoint_sha256(ckpt)
    photos = list(photos) if photos else check_photos()
    transforms_cfg = config["Test"]["Dataset"]["transforms"]
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        module = (_Blend if spec.kind == "blend" else _Single)(model).eval()
        inputs = _check_inputs(spec, transforms_cfg, photos)
        with torch.inference_mode():
            reference = module(*(torch.from_numpy(a) for a in inputs.values())).numpy()
        logger.info("exporting %s (%s) ...", spec.name, fmt)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as scratch:
            onnx_path = Path(scratch) / f"{spec.name}.onnx"
            _torch_export(module, spec, onnx_path)
            model.eval()  # the exporter may leave modules in another mode
            values = _metadata(spec, config, ckpt, sha256, {})
            converted = checked = onnx_path
            if fmt == "openvino":
                converted = import_engine("openvino").convert_model(str(onnx_path))
                checked = Path(scratch) / f"{spec.name}.xml"
                _save_openvino(converted, checked, values)
            graph = open_graph(checked, engine)
            exported = graph.run(inputs)
            del graph
            logit, maps = compare(reference, exported)
            check = {
                "photos": len(photos),
                "engine": engine,
                "max_logit_diff": logit,
                "max_map_diff_255": maps * 255,
                "tolerance": tolerance,
            }
            if logit > tolerance or maps > MAP_TOLERANCE:
                raise ExportRefusedError(
                    f"refused: {spec.name} exported for {engine} differs from PyTorch on "
                    f"{len(photos)} photos: worst logit difference {logit:.3g} (tolerance "
                    f"{tolerance:g}), worst map difference {maps * 255:.2f}/255 (at most 1)"
                )
            logger.info(
                "%s: checked against PyTorch on %d photos: worst logit difference %.2g, "
                "map difference %.2f/255",
                spec.name,
                len(photos),
                logit,
                maps * 255,
            )
            values = _metadata(spec, config, ckpt, sha256, check)
            written += _write(converted, out_dir / f"{spec.name}{suffix}", values)
    return written


def _write(checked, target: Path, values: Mapping[str, str]) -> list[Path]:
    """Write the checked graph (an ONNX file's path, or an OpenVINO model) at ``target`` (IR:
    ``.xml`` and its ``.bin``) atomically, with ``values`` as its metadata."""
    if isinstance(checked, Path):
        _set_onnx_metadata(checked, values)
        output = AtomicFile(target)
        os.replace(checked, output.tmp)
        return [output.commit()]
    xml, weights = AtomicFile(target, keep_suffix=True), AtomicFile(target.with_suffix(".bin"))
    try:
        produced = _save_openvino(checked, xml.tmp, values)
        os.replace(produced, weights.tmp)
    except BaseException:
        xml.discard()
        weights.discard()
        raise
    return [weights.commit(), xml.commit()]
