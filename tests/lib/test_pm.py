"""Patch-merging inference (spec §18): exact on one patch, seamless on a large smooth input."""

import numpy as np
import pytest
import torch

from bench.memory import peak_rss_mb, reset_peak_rss
from lib import PatchMergeInference, build_model
from lib.pyramid import ImagePyramid
from tests.lib.conftest import tiny_model_cfg
from utils.io.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def model(fixtures_dir):
    m = build_model(tiny_model_cfg("tiny_res2net"))
    load_checkpoint(m, fixtures_dir / "golden" / "tiny_res2net_weights.pth")
    return m.eval()


def smooth_image(height, width):
    """A smooth photo-like input: a bright disc on a gentle gradient, ImageNet-normalised."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    disc = np.exp(
        -(((x - width * 0.55) / (width * 0.22)) ** 2 + ((y - height * 0.5) / (height * 0.3)) ** 2)
    )
    rgb = np.stack([0.2 + 0.7 * disc, 0.3 + 0.2 * x / width + 0.4 * disc, 0.5 - 0.3 * disc])
    mean = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
    return torch.from_numpy((rgb - mean) / std)[None]


def test_one_patch_input_equals_plain_inference(model):
    image = smooth_image(384, 384)
    with torch.no_grad():
        merged = PatchMergeInference(model, 384, 192)({"image": image})
        saliency, laplacian = model.forward_inspyre(image)
    for a, b in zip(merged["saliency"] + merged["laplacian"], saliency + laplacian, strict=True):
        assert torch.equal(a, b)


def test_grid_covers_inputs_of_any_size():
    pm = PatchMergeInference(SmoothPyramidNet(), 384, 192)
    assert pm.grid(384, 768) == [(0, 0), (0, 192), (0, 384)]
    with torch.no_grad():
        out = pm({"image": smooth_image(400, 500)})
    assert out["pred"].shape[-2:] == (400, 500)
    assert torch.isfinite(out["saliency"][-1]).all()


class SmoothPyramidNet(torch.nn.Module):
    """A stand-in network with InSPyReNet's pyramid interface whose output is a smooth,
    translation-equivariant function of the image (up to border padding), as a well-trained
    model's is. The random-weight fixture models are not: their maps change wildly from patch
    to patch, so they cannot show whether the *merging* adds seams."""

    def __init__(self):
        super().__init__()
        self.image_pyramid = ImagePyramid()

    def forward_inspyre(self, x):
        logits = 4 * x[:, :1] - 2
        levels, laplacians = [logits], []
        for _ in range(3):
            reduced, laplacian = self.image_pyramid.deconstruct(levels[0])
            levels.insert(0, reduced)
            laplacians.insert(0, laplacian)
        return levels, laplacians


def seam_ratio(pred: np.ndarray, borders: list[int]) -> float:
    """Mean |horizontal gradient| on columns at patch borders over the mean elsewhere."""
    grad = np.abs(np.diff(pred, axis=1))
    cols = sorted({c for b in borders for c in (b - 2, b - 1, b) if 0 <= c < grad.shape[1]})
    inside = np.setdiff1d(np.arange(grad.shape[1]), cols)
    return grad[:, cols].mean() / grad[:, inside].mean()


def test_large_input_has_no_seams_and_bounded_memory(capsys):
    height, width, patch, stride = 1024, 1536, 384, 192
    image = smooth_image(height, width)
    net = SmoothPyramidNet()
    reset_peak_rss()
    before = peak_rss_mb()
    with torch.no_grad():
        out = PatchMergeInference(net, patch, stride, batch_size=4)({"image": image})
    peak = peak_rss_mb()
    pred = out["pred"][0, 0].numpy()
    assert pred.shape == (height, width)
    borders = list(range(stride, width, stride))  # every patch edge lies on one of these
    ratio = seam_ratio(pred, borders)
    with capsys.disabled():
        print(
            f"\n[PM 1024x1536, P=384 s=192, 28 patches] seam ratio {ratio:.3f}; "
            f"peak RSS {peak:.0f} MiB ({peak - before:+.0f} MiB during PM)"
        )
    assert ratio < 1.2
    # The measure can fail: pasting independently computed tiles leaves visible seams.
    tiled = np.zeros_like(pred)
    with torch.no_grad():
        for y in range(0, height, patch):
            for x in range(0, width, patch):
                tile = net.forward_inspyre(image[..., y : y + patch, x : x + patch])
                level = tile[0][0]
                for lap in tile[1]:
                    level = net.image_pyramid.reconstruct(level, lap * 0)
                tiled[y : y + patch, x : x + patch] = torch.sigmoid(level)[0, 0].numpy()
    assert seam_ratio(tiled, list(range(patch, width, patch))) > 1.5


def test_real_model_on_three_patches(model):
    with torch.no_grad():
        out = PatchMergeInference(model, 384, 192, batch_size=2)({"image": smooth_image(384, 768)})
    assert out["pred"].shape[-2:] == (384, 768)
    assert [tuple(t.shape[-2:]) for t in out["laplacian"]] == [(96, 192), (192, 384), (384, 768)]
