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
written) when the logits differ from PyTorch's by more than ``tolerance`` at the 99.9th
percentile or more than :data:`MAP_FRACTION` of the normalised map's pixels (σ + min–max, the
model's post-processing) by more than 1/255. For pyramid blending, "PyTorch's" is the range of
its outputs with the band masks' float ties taken either way (:mod:`utils.export.band_ties`).
Files are written atomically, with the metadata of
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
from utils.export.band_ties import BAND_MARGIN, bracket_ties
from utils.export.plan import ExportError, ExportRefusedError, GraphSpec, plan_graphs
from utils.inference.engines import INSTALL, META_PREFIX, import_engine, open_graph
from utils.inference.exported import FORMAT_VERSION, normalize_logits
from utils.io.atomic import AtomicFile
from utils.io.checkpoint import checkpoint_sha256, load_model
from utils.io.files import REPO_ROOT

logger = logging.getLogger(__name__)

FORMATS = {"onnx": (".onnx", "onnxruntime"), "openvino": (".xml", "openvino")}
OPSET = 18
# The |logit difference| accepted at the 99.9th percentile. float32 rounding of another
# operation order (fused convolutions, other GEMM blocking) moves the tiny test model's logits
# by up to 5e-4 and random-weight SwinB's by up to 0.04 on real photos; a wrong graph moves
# them by units.
TOLERANCE = 0.05
MAP_TOLERANCE = 1 / 255
# The share of map pixels allowed beyond MAP_TOLERANCE.
# Not none: min–max normalisation of a large network's logits can put float noise alone above
# 1/255 at a few pixels (random-weight SwinB at 384², no band mask involved: OpenVINO 1.85/255
# at 0.006 % of the pixels), and a band value just outside BAND_MARGIN may still flip. A wrong
# graph moves most pixels.
MAP_FRACTION = 1e-3
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


def check_inputs(
    spec: GraphSpec, transforms_cfg: Mapping, photos: Sequence[Image.Image]
) -> dict[str, np.ndarray]:
    """``photos`` as one batch of ``spec``'s named inputs (resized to its sizes, normalised)."""
    return {
        name: np.stack([_normalised(transforms_cfg, p, tuple(size)) for p in photos])
        for name, size in spec.inputs.items()
    }


def compare(references: np.ndarray, exported: np.ndarray) -> dict[str, float]:
    """How a batch of logits departs from the range of ``references`` (stacked on the first
    axis: :func:`utils.export.band_ties.bracket_ties`): the worst and the 99.9th-percentile
    logit distance, the worst map distance (per image σ + min–max, in 1/255), the fraction of
    map pixels farther than 1/255, and the fraction whose references themselves differ by more
    than 1/255 (those that hang on a band-mask tie)."""
    logits = _outside(references, exported)
    distance, spread = [], []
    for refs, image_logits in zip(references.swapaxes(0, 1), exported, strict=True):
        maps = np.stack([normalize_logits(r) for r in refs])
        distance.append(_outside(maps, normalize_logits(image_logits)).ravel())
        spread.append(np.ptp(maps, axis=0).ravel())
    distance, spread = np.concatenate(distance), np.concatenate(spread)
    return {
        "max_logit_diff": float(logits.max()),
        "p999_logit_diff": float(np.percentile(logits, 99.9)),
        "max_map_diff_255": float(distance.max() * 255),
        "map_fraction_over_1_255": float((distance > MAP_TOLERANCE).mean()),
        "tie_pixels": float((spread > MAP_TOLERANCE).mean()),
    }


