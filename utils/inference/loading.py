"""One entry point for every engine: the torch Predictor, or an exported model run by ONNX
Runtime or OpenVINO (utils.inference.exported), with the same interface and outputs.

    predictor = open_predictor("configs/InSPyReNet_SwinB.yaml", engine="openvino")
    predictor = open_predictor(None, engine="onnxruntime", exported="model/export/latest")
    predictor = open_predictor(cfg, engine="torch", device="cuda", precision="bf16")
    predictor = open_predictor(None, engine="openvino", exported="export/", precision="int8")

With a non-torch engine nothing here imports torch. Without ``exported`` the export is looked
for where run/Export.py writes it by default (``<checkpoint dir>/export/<checkpoint stem>/``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from utils.config import load_config
from utils.inference.engines import ENGINES, EngineError
from utils.inference.exported import DEFAULT_ENGINE, ExportedPredictor, default_out_dir


def resolve_engine(engine: str | None, exported: str | os.PathLike | None) -> str:
    """The engine to use: as given, else the exported engine default when an export is named,
    else torch."""
    if engine is None:
        return "torch" if exported is None else DEFAULT_ENGINE
    if engine not in ENGINES:
        raise EngineError(f"unknown engine '{engine}'; valid: {', '.join(ENGINES)}")
    return engine


def open_predictor(
    config: str | os.PathLike | Mapping | None,
    *,
    engine: str | None = None,
    exported: str | os.PathLike | None = None,
    ckpt: str | os.PathLike | None = None,
    device: str | None = None,
    opts: Sequence[str] = (),
    **torch_options,
):
    """A Predictor (``engine`` torch; ``torch_options`` go to ``Predictor.from_config``) or an
    ExportedPredictor (onnxruntime, openvino: ``exported``, or the default export folder of
    ``ckpt`` / the config's checkpoint; ``precision`` int8 picks the folder's int8 files,
    openvino only). Raises a ValueError with one line."""
    engine = resolve_engine(engine, exported)
    precision = torch_options.get("precision")
    if engine == "torch":
        if precision == "int8":
            raise EngineError(
                "--precision int8: only with an exported model run by --engine openvino "
                "(run/Export.py --int8 makes it)"
            )
        if exported is not None:
            raise EngineError("an exported model runs with --engine onnxruntime or openvino")
        if config is None:
            raise EngineError("the torch engine needs a config (--config)")
        from utils.inference.predictor import Predictor

        return Predictor.from_config(config, ckpt=ckpt, device=device, opts=opts, **torch_options)
    used = [name for name in ("jit", "pm", "compile") if torch_options.get(name)]
    if precision not in (None, "fp32", "int8"):
        used.append(f"precision {precision}")
    if torch_options.get("optimize") is False:
        used.append("no-optimize")
    if used:  # exported models run as exported: float32, or int8 (run/Export.py --int8)
        raise EngineError(f"{', '.join(used)}: only with --engine torch")
    if exported is None:
        if ckpt is None:
            if config is None:
                raise EngineError("give the exported model (--exported) or the config")
            if not isinstance(config, Mapping):
                config = load_config(config, list(opts))
            folder = (config.get("Test") or {}).get("Checkpoint", {}).get("checkpoint_dir")
            if not folder:
                raise EngineError("config has no Test.Checkpoint.checkpoint_dir: give --exported")
            ckpt = Path(folder) / "latest.pth"
        exported = default_out_dir(ckpt)
        if not Path(exported).exists():
            raise EngineError(
                f"no export of {ckpt} at {exported}: make one with .venv/bin/python "
                f"run/Export.py --config <config> --ckpt {ckpt} --format "
                f"{'onnx' if engine == 'onnxruntime' else 'openvino'}"
            )
    return ExportedPredictor.open(exported, engine, device, precision or "fp32")
