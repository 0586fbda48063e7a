"""int8 exports (run/Export.py --int8, utils.export.quantize) end to end with the tiny Res2Net
model and its real weights (tests/fixtures/golden): NNCF quantises the 384² OpenVINO file with
calibration images from a folder, the int8 file is written beside the float32 one with its
precision, calibration and check in the metadata, ``--precision int8`` picks it, and a broken
int8 graph is refused with one line and leaves no file.

Not collected by itself: tests/utils/test_quantize.py runs this module in its own pytest
process, so that OpenVINO never loads into the suite's process (tests/utils/test_export.py
says why)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from tests.subprocesses import run_without_torch
from tests.tiny_model import TRANSFORMS, tiny_snapshot
from utils.export.exporter import export_model
from utils.export.plan import ExportRefusedError
from utils.export.quantize import MAX_MEAN_MAP_DIFF, calibration_files, quantize_export
from utils.inference.engines import EngineError, open_graph
from utils.inference.exported import INT8_METADATA_KEYS, ExportedPredictor, export_files
from utils.inference.predictor import to_uint8

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

ROOT = Path(__file__).resolve().parents[2]
# The bound these tests quantise under: the fixture's weights are random, and int8 moves a
# random network's maps by 25-39/255 on average, beyond the default (MAX_MEAN_MAP_DIFF).
RANDOM_BOUND = 64


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """A folder of four real photos (scikit-image's) for calibration."""
    folder = tmp_path_factory.mktemp("calibration")
    for name in ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.jpg", quality=90)
    return folder


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    """The tiny Res2Net's 384² network exported to float32 OpenVINO IR."""
    folder = tmp_path_factory.mktemp("int8")
    ckpt, model = tiny_snapshot(folder)
    config = {"Model": model, "Test": {"Dataset": {"transforms": TRANSFORMS}}}
    export_model(config, ckpt, folder / "export", "openvino")
    return folder / "export"


@pytest.fixture(scope="module")
def int8(fp32, calibration):
    """The int8 files quantize_export writes beside the float32 ones."""
    files = calibration_files(calibration)
    return quantize_export([fp32 / "single_384x384.xml"], files, max_mean_map_diff=RANDOM_BOUND)


def test_int8_files_beside_fp32_with_their_metadata(fp32, int8):
    assert [p.name for p in int8] == ["single_384x384.int8.bin", "single_384x384.int8.xml"]
    assert sorted(p.name for p in fp32.iterdir()) == [
        "single_384x384.bin",
        "single_384x384.int8.bin",
        "single_384x384.int8.xml",
        "single_384x384.xml",
    ]
    full = open_graph(fp32 / "single_384x384.xml", "openvino").metadata
    quantised = open_graph(fp32 / "single_384x384.int8.xml", "openvino").metadata
    assert "precision" not in full and quantised["precision"] == "int8"
    assert set(full) | set(INT8_METADATA_KEYS) == set(quantised)
    for key in ("checkpoint_sha256", "model", "transforms", "inputs", "kind"):
        assert quantised[key] == full[key], key
    calibration = json.loads(quantised["calibration"])
    assert calibration["images"] == 4 and calibration["tool"].startswith("nncf ")
    check = json.loads(quantised["check"])
    assert check["against"] == "fp32" and check["photos"] == 2
    assert 0 < check["mean_map_diff_255"] <= RANDOM_BOUND
    assert check["max_mean_map_diff_255"] == RANDOM_BOUND
    assert check["mean_map_diff_255"] > MAX_MEAN_MAP_DIFF  # the default bound would refuse it
    assert check["map_fraction_over_10_255"] <= check["map_fraction_over_1_255"] <= 1
    # int8 really: the weights file is a fraction of the float32 one
    size = (fp32 / "single_384x384.int8.bin").stat().st_size
    assert size < 0.5 * (fp32 / "single_384x384.bin").stat().st_size


def test_precision_picks_the_files(fp32, int8):
    assert export_files(fp32, "openvino") == [fp32 / "single_384x384.xml"]
    assert export_files(fp32, "openvino", "int8") == [fp32 / "single_384x384.int8.xml"]
    with pytest.raises(EngineError, match="int8 exports run with --engine openvino"):
        export_files(fp32, "onnxruntime", "int8")
    photo = data.coffee()
    full = ExportedPredictor.open(fp32, "openvino")
    quantised = ExportedPredictor.open(fp32, "openvino", precision="int8")
    assert (full.precision, quantised.precision) == ("fp32", "int8")
    reference, saliency = full.predict(photo), quantised.predict(photo)
    assert saliency.shape == photo.shape[:2] and saliency.dtype == np.float32
    difference = np.abs(to_uint8(saliency).astype(int) - to_uint8(reference).astype(int))
    assert 0 < difference.mean() <= RANDOM_BOUND
    with pytest.raises(EngineError, match="in other precisions"):
        ExportedPredictor.open([fp32 / "single_384x384.xml", fp32 / "single_384x384.int8.xml"])


def test_broken_int8_graph_is_refused(fp32, calibration, tmp_path, monkeypatch):
    """An int8 graph whose map is inverted is refused with one line; no file is left."""
    import nncf
    import openvino as ov
    from openvino import opset13

    for name in ("single_384x384.xml", "single_384x384.bin"):
        shutil.copy(fp32 / name, tmp_path / name)
    quantize = nncf.quantize

    def inverted(model, dataset, **options):
        quantised = quantize(model, dataset, **options)
        logits = quantised.get_results()[0].input_value(0)
        return ov.Model([opset13.result(opset13.negative(logits))], quantised.get_parameters())

    monkeypatch.setattr(nncf, "quantize", inverted)
    files = calibration_files(calibration, 2)
    with pytest.raises(ExportRefusedError, match=r"^refused: single_384x384 int8 against float32"):
        quantize_export([tmp_path / "single_384x384.xml"], files, max_mean_map_diff=RANDOM_BOUND)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "single_384x384.bin",
        "single_384x384.xml",
    ]


def test_cli_runs_int8_without_torch(fp32, int8, tmp_path):
    """run/Inference.py --precision int8 (default engine: openvino) writes maps, no torch."""
    source, dest = tmp_path / "photos", tmp_path / "out"
    source.mkdir()
    Image.fromarray(data.coffee()).save(source / "coffee.png")
    code = (
        "from run.Inference import main\n"
        f"code = main(['--exported', {str(fp32)!r}, '--precision', 'int8', '--source', "
        f"{str(source)!r}, '--dest', {str(dest)!r}, '--no-progress'])\n"
    )
    run_without_torch(code)
    saliency = np.asarray(Image.open(dest / "coffee.png"))
    assert saliency.shape == data.coffee().shape[:2]
