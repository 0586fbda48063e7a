"""The tiny models reproduce the authors' implementation (tests/fixtures/golden).

Tolerances are the fixtures' recommended ones (tests/fixtures/README.md, "Tolerances"): logits
atol 2e-3 + rtol 1e-4 with mean |diff| <= 1e-4; pred atol 1e-3, mean <= 1e-4; loss 1e-5;
transition masks exact.
"""

import numpy as np
import pytest
import torch

LOGITS = {"atol": 2e-3, "rtol": 1e-4, "mean": 1e-4}
PRED = {"atol": 1e-3, "rtol": 0.0, "mean": 1e-4}
LOSS = {"atol": 1e-5, "rtol": 1e-5, "mean": np.inf}


def assert_close(name, mine, ref, atol, rtol, mean):
    mine = np.asarray(mine.detach() if torch.is_tensor(mine) else mine, np.float64)
    ref = np.asarray(ref, np.float64)
    assert mine.shape == ref.shape, f"{name}: shape {mine.shape} != {ref.shape}"
    diff = np.abs(mine - ref)
    bad = diff > atol + rtol * np.abs(ref)
    assert not bad.any(), f"{name}: {bad.sum()} values off, max diff {diff.max():.2e}"
    assert diff.mean() <= mean, f"{name}: mean diff {diff.mean():.2e} > {mean}"


def load_case(fixtures_dir, name, case):
    return dict(np.load(fixtures_dir / "golden" / f"{name}_{case}.npz"))


def check_pyramids(out, fx):
    for i, level in enumerate(out["saliency"]):
        assert_close(f"saliency_{i}", level, fx[f"out_saliency_{i}"], **LOGITS)
    for i, level in enumerate(out["laplacian"]):
        assert_close(f"laplacian_{i}", level, fx[f"out_laplacian_{i}"], **LOGITS)
    assert_close("pred", out["pred"], fx["out_pred"], **PRED)


def test_low_resolution_case(fixture_model, fixtures_dir):
    name, model = fixture_model
    fx = load_case(fixtures_dir, name, "lr")
    with torch.no_grad():
        out = model.eval()({"image": torch.from_numpy(fx["in_image"])})
    check_pyramids(out, fx)


@pytest.mark.slow
def test_pyramid_blending_case(fixture_model, fixtures_dir):
    name, model = fixture_model
    fx = load_case(fixtures_dir, name, "hr")
    image = torch.from_numpy(fx["in_image"])
    resized = torch.from_numpy(fx["in_image_resized"])
    with torch.no_grad():
        out = model.eval()({"image": image, "image_resized": resized})
        check_pyramids(out, fx)
        # Intermediate values the fixture records: both branches and the blending masks.
        lr_saliency, _ = model.forward_inspyre(resized)
        hr_saliency, hr_laplacian = model.forward_inspyre(image)
        transitions = (model.transition2, model.transition1, model.transition0)
        masks = [t(level) for t, level in zip(transitions, out["saliency"][:3], strict=True)]
    assert_close("lr_branch_d0", lr_saliency[3], fx["aux_lr_branch_saliency_3"], **LOGITS)
    assert_close("hr_branch_d3", hr_saliency[0], fx["aux_hr_branch_saliency_0"], **LOGITS)
    assert_close("hr_branch_p2", hr_laplacian[0], fx["aux_hr_branch_laplacian_0"], **LOGITS)
    for level, mask in zip((2, 1, 0), masks, strict=True):
        expected = fx[f"aux_transition_{level}"]
        assert mask.shape == expected.shape
        assert (mask.numpy() != expected).sum() == 0, f"transition {level} masks differ"


def test_training_case(fixture_model, fixtures_dir):
    name, model = fixture_model
    fx = load_case(fixtures_dir, name, "train")
    sample = {"image": torch.from_numpy(fx["in_image"]), "gt": torch.from_numpy(fx["in_gt"])}
    out = model.train()(sample)
    model.eval()
    assert out["loss"].requires_grad
    assert_close("loss", out["loss"], fx["out_loss"], **LOSS)
    assert_close("pred", out["pred"], fx["out_pred"], **PRED)


@pytest.mark.parametrize("case", ["lr"])
def test_wrong_interpolation_would_fail(fixture_model, fixtures_dir, case, monkeypatch):
    """The comparison is sharp: a plausible bug (align_corners flipped in the decoder) fails."""
    import lib.modules.paa as paa

    name, model = fixture_model
    fx = load_case(fixtures_dir, name, case)
    real = paa.F.interpolate

    def flipped(x, size=None, mode="nearest", align_corners=None):
        return real(x, size=size, mode=mode, align_corners=False)

    monkeypatch.setattr(paa.F, "interpolate", flipped)
    with torch.no_grad():
        out = model.eval()({"image": torch.from_numpy(fx["in_image"])})
    with pytest.raises(AssertionError):
        check_pyramids(out, fx)
