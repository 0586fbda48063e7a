"""Saliency maps from an exported model (run/Export.py) with ONNX Runtime or OpenVINO, no torch.

    p = ExportedPredictor.open("snapshots/InSPyReNet_SwinB/export/latest")   # a folder or a file
    m = p.predict(rgb_uint8_array)       # float32 (H, W) in [0, 1], like Predictor.predict

An export is a folder of files, one network each, every file self-contained: its metadata
(``inspyrenet.<key>``) holds the Model section, the test transforms (normalisation included),
the model's threshold and base size, the input sizes, the source checkpoint's SHA-256 and the
project version (:data:`METADATA_KEYS`). A file is one of two kinds (architecture §10.1):

* ``single``: one pyramid pass, input ``image``: what the model runs for a threshold of None
  (on ``image``) and for the low-resolution branch (on ``image_resized``, 384² in the
  published configs, or on ``image`` when the transforms make none);
* ``blend``: pyramid blending (§10.2) for one high-resolution ``image`` size, inputs ``image``
  and ``image_resized``.

The pre-processing is the config's own transforms (``data.transforms``: PIL resizes and the
float64 normalisation, which need no torch; only ``totensor`` is replaced by a CHW transpose),
so the network inputs are bit-identical to the torch engine's. The post-processing is the
model's (σ and min–max of the finest logits, per image, §10.3) and bilinT to the original size
in numpy. Which file runs an input follows the model's branch rule: a high-resolution size
that was not exported is one error for that input naming the ``run/Export.py --size`` to add.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from data.transforms import build_transforms
from utils.inference.compose import to_uint8
from utils.inference.engines import EXPORTED_ENGINES, EngineError, Graph, open_graph
from utils.inference.inputs import as_rgb_pil, same_size_groups

__all__ = [
    "DEFAULT_ENGINE",
    "INT8_TAG",
    "METADATA_KEYS",
    "PRECISIONS",
    "ExportedPredictor",
    "PreparedArrays",
    "UnexportedSizeError",
    "default_out_dir",
    "export_files",
    "normalize_logits",
    "resize_align_corners",
]

logger = logging.getLogger(__name__)

# The engine used for exported models when none is named: the fastest one measured on CPU by
# bench/engine_speed.py (README "Exported engines").
DEFAULT_ENGINE = "openvino"
FORMAT_VERSION = "1"
# Precisions of exported files: float32 (run/Export.py), int8 (run/Export.py --int8, OpenVINO
# only, utils.export.quantize), whose files are named ``<kind>_<H>x<W>.int8.xml``.
PRECISIONS = ("fp32", "int8")
INT8_TAG = ".int8"
# Every key an exported file carries (values are strings; JSON where structured); int8 files
# also carry INT8_METADATA_KEYS and their own ``check`` (against the float32 file).
METADATA_KEYS = (
    "format_version",  # FORMAT_VERSION
    "kind",  # single | blend
    "inputs",  # JSON {"image": [H, W], "image_resized": [h, w]}; null for a dynamic side
    "model",  # JSON: the config's Model section
    "transforms",  # JSON: Test.Dataset.transforms (resize, tonumpy, normalize, totensor)
    "normalize",  # JSON {"mean": [...], "std": [...]} (also inside transforms)
    "base_size",  # JSON [h, w]: Model.base_size
    "threshold",  # JSON: Model.threshold (null: always one pass on image)
    "checkpoint",  # the source checkpoint's file name
    "checkpoint_sha256",  # its SHA-256
    "project_version",  # the inspyrenet package version that exported it
    "exporter",  # torch version and ONNX opset
    "check",  # JSON: the export check (photos, worst logit and map differences, tolerance)
)
# Keys of int8 files only (a float32 file has no ``precision``: fp32).
INT8_METADATA_KEYS = (
    "precision",  # int8
    "calibration",  # JSON: calibration images used, NNCF version and preset
)


class PreparedArrays:
    """An image after the test transforms: float32 CHW arrays and the original (H, W)."""

    __slots__ = ("image", "image_resized", "shape")

    def __init__(self, image: np.ndarray, image_resized: np.ndarray | None, shape):
        self.image, self.image_resized, self.shape = image, image_resized, tuple(shape)

    @property
    def key(self) -> tuple:
        """Inputs with equal keys can be stacked into one batch."""
        resized = None if self.image_resized is None else self.image_resized.shape
        return self.image.shape, resized


def normalize_logits(logits: np.ndarray) -> np.ndarray:
    """σ(logits), then min–max over the array with +1e-8: ``lib.model.normalize_prediction``
    in float32 numpy (the predictor applies it per image)."""
    logits = np.asarray(logits, dtype=np.float32)
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -88: σ = 0, as in torch
        pred = np.float32(1) / (np.float32(1) + np.exp(-logits))
    low, high = pred.min(), pred.max()
    return (pred - low) / (high - low + np.float32(1e-8))


def _source_coords(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower index, upper index and weight of every output row for align_corners=True."""
    scale = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
    coords = np.arange(size_out, dtype=np.float32) * np.float32(scale)
    low = np.minimum(np.floor(coords).astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (coords - low).astype(np.float32)


def resize_align_corners(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D float32 map to ``shape`` with align_corners=True (the torch
    engine's ``F.interpolate(..., align_corners=True)``, separable, float32).

    Hand-written because OpenCV has no align-corners mode and its ``remap`` quantises the
    sampling positions to 1/32 px, which moves steep map edges by more than 1/255."""
    rows_low, rows_high, wy = _source_coords(array.shape[0], shape[0])
    cols_low, cols_high, wx = _source_coords(array.shape[1], shape[1])
    rows = array[rows_low] * (1 - wy)[:, None] + array[rows_high] * wy[:, None]
    out = rows[:, cols_low] * (1 - wx) + rows[:, cols_high] * wx
    return out.astype(np.float32, copy=False)


def default_out_dir(ckpt: str | os.PathLike) -> Path:
    """``<checkpoint dir>/export/<checkpoint stem>``: where run/Export.py writes by default and
    the scripts look for an export of that checkpoint."""
    ckpt = Path(ckpt)
    return ckpt.parent / "export" / ckpt.stem


def _precision(path: Path) -> str:
    """A file's precision by its name: ``*.int8.xml`` is int8, anything else float32."""
    return "int8" if path.stem.endswith(INT8_TAG) else "fp32"


def export_files(path: str | os.PathLike, engine: str, precision: str = "fp32") -> list[Path]:
    """The exported files ``engine`` runs from ``path``: a file as it is, or a folder's files of
    ``precision`` (fp32: its ``.onnx`` files for onnxruntime, its ``.xml`` files, else its
    ``.onnx`` files, for openvino; int8: its ``*.int8.xml`` files, openvino only)."""
    path = Path(path)
    if precision not in PRECISIONS:
        raise EngineError(f"exported models run in {' or '.join(PRECISIONS)}, not {precision}")
    if precision == "int8" and engine != "openvino":
        raise EngineError(
            "int8 exports run with --engine openvino (ONNX Runtime int8 is not offered: README "
            '"Exported engines")'
        )
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise EngineError(f"{path}: no exported model there (run/Export.py writes one)")
    if precision == "int8":
        files = sorted(p for p in path.glob("*.xml") if _precision(p) == "int8")
        if not files:
            raise EngineError(
                f"{path}: no int8 files there (make them with .venv/bin/python run/Export.py "
                "... --format openvino --int8 <folder of calibration images>)"
            )
        return files
    onnx = sorted(path.glob("*.onnx"))
    xml = sorted(p for p in path.glob("*.xml") if _precision(p) == "fp32")
    if engine == "onnxruntime":
        if not onnx and any(path.glob("*.xml")):
            raise EngineError(
                f"{path} holds only OpenVINO files: use --engine openvino, or export with "
                "--format onnx"
            )
        files = onnx
    else:
        files = xml or onnx
    if not files and any(path.glob(f"*{INT8_TAG}.xml")):
        raise EngineError(f"{path} holds only int8 files: add --precision int8")
    if not files:
        raise EngineError(f"{path}: no exported model there (run/Export.py writes one)")
    return files


class UnexportedSizeError(RuntimeError):
    """An input whose network was not exported: that input fails (the pipeline reports it as
    an inference failure and goes on); ``str()`` names the run/Export.py size to add."""


@dataclass(frozen=True)
class _Route:
    graph: Graph
    feeds: tuple[str, ...]  # which prepared arrays feed it, in its input order


class ExportedPredictor:
    """:class:`utils.inference.predictor.Predictor`'s interface (``prepare``, ``predict``,
    ``predict_batch``, ``predict_prepared``) over exported files run by ``engine``.

    Build it with :meth:`open`. Every file must come from the same checkpoint and config."""

    to_uint8 = staticmethod(to_uint8)

    def __init__(self, graphs: Sequence[Graph]):
        if not graphs:
            raise EngineError("no exported model to run")
        self.graphs = list(graphs)
        first = self.graphs[0]
        for graph in self.graphs:
            missing = [
                k for k in ("kind", "inputs", "model", "transforms") if k not in graph.metadata
            ]
            if missing:
                raise EngineError(
                    f"{graph.path}: not exported by run/Export.py (no {', '.join(missing)} "
                    "in its metadata)"
                )
            for key in ("checkpoint_sha256", "model", "transforms", "precision"):
                if graph.metadata.get(key) != first.metadata.get(key):
                    raise EngineError(
                        f"{graph.path} and {first.path} were exported from different "
                        f"checkpoints or configs or in other precisions ({key} differs)"
                    )
        self.metadata = dict(first.metadata)
        self.engine = first.engine
        self.precision = self.metadata.get("precision", "fp32")
        self.ckpt_path = first.path.parent
        self.model_config = json.loads(self.metadata["model"])
        self.threshold = json.loads(self.metadata.get("threshold", "null"))
        transforms = json.loads(self.metadata["transforms"])
        transforms.pop("totensor", None)  # CHW arrays instead (prepare)
        self.transforms = build_transforms(transforms)
        self._single: dict[tuple, Graph] = {}
        self._blend: dict[tuple, Graph] = {}
        for graph in self.graphs:
            inputs = json.loads(graph.metadata["inputs"])
            if graph.metadata["kind"] == "blend":
                key = (tuple(inputs["image"]), tuple(inputs["image_resized"]))
                self._blend[key] = graph
            else:
                self._single[tuple(inputs["image"])] = graph

    @classmethod
    def open(
        cls,
        path: str | os.PathLike | Sequence[str | os.PathLike],
        engine: str = DEFAULT_ENGINE,
        device: str | None = None,
        precision: str = "fp32",
    ) -> ExportedPredictor:
        """Load the exported files at ``path`` (a file, a folder of them, or a list of files)
        with ``engine`` (``onnxruntime`` or ``openvino``) on ``device`` (default ``cpu``;
        ``cuda[:N]`` with onnxruntime-gpu); from a folder, its files of ``precision`` (fp32,
        or int8 with openvino). Raises EngineError (a ValueError) with one line."""
        if engine not in EXPORTED_ENGINES:
            raise EngineError(f"exported models run with {' or '.join(EXPORTED_ENGINES)}")
        device = (device or "cpu").strip().lower()
        if isinstance(path, str | os.PathLike):
            files = export_files(path, engine, precision)
        else:
            files = [Path(p) for p in path]
        return cls([open_graph(file, engine, device) for file in files])

    @property
    def sizes(self) -> list[str]:
        """The input sizes this export covers, e.g. ``['single 384x384', 'blend 1024x1024']``."""
        names = [f"single {_size(k)}" for k in self._single]
        return names + [f"blend {_size(k[0])}" for k in self._blend]

    # -- public API (as Predictor) ---------------------------------------------------------------
    def prepare(self, image: Image.Image | np.ndarray) -> PreparedArrays:
        """Apply the test transforms to one image (safe in a loader thread)."""
        pil = as_rgb_pil(image)
        shape = (pil.height, pil.width)
        sample = self.transforms({"image": pil, "name": "", "shape": shape})
        resized = sample.get("image_resized")
        return PreparedArrays(
            _chw(sample["image"]), None if resized is None else _chw(resized), shape
        )

    def predict(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """The saliency map of one image: float32 (H, W) in [0, 1] at its original size."""
        return self.predict_prepared([self.prepare(image)])[0]

    def predict_batch(self, images: Sequence[Image.Image | np.ndarray]) -> list[np.ndarray]:
        """Maps of several images; same-size inputs share a run of the network."""
        return self.predict_prepared([self.prepare(image) for image in images])

    def predict_prepared(self, items: Sequence[PreparedArrays]) -> list[np.ndarray]:
        """Maps of :meth:`prepare` d inputs, in order; equal-size inputs run as one batch."""
        results: list[np.ndarray | None] = [None] * len(items)
        for indices in same_size_groups(items):
            logits = self.logits([items[i] for i in indices])
            for row, index in enumerate(indices):
                pred = normalize_logits(logits[row, 0])
                results[index] = resize_align_corners(pred, items[index].shape)
        return results

    def logits(self, items: Sequence[PreparedArrays]) -> np.ndarray:
        """Finest saliency logits (B, 1, h, w) of same-size prepared inputs."""
        route = self._route(items[0])
        feeds = {}
        for name, source in zip(route.graph.inputs, route.feeds, strict=True):
            feeds[name] = np.stack([getattr(item, source) for item in items])
        return route.graph.run(feeds)

    # -- internals ---------------------------------------------------------------------------------
    def _route(self, item: PreparedArrays) -> _Route:
        """The file and inputs for an item, by the model's branch rule (architecture §10.1)."""
        h, w = item.image.shape[-2:]
        resized = item.image_resized
        if self.threshold is not None and h > self.threshold and w > self.threshold:
            if resized is None:
                raise UnexportedSizeError(
                    f"a {h}x{w} input is above the threshold {self.threshold} and the "
                    "transforms give no image_resized for pyramid blending"
                )
            graph = self._blend.get(((h, w), tuple(resized.shape[-2:])))
            if graph is None:
                raise UnexportedSizeError(
                    f"this export has no pyramid-blending network for {h}x{w} inputs "
                    f"(it has: {', '.join(self.sizes)}); add it: .venv/bin/python "
                    f"run/Export.py ... --size {h}x{w}"
                )
            return _Route(graph, ("image", "image_resized"))
        source = "image" if self.threshold is None or resized is None else "image_resized"
        size = tuple(getattr(item, source).shape[-2:])
        graph = self._single.get(size) or self._single.get((None, None))
        if graph is None:
            raise UnexportedSizeError(
                f"this export has no network for {_size(size)} inputs (it has: "
                f"{', '.join(self.sizes)}); add it: .venv/bin/python run/Export.py ... "
                f"--size {_size(size)}"
            )
        return _Route(graph, (source,))


def _chw(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, dtype=np.float32).transpose(2, 0, 1))


def _size(hw: Sequence) -> str:
    return "x".join("any" if v is None else str(v) for v in hw)