def _outside(references: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Elementwise distance of ``values`` from [min, max] of ``references`` over axis 0."""
    return np.maximum(references.min(0) - values, 0) + np.maximum(values - references.max(0), 0)


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
        k: v if isinstance(v, str) else json.dumps(v)  # key order kept: transforms run in order
        for k, v in values.items()
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
    formats: str | Sequence[str] = "onnx",
    sizes: Sequence[tuple[int, int]] = (),
    *,
    tolerance: float = TOLERANCE,
    photos: Sequence[Image.Image] | None = None,
) -> list[Path]:
    """Export, check and write every graph of the config's test path in each of ``formats``
    (``onnx``, ``openvino``; one torch export serves both); returns the files written
    (``<out_dir>/<kind>_<H>x<W>.onnx``, ``.xml`` + ``.bin``). Raises ExportRefusedError (a
    check failed: nothing of that graph is written, earlier graphs are kept), ExportError
    (the path cannot be exported), EngineError (missing package), CheckpointError."""
    formats = [formats] if isinstance(formats, str) else list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"unknown format {unknown}; valid: {', '.join(FORMATS)}")
    for fmt in formats:  # a missing package: one line before minutes of exporting
        _require_packages(FORMATS[fmt][1])
    ckpt, out_dir = Path(ckpt), Path(out_dir)
    transforms_cfg = config["Test"]["Dataset"]["transforms"]
    specs = plan_graphs(config["Model"], transforms_cfg, sizes)
    model = load_model(config["Model"], ckpt).eval()
    sha256 = checkpoint_sha256(ckpt)
    photos = list(photos) if photos else check_photos()
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        module = (_Blend if spec.kind == "blend" else _Single)(model).eval()
        inputs = check_inputs(spec, transforms_cfg, photos)
        tensors = [torch.from_numpy(a) for a in inputs.values()]
        with torch.inference_mode():
            margin = BAND_MARGIN if spec.kind == "blend" else 0.0
            run = lambda m=module, t=tensors: m(*t).numpy()  # noqa: E731
            references = bracket_ties(model, run, margin)
        logger.info("exporting %s ...", spec.name)
        with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as scratch:
            onnx_path = Path(scratch) / f"{spec.name}.onnx"
            _torch_export(module, spec, onnx_path)
            model.eval()  # the exporter may leave modules in another mode
            checked = {}
            for fmt in formats:
                graph = onnx_path
                if fmt == "openvino":
                    graph = import_engine("openvino").convert_model(str(onnx_path))
                check = _check(spec, graph, Path(scratch), inputs, references, tolerance)
                checked[fmt] = (graph, _metadata(spec, config, ckpt, sha256, check))
            for fmt in sorted(checked, key=lambda f: f == "onnx"):  # IR from the ONNX file first
                graph, values = checked[fmt]
                written += write_graph(graph, out_dir / f"{spec.name}{FORMATS[fmt][0]}", values)
    return written


def _check(
    spec: GraphSpec,
    graph,
    scratch: Path,
    inputs: Mapping[str, np.ndarray],
    references: np.ndarray,
    tolerance: float,
) -> dict:
    """Run ``graph`` (an ONNX file, or an OpenVINO model saved to ``scratch`` for the check)
    with the engine that will run it; the check's figures, or ExportRefusedError."""
    if isinstance(graph, Path):
        engine, path = "onnxruntime", graph
    else:
        engine, path = "openvino", scratch / f"{spec.name}.xml"
        _save_openvino(graph, path, {})
    exported = open_graph(path, engine).run(inputs)
    check = compare(references, exported)
    photos = references.shape[1]
    if check["p999_logit_diff"] > tolerance or check["map_fraction_over_1_255"] > MAP_FRACTION:
        raise ExportRefusedError(
            f"refused: {spec.name} run by {engine} differs from PyTorch on {photos} photos: "
            f"logit difference {check['p999_logit_diff']:.3g} at the 99.9th percentile "
            f"(tolerance {tolerance:g}; worst {check['max_logit_diff']:.3g}), "
            f"{check['map_fraction_over_1_255']:.2%} of map pixels differ by more than 1/255 "
            f"(at most {MAP_FRACTION:.1%}; worst {check['max_map_diff_255']:.2f}/255)"
        )
    logger.info(
        "%s (%s): checked against PyTorch on %d photos: logit difference %.2g (99.9th "
        "percentile; worst %.2g), map pixels over 1/255: %.4f%% (worst %.2f/255; hanging on a "
        "band-mask tie: %.4f%%)",
        spec.name,
        engine,
        photos,
        check["p999_logit_diff"],
        check["max_logit_diff"],
        100 * check["map_fraction_over_1_255"],
        check["max_map_diff_255"],
        100 * check["tie_pixels"],
    )
    return {"photos": photos, "engine": engine, "tolerance": tolerance, **check}


def write_graph(checked, target: Path, values: Mapping[str, str]) -> list[Path]:
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
