"""int8 exports: the calibration folder's checks, the map comparison and the command line's
refusals here; NNCF and OpenVINO end to end (tests/utils/int8_cases.py) in a pytest process of
its own, as tests/utils/test_export.py runs export_cases.py."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from run import Export
from tests.subprocesses import run_cases_in_own_process
from utils.export.plan import ExportError
from utils.export.quantize import MAX_MEAN_MAP_DIFF, calibration_files, compare_maps
from utils.inference.engines import EngineError
from utils.inference.exported import export_files
from utils.inference.loading import open_predictor

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).with_name("int8_cases.py")


def _photo(path: Path, value: int = 128) -> Path:
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
    return path


def test_calibration_files_evenly_spaced(tmp_path):
    for index in range(10):
        _photo(tmp_path / f"img{index}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    names = [p.name for p in calibration_files(tmp_path, 4)]
    assert names == ["img0.png", "img3.png", "img6.png", "img9.png"]
    assert len(calibration_files(tmp_path)) == 10


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing", r"^--int8 .*missing: no such folder of calibration images$"),
        (lambda d: d, r"^--int8 .*: no calibration images there \(\.jpg"),
        (
            lambda d: (d / "bad.png").write_bytes(b"not a png") and d,
            r"^--int8: calibration image .*bad\.png: cannot decode image",
        ),
    ],
    ids=["missing", "empty", "unreadable"],
)
def test_calibration_folder_errors_name_it(tmp_path, make, message):
    folder = make(tmp_path)
    with pytest.raises(ExportError, match=message) as error:
        calibration_files(folder)
    assert "\n" not in str(error.value)


def test_compare_maps():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (2, 1, 16, 16)).astype(np.float32)
    same = compare_maps(logits, logits)
    assert same == {
        "mean_map_diff_255": 0.0,
        "max_map_diff_255": 0.0,
        "map_fraction_over_1_255": 0.0,
        "map_fraction_over_10_255": 0.0,
    }
    inverted = compare_maps(logits, -logits)  # what a broken graph looks like
    assert inverted["mean_map_diff_255"] > MAX_MEAN_MAP_DIFF
    assert inverted["map_fraction_over_10_255"] > 0.5


def test_precision_picks_the_folder_files(tmp_path):
    for name in (
        "single_384x384",
        "blend_1024x1024",
        "single_384x384.int8",
        "blend_1024x1024.int8",
    ):
        (tmp_path / f"{name}.xml").touch()
    (tmp_path / "single_384x384.onnx").touch()
    fp32 = [tmp_path / "blend_1024x1024.xml", tmp_path / "single_384x384.xml"]
    assert export_files(tmp_path, "openvino") == fp32
    int8 = [tmp_path / "blend_1024x1024.int8.xml", tmp_path / "single_384x384.int8.xml"]
    assert export_files(tmp_path, "openvino", "int8") == int8
    assert export_files(tmp_path, "onnxruntime") == [tmp_path / "single_384x384.onnx"]
    with pytest.raises(EngineError, match="int8 exports run with --engine openvino"):
        export_files(tmp_path, "onnxruntime", "int8")
    with pytest.raises(EngineError, match="int8 exports run with --engine openvino"):
        open_predictor(None, engine="onnxruntime", exported=tmp_path, precision="int8")
    with pytest.raises(EngineError, match="precision bf16: only with --engine torch"):
        open_predictor(None, engine="openvino", exported=tmp_path, precision="bf16")
    with pytest.raises(EngineError, match="--precision int8: only with an exported model"):
        open_predictor("configs/InSPyReNet_Tiny.yaml", engine="torch", precision="int8")


def test_folder_without_int8_files_or_with_only_them(tmp_path):
    (tmp_path / "single_384x384.xml").touch()
    with pytest.raises(EngineError, match=r"no int8 files there .*--int8"):
        export_files(tmp_path, "openvino", "int8")
    (tmp_path / "single_384x384.xml").rename(tmp_path / "single_384x384.int8.xml")
    with pytest.raises(EngineError, match="holds only int8 files: add --precision int8"):
        export_files(tmp_path, "openvino")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--int8", "calib"], "--int8 quantises OpenVINO files: add --format openvino"),
        (["--format", "openvino", "--int8", "c", "--int8-count", "0"], "at least 1"),
        (["--format", "openvino", "--int8", "c", "--int8-tolerance", "0"], "in (0, 255]"),
    ],
)
def test_cli_refuses_int8_without_openvino(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        Export.parse_args(["--config", "x.yaml", *argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_cli_bad_calibration_folder_is_one_line_before_exporting(tmp_path, caplog):
    argv = ["--config", str(ROOT / "configs/InSPyReNet_Tiny.yaml"), "--format", "openvino"]
    argv += ["--out", str(tmp_path / "out"), "--int8", str(tmp_path / "missing")]
    assert Export.main(argv) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"--int8 {tmp_path / 'missing'}: no such folder of calibration images"]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_int8_cases_in_their_own_process():
    """Every case of int8_cases.py passes (its output is shown when one does not)."""
    run_cases_in_own_process(CASES)
