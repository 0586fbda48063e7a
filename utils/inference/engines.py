"""The runtimes that run an exported network (run/Export.py): ONNX Runtime and OpenVINO.

    graph = open_graph("snapshots/X/export/latest/single_384x384.onnx", "onnxruntime")
    graph.metadata["kind"], graph.inputs          # what run/Export.py wrote in the file
    logits = graph.run({"image": batch})          # float32 (B, 3, H, W) -> float32 (B, 1, h, w)

Neither imports torch. ``onnxruntime`` reads ``.onnx`` files; ``openvino`` reads its own IR
(``.xml`` + ``.bin``) and ``.onnx`` files. A missing package is one :class:`EngineError` line
saying what to install. Metadata: ONNX ``metadata_props`` (``inspyrenet.<key>``), OpenVINO
``rt_info`` (``["inspyrenet", <key>]`` in our IR files; ONNX files read by OpenVINO keep theirs
under ``["framework", "inspyrenet.<key>"]``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from utils.io.errors import first_line

ENGINES = ("torch", "onnxruntime", "openvino")
EXPORTED_ENGINES = ("onnxruntime", "openvino")
META_PREFIX = "inspyrenet."
INSTALL = ".venv/bin/pip install -r requirements-deploy.txt"
_PACKAGES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


class EngineError(ValueError):
    """An engine that cannot run here, or a file it cannot use; ``str()`` is one line."""


def import_engine(engine: str):
    """The engine's Python package; EngineError naming what to install when it is missing."""
    if engine not in _PACKAGES:
        raise EngineError(
            f"unknown engine '{engine}'; exported models run with: {EXPORTED_ENGINES}"
        )
    try:
        return importlib.import_module(_PACKAGES[engine])
    except ImportError:
        raise EngineError(
            f"--engine {engine} needs the '{_PACKAGES[engine]}' package: {INSTALL}"
        ) from None


@dataclass
class Graph:
    """One exported network: its file, its metadata (``inspyrenet.`` keys without the prefix),
    its input names and (height, width) (None where dynamic) and ``run(feeds) -> logits``."""

    path: Path
    engine: str
    metadata: dict[str, str]
    inputs: dict[str, tuple[int | None, int | None]]
    run: Callable[[Mapping[str, np.ndarray]], np.ndarray] = field(repr=False)


def _spatial(shape) -> tuple[int | None, int | None]:
    """(height, width) of an NCHW shape whose dimensions may be names or None (dynamic)."""
    return tuple(d if isinstance(d, int) and d > 0 else None for d in list(shape)[2:4])


def _onnxruntime_graph(path: Path, device: str) -> Graph:
    ort = import_engine("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings about unused initialisers are noise
    providers: list = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise EngineError(
                f"--device {device}: this onnxruntime has no CUDA provider "
                "(pip install onnxruntime-gpu instead of onnxruntime)"
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        providers = [("CUDAExecutionProvider", {"device_id": index}), *providers]
    elif device != "cpu":
        raise EngineError(f"--device {device}: --engine onnxruntime runs on cpu or cuda[:N]")
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # onnxruntime raises its own exception types for bad files
        raise EngineError(f"{path}: onnxruntime cannot load it ({first_line(error)})") from None
    raw = session.get_modelmeta().custom_metadata_map
    metadata = {k[len(META_PREFIX) :]: v for k, v in raw.items() if k.startswith(META_PREFIX)}
    inputs = {i.name: _spatial(i.shape) for i in session.get_inputs()}
    output = session.get_outputs()[0].name

    def run(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return session.run([output], dict(feeds))[0]

    return Graph(path, "onnxruntime", metadata, inputs, run)


def _openvino_metadata(model) -> dict[str, str]:
    """Our keys from an OpenVINO model's rt_info (IR: ``inspyrenet/<key>``; ONNX:
    ``framework/inspyrenet.<key>``)."""
    metadata = {}
    info = model.get_rt_info()
    for section, prefix in (("framework", META_PREFIX), ("inspyrenet", "")):
        if not model.has_rt_info([section]):
            continue
        for key in info[section]:  # a dict of OVAny values
            if key.startswith(prefix):
                metadata[key[len(prefix) :]] = model.get_rt_info([section, key]).astype(str)
    return metadata


def _openvino_graph(path: Path, device: str) -> Graph:
    ov = import_engine("openvino")
    if device != "cpu":
        raise EngineError(f"--device {device}: --engine openvino runs on the cpu here")
    core = ov.Core()
    try:
        model = core.read_model(str(path))
    except Exception as error:  # OpenVINO raises RuntimeError subclasses of its own
        raise EngineError(f"{path}: openvino cannot load it ({first_line(error)})") from None
    inputs = {
        port.any_name: _spatial(
            [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        )
        for port in model.inputs
    }
    compiled = []  # compiled on first use: a one-photo run compiles only the network it needs

    def run(feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        if not compiled:
            # float32 as exported: on CPUs with AVX512-BF16 or AMX OpenVINO would pick bf16
            network = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
            compiled.append((network.create_infer_request(), network.output(0)))
        request, output = compiled[0]
        # One image per request: OpenVINO 2026.4 computes wrong maps for batches of more than
        # one in the pyramid-blending network (a dynamic batch dimension); one by one is exact
        # (tests/utils/export_cases.py) and costs nothing measurable on a CPU.
        batch = len(next(iter(feeds.values())))
        maps = []
        for index in range(batch):
            single = {name: array[index : index + 1] for name, array in feeds.items()}
            maps.append(np.array(request.infer(single)[output], dtype=np.float32, copy=True))
        return np.concatenate(maps)

    return Graph(path, "openvino", _openvino_metadata(model), inputs, run)


def open_graph(path: str | os.PathLike, engine: str, device: str = "cpu") -> Graph:
    """Load one exported file with ``engine`` (``onnxruntime`` or ``openvino``) on ``device``
    (``cpu``; ``cuda[:N]`` with onnxruntime-gpu). Raises EngineError with one line."""
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path}: no such exported model file")
    if engine == "onnxruntime":
        if path.suffix.lower() != ".onnx":
            raise EngineError(
                f"{path}: onnxruntime reads .onnx files (export with --format onnx, "
                "or use --engine openvino)"
            )
        return _onnxruntime_graph(path, device)
    if engine == "openvino":
        if path.suffix.lower() not in (".onnx", ".xml"):
            raise EngineError(f"{path}: openvino reads .xml (its IR) or .onnx files")
        return _openvino_graph(path, device)
    import_engine(engine)  # raises for an unknown name
    raise AssertionError(engine)
