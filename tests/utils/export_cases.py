"""run/Export.py and the exported engines end to end, with the tiny Res2Net model and its real
weights (tests/fixtures/golden): ONNX and OpenVINO files of the 384² path and of a
high-resolution (pyramid-blending) size give the torch engine's maps within 1/255 on real
photos, carry their metadata, are refused when the check fails, and run without torch.

Not collected by itself: tests/utils/test_export.py runs this module in its own pytest process,
so that ONNX Runtime and OpenVINO never load into the suite's process (where, next to the
libraries the rest of the suite loads, a full run crashed with SIGSEGV twice)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from skimage import data

from run import Export
from tests.subprocesses import run_without_torch
from tests.tiny_model import TRANSFORMS, tiny_snapshot, write_test_config
from utils.export import exporter
from utils.export.band_ties import BAND_MARGIN, bracket_ties
from utils.inference.engines import open_graph
from utils.inference.exported import ExportedPredictor, UnexportedSizeError, default_out_dir
from utils.inference.predictor import Predictor, to_uint8
from utils.io.checkpoint import checkpoint_sha256

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

ROOT = Path(__file__).resolve().parents[2]
HR = (544, 576)  # both sides above the threshold 512: pyramid blending
# The export check's logit tolerance here: 20x the worst difference measured on this model (5e-4)
TOLERANCE = 0.01


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The tiny Res2Net (base 384, threshold 512) exported once in both formats by the CLI."""
    folder = tmp_path_factory.mktemp("export")
    ckpt_dir = folder / "snapshot"
    _, model = tiny_snapshot(ckpt_dir)
    config = write_test_config(folder, model, TRANSFORMS)
    argv = [
        "--config",
        str(config),
        "--format",
        "onnx",
        "openvino",
        "--size",
        "x".join(map(str, HR)),
        "--tolerance",
        str(TOLERANCE),
    ]
    assert Export.main(argv) == 0
    return config, ckpt_dir


@pytest.fixture(scope="module")
def photos():
    """Real photos: two that take the low-resolution branch (one pair batches), one whose
    dynamic size is HR (pyramid blending)."""
    return {
        "coffee": cv2.resize(data.coffee(), (300, 200), interpolation=cv2.INTER_AREA),
        "chelsea": cv2.resize(data.chelsea(), (300, 200), interpolation=cv2.INTER_AREA),
        "astronaut": cv2.resize(data.astronaut(), (HR[1], HR[0]), interpolation=cv2.INTER_AREA),
    }


def test_export_writes_one_file_per_network(setup):
    _, ckpt_dir = setup
    out = default_out_dir(ckpt_dir / "latest.pth")
    names = sorted(p.name for p in out.iterdir())
    stems = ["single_384x384", f"blend_{HR[0]}x{HR[1]}"]
    assert names == sorted(f"{s}{ext}" for s in stems for ext in (".onnx", ".xml", ".bin"))


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_maps_match_torch_within_1_255(setup, photos, engine):
    config, ckpt_dir = setup
    torch_engine = Predictor.from_config(config, device="cpu")
    exported = ExportedPredictor.open(default_out_dir(ckpt_dir / "latest.pth"), engine)
    ours = exported.predict_batch(list(photos.values()))  # coffee and chelsea share a batch
    for name, image, saliency in zip(photos, photos.values(), ours, strict=True):
        # the torch engine's maps with every band-mask tie taken both ways (one map when the
        # photo takes the low-resolution branch: no band mask there)
        margin = BAND_MARGIN if name == "astronaut" else 0.0
        run = lambda image=image: to_uint8(torch_engine.predict(image)).astype(int)  # noqa: E731
        references = bracket_ties(torch_engine.model, run, margin)
        assert saliency.shape == image.shape[:2] and saliency.dtype == np.float32
        ours_uint8 = to_uint8(saliency).astype(int)
        outside = np.maximum(references.min(0) - ours_uint8, 0)
        outside += np.maximum(ours_uint8 - references.max(0), 0)
        assert outside.max() <= 1, f"{name}: {outside.max()}/255 from the torch engine's maps"
        # and only a tie explains a pixel off the plain torch map; those are rare
        assert (np.abs(ours_uint8 - references[0]) > 1).mean() <= 1e-3, name
    # the HR photo really ran pyramid blending
    assert exported._route(exported.prepare(photos["astronaut"])).graph.metadata["kind"] == "blend"
    # batched equals one by one
    np.testing.assert_allclose(exported.predict(photos["chelsea"]), ours[1], atol=1e-4)


def test_metadata_round_trips(setup):
    config, ckpt_dir = setup
    cfg = yaml.safe_load(config.read_text())
    out = default_out_dir(ckpt_dir / "latest.pth")
    for path, engine in [
        (out / "single_384x384.onnx", "onnxruntime"),
        (out / f"blend_{HR[0]}x{HR[1]}.xml", "openvino"),
    ]:
        meta = open_graph(path, engine).metadata
        model = json.loads(meta["model"])  # the loaded config's: with the schema's defaults
        assert {k: model[k] for k in cfg["Model"]} == cfg["Model"]
        assert json.loads(meta["transforms"]) == TRANSFORMS
        assert list(json.loads(meta["transforms"])) == list(TRANSFORMS)  # order kept
        assert json.loads(meta["normalize"]) == TRANSFORMS["normalize"]
        assert json.loads(meta["threshold"]) == 512
        assert json.loads(meta["base_size"]) == [384, 384]
        assert meta["checkpoint"] == "latest.pth"
        assert meta["checkpoint_sha256"] == checkpoint_sha256(ckpt_dir / "latest.pth")
        assert meta["project_version"] and meta["format_version"] == "1"
        check = json.loads(meta["check"])
        assert check["engine"] == engine and check["tolerance"] == TOLERANCE
        assert check["max_logit_diff"] <= TOLERANCE and check["max_map_diff_255"] <= 1
    blend = open_graph(out / f"blend_{HR[0]}x{HR[1]}.onnx", "onnxruntime").metadata
    assert blend["kind"] == "blend"
    assert json.loads(blend["inputs"]) == {"image": list(HR), "image_resized": [384, 384]}


