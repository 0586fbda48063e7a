"""Inference rewrites (BatchNorm folding, channels-last) keep the float32 logits.

Expected values: the plain eval() model's outputs on the golden fixture inputs (the plain model
matches the authors' outputs, test_golden_fixtures.py). Bounds: mean |optimised - plain| <= 1e-4
on the finest logits (measured 1.1e-5 to 2.0e-5) and max <= 5e-4 (measured 1.2e-4 to 3.4e-4).
The max is float32 rounding, not a change of function: measured once against the same models
in float64, the plain float32 model is itself 3.1e-4 to 3.8e-4 off, the optimised one 2.0e-4 to
4.5e-4 (too slow to repeat here: float64 convolutions have no oneDNN kernel).
"""

import copy

import numpy as np
import pytest
import torch

from lib.inference_opt import fold_batchnorm, optimize_for_inference
from lib.modules.conv import ConvBlock


def _fixture_inputs(fixtures_dir, name):
    lr = np.load(fixtures_dir / "golden" / f"{name}_lr.npz")
    hr = np.load(fixtures_dir / "golden" / f"{name}_hr.npz")
    return [
        {"image": torch.from_numpy(lr["in_image"])},
        {
            "image": torch.from_numpy(hr["in_image"]),
            "image_resized": torch.from_numpy(hr["in_image_resized"]),
        },
    ]


@pytest.mark.slow
@pytest.mark.parametrize("channels_last", [False, True])
def test_optimized_logits_match_plain(fixture_model, fixtures_dir, channels_last):
    name, model = fixture_model
    plain = model.eval()
    fast = optimize_for_inference(copy.deepcopy(plain), channels_last=channels_last)
    assert all(m.bn is None for m in fast.modules() if isinstance(m, ConvBlock))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    with torch.inference_mode():
        for sample in _fixture_inputs(fixtures_dir, name):
            want = plain(dict(sample))["saliency"][-1]
            fast_sample = {k: v.contiguous(memory_format=layout) for k, v in sample.items()}
            got = fast(fast_sample)["saliency"][-1]
            diff = (got - want).abs()
            assert diff.mean().item() <= 1e-4, f"{name}: mean |diff| {diff.mean().item():.2e}"
            assert diff.max().item() <= 5e-4, f"{name}: max |diff| {diff.max().item():.2e}"


def test_fold_batchnorm_needs_eval_mode():
    block = ConvBlock(3, 4, 3)
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(block.train())


def test_fold_batchnorm_uses_running_statistics():
    torch.manual_seed(0)
    block = ConvBlock(3, 4, 3, relu=True)
    block.bn.running_mean.uniform_(-1, 1)
    block.bn.running_var.uniform_(0.5, 2)
    block.bn.weight.data.uniform_(0.5, 2)
    block.bn.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 3, 9, 11)
    want = block.eval()(x)
    assert fold_batchnorm(block) == 1
    assert block.bn is None and block.conv.bias is not None
    torch.testing.assert_close(block(x), want, atol=1e-5, rtol=1e-5)
