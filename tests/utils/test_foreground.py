"""utils/inference/foreground.py and its use by compose: foreground colour estimation.

Ground truth: skimage's photos composited over other photos under soft, known mattes
(data/synthetic_mattes.py), so the true foreground colour is known at every pixel. The error is
the one bench/cutout_quality.py reports: mean |recomposited − true composite| over green at
semi-transparent pixels, in grey levels. ``none`` is checked byte for byte against the formulas
of the previous compose (img·m + background·(1 − m) with the raw image, alpha = floor(m·255)).
"""

import importlib.util

import cv2
import numpy as np
import pytest
from skimage import data

from bench.cutout_quality import edge_error
from data.synthetic_mattes import OPAQUE, matting_sample
from utils.config import SCHEMA
from utils.inference.compose import (
    BLUR_SIGMA,
    GREEN,
    OutputType,
    _overlay,
    compose,
    parse_output_type,
)
from utils.inference.foreground import (
    FOREGROUND_METHODS,
    ForegroundError,
    blur_fusion,
    check_foreground_method,
    estimate_foreground,
    is_soft,
)

COMPOSITES = ["rgba", "green", "white", "[10,200,30]", "blur", "image"]


@pytest.fixture(scope="module")
def cat():
    """chelsea (300x451) over coffee with a soft edge (σ 2 px) and 80 strands."""
    return matting_sample(data.chelsea(), data.coffee(), seed=0, edge_sigma=2.0)


@pytest.fixture(scope="module")
def small_cat():
    """The same at a quarter of the area (for pymatting, slow on its first call)."""
    return matting_sample(
        cv2.resize(data.chelsea(), (226, 150), interpolation=cv2.INTER_AREA),
        data.coffee(),
        seed=1,
        edge_sigma=1.5,
        strands=40,
    )


@pytest.fixture(scope="module")
def background():
    return cv2.resize(data.astronaut(), (64, 48), interpolation=cv2.INTER_AREA)


def _output_type(name: str, background: np.ndarray, foreground: str) -> OutputType:
    if name == "image":
        return OutputType("image", "bg", background=background, foreground=foreground)
    return parse_output_type(name, foreground)


def _previous_compose(image, m, name, background, threshold, reverse):
    """What compose returned before foreground estimation (float32 blend, truncation)."""
    m = np.asarray(m, np.float32)
    if threshold is not None:
        m = (m > threshold).astype(np.float32)
    if reverse:
        m = np.float32(1) - m
    alpha = np.floor(np.clip(m * np.float32(255), 0, 255)).astype(np.uint8)
    if name == "map":
        return alpha
    if name == "rgba":
        return np.dstack([image, alpha])
    if name == "overlay":
        return _overlay(image, m)
    backgrounds = {
        "green": np.float32(GREEN),
        "white": np.float32(255),
        "[10,200,30]": np.float32([10, 200, 30]),
        "blur": cv2.GaussianBlur(image, (0, 0), BLUR_SIGMA).astype(np.float32),
        "image": cv2.resize(background, image.shape[1::-1]).astype(np.float32),
    }
    weight = m[..., None]
    out = image.astype(np.float32) * weight + backgrounds[name] * (1 - weight)
    return np.clip(out, 0, 255).astype(np.uint8)


# -- quality --------------------------------------------------------------------------------
def test_fast_cuts_the_edge_error_to_a_third(cat):
    none, fast = edge_error(cat, "none"), edge_error(cat, "fast")
    assert none > 5  # the old background's bleed is plainly visible
    assert fast <= none / 3, (none, fast)


@pytest.mark.slow  # pymatting compiles with numba on its first call
def test_ml_at_least_as_good_as_fast(small_cat):
    none, fast, ml = (edge_error(small_cat, m) for m in ("none", "fast", "ml"))
    assert fast <= none / 3, (none, fast)
    assert ml <= fast, (fast, ml)


def test_opaque_pixels_and_hard_masks_keep_the_image(cat):
    foreground = estimate_foreground(cat.image, cat.alpha, "fast")
    opaque = cat.alpha >= 1 - 0.5 / 255
    np.testing.assert_array_equal(foreground[opaque], cat.image[opaque])
    hard = (cat.alpha > 0.5).astype(np.float32)
    assert estimate_foreground(cat.image, hard, "fast") is cat.image
    for name in ("green", "rgba"):  # --threshold: the same bytes as without estimation
        np.testing.assert_array_equal(
            compose(cat.image, cat.alpha, name, threshold=0.5),
            compose(cat.image, cat.alpha, name, threshold=0.5, foreground="none"),
        )


