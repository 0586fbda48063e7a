"""int8 post-training quantisation of exported OpenVINO networks with NNCF, checked against the
float32 file it comes from.

    images = calibration_files("calib/")                        # validated, evenly spaced
    files = quantize_export(["export/single_384x384.xml"], images)
    # -> export/single_384x384.int8.xml + .int8.bin

OpenVINO only: NNCF's ``nncf.quantize`` (OpenVINO's own post-training tool) on the float32 IR
written by :func:`utils.export.exporter.export_model`, with calibration images from a folder
prepared exactly as the network's inputs are at run time (the config's resize to the file's
input sizes and its normalisation). Swin backbones are quantised with NNCF's transformer
preset (``ModelType.TRANSFORMER``: SmoothQuant, no quantisers on the attention's softmax
branch), Res2Net with the default one. ONNX Runtime's ``quantize_static`` was measured and is
not offered (README "Exported engines": 1.35x its float32 here against OpenVINO int8's 2.84x,
so half as fast as OpenVINO int8, and SwinB's calibration needs over 10 GB of memory).

The check: the int8 network against its float32 file, both run by OpenVINO, on the export
check's photos. int8 cannot keep maps within 1/255 of float32, so the figures (mean and worst
|difference| of the 8-bit maps, fraction of pixels over 1/255 and over 10/255) go into the
file's metadata (``check``; ``precision`` "int8", ``calibration``) and the file is refused only
when the maps differ by more than :data:`MAX_MEAN_MAP_DIFF` on average (or the bound given).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from utils.export.exporter import check_inputs, check_photos, write_graph
from utils.export.plan import ExportError, ExportRefusedError, GraphSpec
from utils.inference.compose import to_uint8
from utils.inference.engines import INSTALL, Graph, import_engine, open_graph
from utils.inference.exported import INT8_TAG, normalize_logits
from utils.io.files import IMAGE_EXTENSIONS, list_image_files
from utils.io.images import ImageReadError, read_image

logger = logging.getLogger(__name__)

# Calibration images used at most (evenly spaced over the folder's natural order). NNCF's own
# default is 300; 64 photos keep SwinB's calibration near 10 minutes on a 2-core CPU.
CALIBRATION_COUNT = 64
# Mean |difference| of the 8-bit maps (in 1/255) above which an int8 file is refused by
# default (run/Export.py --int8-tolerance). Strict on purpose: a trained network's int8 maps are
# expected to stay within a few levels of float32, and a file that moves them more should be a
# decision (--int8-tolerance), not a surprise. No trained checkpoint could be measured here; on
# the random-weight models int8 moved the maps by 25-39/255 (tiny Res2Net) and 13-114/255
# (SwinB, depending on the photo and the calibration set), which this refuses: README
# "Exported engines". An inverted or constant map differs by about its mean or more.
MAX_MEAN_MAP_DIFF = 8


def calibration_files(folder: str | os.PathLike, count: int = CALIBRATION_COUNT) -> list[Path]:
    """Up to ``count`` images of ``folder`` (natural order, evenly spaced), each decoded once
    here so that a bad one stops the export before minutes of work. ExportError (one line
    naming the folder or the file) for a missing folder, no images, an unreadable image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"--int8 {folder}: no such folder of calibration images")
    files = list_image_files(folder)
    if not files:
        raise ExportError(
            f"--int8 {folder}: no calibration images there ({' '.join(IMAGE_EXTENSIONS)})"
        )
    if len(files) > count:
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, count).round()]
    for path in files:
        try:
            read_image(path)
        except ImageReadError as error:
            raise ExportError(f"--int8: calibration image {error}") from None
    return files


def graph_spec(graph: Graph) -> GraphSpec:
    """The GraphSpec an exported file was made from (its metadata's kind and input sizes)."""
    inputs = json.loads(graph.metadata["inputs"])
    resized = inputs.get("image_resized")
    return GraphSpec(
        graph.metadata["kind"], tuple(inputs["image"]), tuple(resized) if resized else None
    )


def network_inputs(graph: Graph, photos: Sequence[Image.Image]) -> dict[str, np.ndarray]:
    """``photos`` as one batch of ``graph``'s inputs: resized to its input sizes and normalised
    by the transforms in its metadata, as the export check prepares them."""
    transforms = json.loads(graph.metadata["transforms"])
    return check_inputs(graph_spec(graph), transforms, photos)


def _maps_255(logits: np.ndarray) -> np.ndarray:
    """The 8-bit maps (the model's per-image σ + min–max) of a batch of logits, as int16."""
    return np.stack([to_uint8(normalize_logits(row[0])) for row in logits]).astype(np.int16)


