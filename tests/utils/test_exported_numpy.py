"""The torch-free pieces of the exported engines: numpy post-processing against the torch
engine's, the export plan, file discovery and the missing-package message (no export here)."""

import argparse
import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lib.model import normalize_prediction
from run.Export import parse_size
from utils.export.plan import ExportError, GraphSpec, plan_graphs
from utils.inference import engines
from utils.inference.engines import EngineError, import_engine
from utils.inference.exported import export_files, normalize_logits, resize_align_corners
from utils.inference.loading import open_predictor, resolve_engine

DYNAMIC = {"dynamic_resize": {"L": 1280}, "tonumpy": None, "normalize": {}, "totensor": None}
MODEL = {"threshold": 512}


@pytest.mark.parametrize("shape", [(96, 96), (200, 300), (1088, 1920), (7, 5), (1, 9)])
def test_resize_align_corners_matches_torch(shape):
    rng = np.random.default_rng(0)
    source = rng.random((48, 64), dtype=np.float32)
    ours = resize_align_corners(source, shape)
    theirs = F.interpolate(
        torch.from_numpy(source)[None, None], size=shape, mode="bilinear", align_corners=True
    )[0, 0].numpy()
    assert ours.shape == shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, atol=2e-6)


def test_normalize_logits_matches_the_model():
    logits = np.random.default_rng(1).normal(0, 20, (1, 1, 40, 30)).astype(np.float32)
    logits[0, 0, 0, 0] = -200  # σ underflows to 0 in both
    theirs = normalize_prediction(torch.from_numpy(logits)).numpy()
    np.testing.assert_allclose(normalize_logits(logits), theirs, atol=1e-6)


def test_plan_low_resolution_and_blending_sizes():
    specs = plan_graphs(MODEL, DYNAMIC, [(544, 576), (384, 512), (1088, 1920)])
    assert [s.name for s in specs] == ["single_384x384", "blend_544x576", "blend_1088x1920"]
    assert specs[1] == GraphSpec("blend", (544, 576), (384, 384))
    assert specs[1].inputs == {"image": [544, 576], "image_resized": [384, 384]}


def test_plan_refuses_what_the_test_path_never_runs():
    with pytest.raises(ExportError, match="never gives that size"):
        plan_graphs(MODEL, DYNAMIC, [(1500, 2000)])  # short side above L=1280
    with pytest.raises(ExportError, match="never gives that size"):
        plan_graphs(MODEL, DYNAMIC, [(550, 600)])  # not multiples of 32
    with pytest.raises(ExportError, match="give the sizes"):
        plan_graphs({"threshold": None}, DYNAMIC)
    with pytest.raises(ExportError, match="Patch Merging"):
        plan_graphs(MODEL, {"dynamic_resize": {"base_size": 384, "stride": 192}})
    static = {"static_resize": {"size": [96, 96]}, "tonumpy": None}
    assert plan_graphs({"threshold": None}, static) == [GraphSpec("single", (96, 96))]


def test_parse_size():
    assert parse_size("1088x1920") == (1088, 1920)
    for bad in ("1088", "0x5", "axb", "1x2x3"):
        with pytest.raises(argparse.ArgumentTypeError, match="HEIGHTxWIDTH"):
            parse_size(bad)


def test_missing_engine_package_is_one_line(monkeypatch):
    real = importlib.import_module

    def without_onnxruntime(name, *args):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real(name, *args)

    monkeypatch.setattr(engines.importlib, "import_module", without_onnxruntime)
    with pytest.raises(EngineError) as error:
        import_engine("onnxruntime")
    assert str(error.value) == (
        "--engine onnxruntime needs the 'onnxruntime' package: "
        ".venv/bin/pip install -r requirements-deploy.txt"
    )


def test_export_files_and_engine_choice(tmp_path):
    (tmp_path / "single_384x384.xml").write_text("")
    with pytest.raises(EngineError, match="only OpenVINO files"):
        export_files(tmp_path, "onnxruntime")
    assert export_files(tmp_path, "openvino") == [tmp_path / "single_384x384.xml"]
    with pytest.raises(EngineError, match="no exported model"):
        export_files(tmp_path / "missing", "openvino")
    assert resolve_engine(None, None) == "torch"
    assert resolve_engine(None, tmp_path) == "openvino"
    with pytest.raises(EngineError, match="only with --engine torch"):
        open_predictor(None, engine="onnxruntime", exported=tmp_path, jit=True)
    with pytest.raises(EngineError, match="run/Export.py"):
        open_predictor(None, engine="onnxruntime", ckpt=tmp_path / "latest.pth")