def _dense_blur_fusion(image, alpha, sizes):
    """The paper's formulas over every pixel, in float64 (no shortcut, no fixed point); F and B
    stay the image where alpha is hard (within half a grey level of 0 or 1), as documented."""
    img = image.astype(np.float64)
    a = alpha.astype(np.float64)[..., None]
    soft = is_soft(alpha)[..., None]
    fg = bg = img
    for size in sizes:
        box = (size, size)
        blurred = cv2.blur(alpha.astype(np.float64), box)[..., None]
        fg_mean = cv2.blur(fg * a, box) / (blurred + 1e-5)
        bg_mean = cv2.blur(bg * (1 - a), box) / (1 - blurred + 1e-5)
        residual = img - a * fg_mean - (1 - a) * bg_mean
        fg = np.where(soft, np.clip(fg_mean + a * residual, 0, 255), img)
        bg = np.where(soft, np.clip(bg_mean + (1 - a) * residual, 0, 255), img)
    return fg


@pytest.mark.parametrize("sizes", [(90, 6), (90, 24, 12, 6, 3)])
def test_blur_fusion_equals_the_dense_formulas_at_soft_pixels(small_cat, sizes):
    ours = blur_fusion(small_cat.image, small_cat.alpha, sizes)
    dense = _dense_blur_fusion(small_cat.image, small_cat.alpha, sizes)
    soft = is_soft(small_cat.alpha)
    difference = np.abs(ours[soft] - dense[soft])  # fixed-point box filters
    assert difference.max() < 1 and difference.mean() < 0.02
    np.testing.assert_array_equal(ours[~soft], small_cat.image[~soft])


def test_true_foreground_is_the_photo_where_opaque(cat):
    opaque = cat.alpha >= OPAQUE
    assert opaque.mean() > 0.2
    photo = data.chelsea()
    np.testing.assert_array_equal(cat.foreground[opaque], photo[opaque])


# -- every composite uses the estimate; none is the previous output ----------------------------
@pytest.mark.parametrize("name", COMPOSITES)
def test_every_composite_uses_the_estimate(cat, background, name):
    kind = _output_type(name, background, "fast")
    out = compose(cat.image, cat.alpha, kind)
    foreground = estimate_foreground(cat.image, cat.alpha, "fast")
    if name == "blur":  # the background is the original image blurred, not the estimate
        weight = cat.alpha[..., None]
        blurred = cv2.GaussianBlur(cat.image, (0, 0), BLUR_SIGMA).astype(np.float32)
        expected = foreground.astype(np.float32) * weight + blurred * (1 - weight)
        expected = np.clip(expected, 0, 255).astype(np.uint8)
    else:
        expected = compose(foreground, cat.alpha, _output_type(name, background, "none"))
    np.testing.assert_array_equal(out, expected)
    raw = compose(cat.image, cat.alpha, _output_type(name, background, "none"))
    soft = is_soft(cat.alpha)
    assert (out != raw).any(axis=-1)[soft].mean() > 0.5  # the edges did change
    assert (out == raw)[~soft].all()  # and nothing else


@pytest.mark.parametrize("name", ["map", "overlay"])
def test_map_and_overlay_do_not_depend_on_the_method(cat, name):
    outputs = [compose(cat.image, cat.alpha, name, foreground=m) for m in ("fast", "none")]
    np.testing.assert_array_equal(*outputs)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("threshold", [None, 0.5])
@pytest.mark.parametrize("name", ["map", "overlay", *COMPOSITES])
def test_none_is_byte_identical_to_the_previous_outputs(cat, background, name, threshold, reverse):
    out = compose(cat.image, cat.alpha, _output_type(name, background, "none"), threshold, reverse)
    expected = _previous_compose(cat.image, cat.alpha, name, background, threshold, reverse)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    assert out.tobytes() == expected.tobytes()


def test_the_method_travels_with_the_output_type(cat):
    assert parse_output_type("green").foreground == "fast"  # the default
    kind = parse_output_type("white", "NONE")
    assert kind.foreground == "none"
    np.testing.assert_array_equal(
        compose(cat.image, cat.alpha, kind),
        compose(cat.image, cat.alpha, "white", foreground="none"),
    )
    # an explicit argument overrides the type's method
    np.testing.assert_array_equal(
        compose(cat.image, cat.alpha, kind, foreground="fast"),
        compose(cat.image, cat.alpha, "white"),
    )


# -- errors and configuration ------------------------------------------------------------------
def test_unknown_method_is_one_line():
    with pytest.raises(ForegroundError, match="unknown foreground method 'best': use one of"):
        check_foreground_method("best")
    with pytest.raises(ValueError, match="unknown foreground method"):
        parse_output_type("green", "best")


def test_ml_without_pymatting_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "pymatting" else real(name, *args),
    )
    with pytest.raises(
        ForegroundError,
        match=r"^--foreground ml needs pymatting: pip install -r requirements-matting.txt$",
    ):
        parse_output_type("rgba", "ml")
    assert parse_output_type("rgba", "fast").foreground == "fast"


def test_config_key_lists_the_same_methods():
    key = SCHEMA["Test"]["foreground"]
    assert key.default == "fast" and set(key.choices) == set(FOREGROUND_METHODS)