def compare_maps(reference: np.ndarray, quantised: np.ndarray) -> dict[str, float]:
    """How the 8-bit maps of two batches of logits differ: mean and worst |difference| (in
    1/255) and the fractions of pixels that differ by more than 1/255 and 10/255."""
    difference = np.abs(_maps_255(reference) - _maps_255(quantised))
    return {
        "mean_map_diff_255": float(difference.mean()),
        "max_map_diff_255": float(difference.max()),
        "map_fraction_over_1_255": float((difference > 1).mean()),
        "map_fraction_over_10_255": float((difference > 10).mean()),
    }


def require_nncf():
    """The nncf package; ExportError naming what to install when it is missing."""
    try:
        import nncf
    except ImportError:
        raise ExportError(f"--int8 needs the 'nncf' package: {INSTALL}") from None
    return nncf


def quantize_export(
    xml_files: Sequence[str | os.PathLike],
    calibration: Sequence[str | os.PathLike],
    photos: Sequence[Image.Image] | None = None,
    *,
    max_mean_map_diff: float = MAX_MEAN_MAP_DIFF,
) -> list[Path]:
    """Quantise each float32 OpenVINO file of ``xml_files`` to int8 with ``calibration`` images
    (:func:`calibration_files`), check it against the float32 file on ``photos`` (default: the
    export check's; refused above ``max_mean_map_diff``/255 on average) and write
    ``<stem>.int8.xml`` + ``.int8.bin`` beside it; returns the files written.
    ExportRefusedError when a check fails (nothing of that network written, earlier ones
    kept), ExportError for a missing package or a file that is not a float32 export."""
    nncf = require_nncf()
    ov = import_engine("openvino")
    photos = list(photos) if photos else check_photos()
    written = []
    for xml in map(Path, xml_files):
        fp32 = open_graph(xml, "openvino")
        if fp32.metadata.get("precision", "fp32") != "fp32" or "transforms" not in fp32.metadata:
            raise ExportError(f"{xml}: not a float32 export of run/Export.py")
        spec = graph_spec(fp32)
        model = ov.Core().read_model(str(xml))
        name = json.loads(fp32.metadata["model"]).get("name", "")
        model_type = nncf.ModelType.TRANSFORMER if "Swin" in name else None

        def feed(path: Path, graph: Graph = fp32) -> dict[str, np.ndarray]:
            return network_inputs(graph, [read_image(path)])

        logger.info(
            "quantising %s to int8 with %d calibration images (NNCF%s) ...",
            spec.name,
            len(calibration),
            ", transformer preset" if model_type else "",
        )
        quantised = nncf.quantize(
            model,
            nncf.Dataset([Path(p) for p in calibration], feed),
            subset_size=len(calibration),
            model_type=model_type,
        )
        inputs = network_inputs(fp32, photos)
        reference = fp32.run(inputs)
        target = xml.with_name(f"{spec.name}{INT8_TAG}.xml")
        with tempfile.TemporaryDirectory(dir=xml.parent, prefix=".int8-") as scratch:
            path = Path(scratch) / target.name
            ov.save_model(quantised, str(path), compress_to_fp16=False)
            check = compare_maps(reference, open_graph(path, "openvino").run(inputs))
        _refuse_or_log(spec, check, len(photos), max_mean_map_diff)
        values = dict(fp32.metadata)
        values["precision"] = "int8"
        values["calibration"] = json.dumps(
            {
                "images": len(calibration),
                "tool": f"nncf {nncf.__version__}",
                "model_type": "transformer" if model_type else "default",
            }
        )
        values["check"] = json.dumps(
            {
                "against": "fp32",
                "engine": "openvino",
                "photos": len(photos),
                "max_mean_map_diff_255": max_mean_map_diff,
                **check,
            }
        )
        written += write_graph(quantised, target, values)
    return written


def _refuse_or_log(spec: GraphSpec, check: dict, photos: int, bound: float) -> None:
    figures = (
        f"8-bit maps differ by {check['mean_map_diff_255']:.2f}/255 on average (worst "
        f"{check['max_map_diff_255']:.0f}/255), {check['map_fraction_over_1_255']:.1%} of "
        f"pixels by more than 1/255, {check['map_fraction_over_10_255']:.1%} by more than 10/255"
    )
    if check["mean_map_diff_255"] > bound:
        raise ExportRefusedError(
            f"refused: {spec.name} int8 against float32 on {photos} photos: {figures} "
            f"(at most {bound:g}/255 on average; --int8-tolerance)"
        )
    logger.info("%s int8 against float32 on %d photos: %s", spec.name, photos, figures)