def test_unexported_size_fails_that_input_only(setup, photos, tmp_path):
    _, ckpt_dir = setup
    exported = ExportedPredictor.open(default_out_dir(ckpt_dir / "latest.pth"), "onnxruntime")
    big = cv2.resize(photos["astronaut"], (640, 576))
    with pytest.raises(UnexportedSizeError, match=r"no pyramid-blending network for 576x640"):
        exported.predict(big)


def test_refused_export_writes_nothing(tmp_path, monkeypatch, caplog):
    """A graph that computes something else (one weight changed after the reference was
    taken) is refused with one line giving the worst difference; no file is left."""
    ckpt_dir = tmp_path / "snapshot"
    _, tiny = tiny_snapshot(ckpt_dir)
    model = yaml.safe_load((ROOT / "configs/InSPyReNet_Tiny.yaml").read_text())["Model"]
    model.update(tiny)
    model["threshold"] = None
    static = {
        "static_resize": {"size": [64, 64]},
        **{k: v for k, v in TRANSFORMS.items() if k != "dynamic_resize"},
    }
    config = write_test_config(tmp_path, model, static)
    real_export = exporter._torch_export

    def export_a_changed_model(module, spec, path):
        with torch.no_grad():
            module.model.backbone.conv1[0].weight.mul_(1.5)
        real_export(module, spec, path)

    monkeypatch.setattr(exporter, "_torch_export", export_a_changed_model)
    assert Export.main(["--config", str(config), "--format", "onnx", "openvino"]) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and errors[0].startswith("refused: single_64x64 run by")
    assert "logit difference" in errors[0] and "of map pixels differ" in errors[0]
    out = default_out_dir(ckpt_dir / "latest.pth")
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_cli_run_does_not_import_torch(setup, photos, tmp_path, engine):
    _, ckpt_dir = setup
    source = tmp_path / "photos"
    source.mkdir()
    for name, image in photos.items():
        Image.fromarray(image).save(source / f"{name}.png")
    # a fourth photo whose blending size (576x640) was not exported: one error, the rest goes on
    Image.fromarray(cv2.resize(photos["astronaut"], (640, 576))).save(source / "wide.png")
    dest = tmp_path / "out"
    code = (
        "from run.Inference import main\n"
        f"code = main(['--exported', {str(default_out_dir(ckpt_dir / 'latest.pth'))!r}, "
        f"'--engine', {engine!r}, '--source', {str(source)!r}, '--dest', {str(dest)!r}, "
        "'--type', 'rgba', '--batch-size', '2', '--no-progress'])\n"
    )
    result = run_without_torch(code)
    assert (
        "wide.png: inference failed (this export has no pyramid-blending network for 576x640"
        in result.stderr
    )
    assert sorted(p.name for p in dest.iterdir()) == ["astronaut.png", "chelsea.png", "coffee.png"]
    rgba = np.asarray(Image.open(dest / "astronaut.png"))
    assert rgba.shape == (*HR, 4)


def test_test_script_with_exported_engines(setup, small_synthetic, tmp_path):
    """run/Test.py --engine writes the torch engine's maps (within 1/255) from the export."""
    from run import Test

    config, _ = setup
    cfg = yaml.safe_load(config.read_text())
    cfg["Test"]["Dataset"].update(root=str(small_synthetic / "Test_Dataset"), sets=["Synth-TE"])
    maps = {}
    for engine in ("torch", "onnxruntime", "openvino"):
        cfg["Eval"] = {
            "gt_root": str(small_synthetic / "Test_Dataset"),
            "pred_root": str(tmp_path / engine),
            "datasets": ["Synth-TE"],
        }
        path = tmp_path / f"{engine}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        argv = ["--config", str(path), "--engine", engine, "--no-progress", "--device", "cpu"]
        assert Test.main(argv) == 0
        folder = tmp_path / engine / "Synth-TE"
        maps[engine] = {p.name: np.asarray(Image.open(p), int) for p in folder.glob("*.png")}
    assert len(maps["torch"]) == 2
    for engine in ("onnxruntime", "openvino"):
        assert maps[engine].keys() == maps["torch"].keys()
        for name, reference in maps["torch"].items():
            assert np.abs(maps[engine][name] - reference).max() <= 1, (engine, name)


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_test_script_does_not_import_torch(setup, small_synthetic, tmp_path, engine):
    """run/Test.py with an exported engine lists the pairs, runs and writes without torch."""
    config, _ = setup
    cfg = yaml.safe_load(config.read_text())
    cfg["Test"]["Dataset"].update(root=str(small_synthetic / "Test_Dataset"), sets=["Synth-TE"])
    cfg["Eval"] = {
        "gt_root": str(small_synthetic / "Test_Dataset"),
        "pred_root": str(tmp_path / "maps"),
        "datasets": ["Synth-TE"],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    code = (
        "from run.Test import main\n"
        f"code = main(['--config', {str(path)!r}, '--engine', {engine!r}, '--no-progress'])\n"
    )
    run_without_torch(code)
    assert len(list((tmp_path / "maps" / "Synth-TE").glob("*.png"))) == 2
