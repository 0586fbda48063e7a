"""bench/gpu_suite.py --dry: every section runs (or says why not) and lands in one JSON file."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_dry_run_writes_every_section(tmp_path):
    out = tmp_path / "suite.json"
    command = [sys.executable, str(ROOT / "bench" / "gpu_suite.py"), "--dry", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert list(results) == ["environment", "inference", "training", "ddp", "onnxruntime"]
    assert results["environment"]["dry"] is True and results["environment"]["device"] == "cpu"

    inference = results["inference"]
    assert inference["status"] == "ok" and inference["baseline"] == "fp32"
    assert inference["peer"]["status"] == "skipped" and "dry mode" in inference["peer"]["reason"]
    for variant in ("fp32", "bf16"):
        assert inference[variant]["images_per_s"] > 0
    assert inference["fp32"]["ratio"] == 1.0
    assert inference["fp32"]["max_map_difference_to_fp32"] == 0
    assert isinstance(inference["bf16"]["mean_map_difference_to_fp32"], float)

    training = results["training"]
    assert training["status"] == "ok" and training["batch_size"] == 4
    assert training["amp"]["precision"] == "bf16"
    for variant in ("fp32", "amp"):
        assert training[variant]["images_per_s"] > 0 and training[variant]["peak_memory_mib"] > 0

    ddp = results["ddp"]
    assert ddp["status"] == "ok" and ddp["backend"] == "gloo" and ddp["processes"] == 2

    onnx = results["onnxruntime"]
    assert onnx["status"] == "ok", onnx
    assert onnx["provider"] == "CPUExecutionProvider" and onnx["onnx_images_per_s"] > 0
