"""utils/inference/predictor.py with the tiny Res2Net model and its real weights
(tests/fixtures/golden).

Expected numbers come from the spec's chain (architecture §16.3): the config's test transforms,
the model's own ``pred`` (σ + min–max, §10.3), bilinT to the original size, floor(·255).
"""

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image
from skimage import data

from bench.memory import peak_rss_mb, reset_peak_rss
from data.transforms import build_transforms
from lib import CheckpointError
from lib.modules.conv import ConvBlock
from tests.tiny_model import tiny_snapshot
from utils.inference.predictor import Predictor, to_uint8
from utils.runtime import DeviceError, select_device

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[2]

NORMALIZE = {
    "tonumpy": None,
    "normalize": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "totensor": None,
}


def tiny_config(transforms: dict, ckpt_dir, pm_stride: int = 192) -> dict:
    """tests/configs/tiny_res2net.yaml's Model (base 384, threshold 512) with a test pipeline."""
    model = yaml.safe_load((ROOT / "tests/configs/tiny_res2net.yaml").read_text())["Model"]
    model["PM"] = {"patch_size": 384, "stride": pm_stride}
    return {
        "Model": model,
        "Test": {
            "Dataset": {"transforms": {**transforms, **NORMALIZE}},
            "Checkpoint": {"checkpoint_dir": str(ckpt_dir)},
        },
    }


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("snapshot")
    tiny_snapshot(folder)
    return folder


@pytest.fixture(scope="module")
def config(ckpt_dir):
    return tiny_config({"dynamic_resize": {"L": 1280}}, ckpt_dir)


@pytest.fixture(scope="module")
def predictor(config):
    return Predictor.from_config(config, device="cpu")


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def photos():
    """Real photos (skimage): two of the same size (so they batch) and one square."""
    return [
        shrink(data.coffee(), 300, 200),
        shrink(data.chelsea(), 300, 200),
        shrink(data.astronaut(), 256, 256),
    ]


def test_predict_follows_the_spec_chain(predictor, config, photos):
    image = photos[0]
    saliency = predictor.predict(image)
    assert saliency.shape == (200, 300) and saliency.dtype == np.float32
    assert 0 <= saliency.min() < 0.05 and 0.95 < saliency.max() <= 1
    # By hand (§16.3): transforms -> model pred -> bilinT to the original size.
    sample = build_transforms(config["Test"]["Dataset"]["transforms"])(
        {"image": Image.fromarray(image), "name": "x", "shape": (200, 300)}
    )
    assert tuple(sample["image"].shape) == (3, 192, 288)  # dynamic_resize snaps to 32
    with torch.inference_mode():
        out = predictor.model({k: sample[k][None] for k in ("image", "image_resized")})
        pred = F.interpolate(out["pred"], size=(200, 300), mode="bilinear", align_corners=True)
    np.testing.assert_array_equal(saliency, pred[0, 0].numpy())
    np.testing.assert_array_equal(to_uint8(saliency), (pred[0, 0].numpy() * 255).astype(np.uint8))


def test_inputs_pil_array_and_gray(predictor, photos):
    image = photos[2]
    from_array = predictor.predict(image)
    np.testing.assert_array_equal(predictor.predict(Image.fromarray(image)), from_array)
    gray = predictor.predict(image[..., 0])
    assert gray.shape == image.shape[:2]
    with pytest.raises(ValueError, match="uint8"):
        predictor.predict(image.astype(np.float32))


def test_batch_equals_one_by_one(predictor, photos, monkeypatch):
    sizes = []
    logits = predictor._logits

    def spy(image, image_resized):
        sizes.append(image.shape[0])
        return logits(image, image_resized)

    monkeypatch.setattr(predictor, "_logits", spy)
    batched = predictor.predict_batch(photos)
    assert sorted(sizes) == [1, 2]  # the two 300x200 photos shared a forward pass
    single = [predictor.predict(image) for image in photos]
    for a, b in zip(batched, single, strict=True):
        assert a.shape == b.shape
        assert np.abs(a - b).max() < 1e-4
        assert np.abs(to_uint8(a).astype(int) - to_uint8(b)).max() <= 1

    # Why the predictor normalises per image: the model's pred is min-max over the batch.
    prepared = [predictor.prepare(image) for image in photos[:2]]
    with torch.inference_mode():
        out = predictor.model(
            {
                "image": torch.stack([p.image for p in prepared]),
                "image_resized": torch.stack([p.image_resized for p in prepared]),
            }
        )
    own = F.interpolate(out["pred"][1:], size=(200, 300), mode="bilinear", align_corners=True)
    assert np.abs(own[0, 0].numpy() - single[1]).max() > 1e-3


@pytest.mark.slow
@pytest.mark.filterwarnings("error::FutureWarning", "error::DeprecationWarning")
@pytest.mark.needs_cxx
def test_jit_equals_eager_and_is_cached(config, ckpt_dir, predictor, photos, monkeypatch):
    """--jit: AOTInductor-compiled, the same maps as eager, cached once per size, reused
    without compiling, and compiled again when the cached package is damaged. Warnings are
    errors here: the old TorchScript path raised FutureWarnings on every run."""
    eager = predictor.predict(photos[0])
    compiled = Predictor.from_config(config, device="cpu", jit=True)
    first = compiled.predict(photos[0])
    np.testing.assert_allclose(first, eager, atol=1e-4)
    cached = sorted((ckpt_dir / "jit").iterdir())
    assert len(cached) == 1
    assert re.fullmatch(r"latest_[0-9a-f]{8}_cpu_fp32_1x192x288_384x384\.pt2", cached[0].name)
    compile_package = torch._inductor.aoti_compile_and_package
    compiles = []

    def counting(*args, **kwargs):
        compiles.append(1)
        return compile_package(*args, **kwargs)

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", counting)
    again = Predictor.from_config(config, device="cpu", jit=True).predict(photos[0])
    np.testing.assert_array_equal(again, first)
    assert compiles == []  # loaded from the cache

    cached[0].write_bytes(cached[0].read_bytes()[:5000])  # damaged: compiled again, replaced
    rebuilt = Predictor.from_config(config, device="cpu", jit=True).predict(photos[0])
    np.testing.assert_allclose(rebuilt, first, atol=1e-6)
    assert compiles == [1] and cached[0].stat().st_size > 5000


@pytest.mark.slow
def test_pm_and_pyramid_blending_on_a_large_image(ckpt_dir, photos, capsys):
    """2000x3000 photo. dynamic_resize L=640 (not the published 1280) keeps the tiny model's HR
    pass at 640x960 (~2 s here instead of ~9 s at 1280x1920, where the peak is ~2 GB more):
    both sides stay above the threshold 512, so pyramid blending runs."""
    big = cv2.resize(data.coffee(), (3000, 2000), interpolation=cv2.INTER_LINEAR)
    config = tiny_config({"dynamic_resize": {"L": 640}}, ckpt_dir)
    blend = Predictor.from_config(config, device="cpu")
    patches = Predictor.from_config(config, device="cpu", pm=True)
    prepared = blend.prepare(big)
    assert tuple(prepared.image.shape) == (3, 640, 960)
    assert min(prepared.image.shape[1:]) > blend.model.threshold  # the blending branch
    for name, predictor in (("pyramid blending", blend), ("PM", patches)):
        reset_peak_rss()
        base = peak_rss_mb()
        saliency = predictor.predict(big)
        extra = peak_rss_mb() - base
        with capsys.disabled():
            print(f"\n[2000x3000, {name}] peak RSS {base + extra:.0f} MiB (+{extra:.0f} MiB)")
        assert saliency.shape == (2000, 3000) and saliency.dtype == np.float32
        assert 0 <= saliency.min() and saliency.max() <= 1
        # Measured ~+0.6 GiB for both; a per-pixel buffer per patch at full size or an
        # un-tiled 2000x3000 pass would need several GiB.
        assert extra < 1500


def test_missing_checkpoint_names_path_and_install_item(tmp_path):
    published = ROOT / "snapshots" / "InSPyReNet_SwinB"
    if (published / "latest.pth").exists():
        pytest.skip("the published SwinB checkpoint is installed here")
    config = tiny_config({"static_resize": {"size": [384, 384]}}, published)
    with pytest.raises(CheckpointError) as error:
        Predictor.from_config(config)
    message = str(error.value)
    assert str(published / "latest.pth") in message
    assert "bash install.sh --only InSPyReNet_SwinB" in message
    with pytest.raises(CheckpointError, match="checkpoint not found; train it"):
        Predictor.from_config(config, ckpt=tmp_path / "mine.pth")


def test_config_file_and_opts(tmp_path, config):
    """A YAML path goes through utils.config (defaults, --opts), like the scripts use it."""
    on_disk = {**config, "Test": {**config["Test"]}}
    on_disk["Test"]["Dataset"] = {**config["Test"]["Dataset"], "root": "x", "sets": ["x"]}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(on_disk, sort_keys=False))
    elsewhere = tmp_path / "elsewhere"
    opts = [f"Test.Checkpoint.checkpoint_dir={elsewhere}"]
    with pytest.raises(CheckpointError, match=re.escape(str(elsewhere / "latest.pth"))):
        Predictor.from_config(path, opts=opts)
    loaded = Predictor.from_config(path, device="cpu")
    assert (loaded.precision, loaded.pm, loaded.jit) == ("fp32", None, False)


def test_device_and_precision_errors(config):
    assert select_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="unknown device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            select_device("cuda:0")
    with pytest.raises(DeviceError, match="precision 'fp8'"):
        Predictor.from_config(config, device="cpu", precision="fp8")


def test_optimized_model_gives_the_plain_maps(config, predictor, photos):
    """The default inference rewrite (BatchNorm folding, channels-last) against the plain model:
    float32 rounding only, so 0-255 maps differ by at most 1 on a handful of pixels."""
    plain = Predictor.from_config(config, device="cpu", optimize=False)
    assert predictor.optimized and not plain.optimized
    assert all(m.bn is None for m in predictor.model.modules() if isinstance(m, ConvBlock))
    for image in photos:
        fast, slow = (to_uint8(p.predict(image)).astype(int) for p in (predictor, plain))
        assert np.abs(fast - slow).max() <= 1
        assert np.abs(fast - slow).mean() <= 0.01


def test_bf16_precision_runs_under_autocast(config, predictor, photos):
    """bf16 changes the numbers (autocast is in effect) but not the picture: the maps stay
    strongly correlated with float32 ones. (The bound of the performance issue, mean |diff|
    <= 1/255, is checked by bench/infer_speed.py on SwinB; this tiny random-weight model is far
    more sensitive to rounding than a trained one.)"""
    bf16 = Predictor.from_config(config, device="cpu", precision="bf16")
    for image in photos:
        low, full = bf16.predict(image), predictor.predict(image)
        assert low.shape == full.shape and low.dtype == np.float32
        assert not np.array_equal(low, full)
        assert np.corrcoef(low.ravel(), full.ravel())[0, 1] > 0.9


def test_bf16_on_a_cpu_without_bf16_units_says_so(config, monkeypatch, caplog):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    Predictor.from_config(config, device="cpu", precision="bf16")
    assert "neither AVX512-BF16 nor AMX" in caplog.text
