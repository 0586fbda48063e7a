"""data.transforms: numerics of architecture §15.4, §16.1, §16.2 and §18.1.

Expected values: the spec's worked examples (§16.1, §18.1), Pillow applied directly with the
filters the spec names, numpy's in-place float32/float64 semantics (§16.2), and hand-computed
crop boxes (§15.4.2, §15.4.4) under scripted random draws.
"""

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from data.transforms import (
    TRANSFORMS,
    DynamicResize,
    PMResize,
    RandomFlip,
    RandomImageEnhance,
    RandomRotate,
    RandomScaleCrop,
    build_transform,
    build_transforms,
)

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
TRAIN_SPEC = {
    "static_resize": {"size": [64, 64]},
    "random_scale_crop": {"range": [0.75, 1.25]},
    "random_flip": {"lr": True, "ud": False},
    "random_rotate": {"range": [-10, 10]},
    "random_image_enhance": {"methods": ["contrast", "sharpness", "brightness"]},
    "tonumpy": None,
    "normalize": {"mean": MEAN, "std": STD},
    "totensor": None,
}
TEST_SPEC = {
    "dynamic_resize": {"L": 1280},
    "tonumpy": None,
    "normalize": {"mean": MEAN, "std": STD},
    "totensor": None,
}


class ScriptedRng:
    """Stands in for numpy's Generator with known draws; records what was asked."""

    def __init__(self, randoms=(), integers=()):
        self.randoms, self.integers_out = list(randoms), list(integers)
        self.integer_calls = []

    def random(self):
        return self.randoms.pop(0)

    def integers(self, low, high):
        self.integer_calls.append((low, high))
        return self.integers_out.pop(0)

    def shuffle(self, values):
        pass


def _photo(width=40, height=30, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def _mask_sample(width=48, height=36, seed=0):
    """A sample whose image is its mask in all three channels (alignment is then checkable)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    mask[rng.integers(0, height // 2) :, rng.integers(0, width // 2) : width - 5] = 255
    mask[3:9, 30:44] = 255
    return {
        "image": Image.fromarray(np.dstack([mask] * 3)),
        "gt": Image.fromarray(mask),
        "name": "x",
        "shape": (height, width),
    }


def test_static_resize_matches_pil_filters():
    image, gt = _photo(), Image.fromarray(np.asarray(_photo())[..., 0])
    out = build_transform("static_resize", {"size": [20, 32]})(
        {"image": image, "gt": gt}, np.random.default_rng(0)
    )
    assert out["image"].size == (32, 20)  # size is [height, width]
    expected_image = image.resize((32, 20), Image.Resampling.BILINEAR)
    expected_gt = gt.resize((32, 20), Image.Resampling.NEAREST)
    np.testing.assert_array_equal(np.asarray(out["image"]), np.asarray(expected_image))
    np.testing.assert_array_equal(np.asarray(out["gt"]), np.asarray(expected_gt))


@pytest.mark.parametrize(
    ("size", "expected"),
    [((400, 300), (384, 288)), ((1920, 1080), (1920, 1088)), ((3840, 2160), (2272, 1280))],
)
def test_dynamic_resize_spec_examples(size, expected):
    assert DynamicResize(L=1280).target_size(*size) == expected  # §16.1 examples (w×h)


def test_dynamic_resize_banker_rounding_and_outputs():
    # 400 / 32 = 12.5 rounds to 12 (half to even), 464 / 32 = 14.5 to 14: 384×448.
    assert DynamicResize().target_size(400, 464) == (384, 448)
    original = _photo(400, 300)
    gt = Image.fromarray(np.asarray(original)[..., 1])
    out = build_transforms(TEST_SPEC)(
        {"image": original, "gt": gt, "name": "a", "shape": (300, 400)}, np.random.default_rng(0)
    )
    assert out["image"].shape == (3, 288, 384) and out["image_resized"].shape == (3, 384, 384)
    assert out["gt"].shape == (1, 288, 384) and out["gt_resized"].shape == (1, 384, 384)
    # image_resized comes from the ORIGINAL, not from the already resized image
    direct = np.asarray(original.resize((384, 384), Image.Resampling.BILINEAR), np.float32)
    np.testing.assert_allclose(
        out["image_resized"][0].numpy(), (direct[..., 0] / 255 - MEAN[0]) / STD[0], atol=1e-5
    )


@pytest.mark.parametrize(
    ("size", "expected"),
    [((400, 300), (576, 384)), ((1920, 1080), (768, 384)), ((672, 384), (768, 384))],
)
def test_seed_pm_resize_spec_examples(size, expected):
    assert PMResize(base_size=384, stride=192).target_size(*size) == expected  # §18.1 examples
    seed_style = build_transform("dynamic_resize", {"base_size": 384, "stride": 192})
    assert isinstance(seed_style, PMResize) and seed_style.target_size(*size) == expected


def test_pm_resize_resizes_only_the_image():
    gt = Image.new("L", (400, 300))
    out = build_transform("pm_resize", {"base_size": 384, "stride": 192})(
        {"image": _photo(400, 300), "gt": gt}, None
    )
    assert out["image"].size == (576, 384) and out["gt"] is gt and "image_resized" not in out


def test_normalize_is_float64_then_float32():
    image = Image.fromarray((np.arange(256 * 3) % 256).astype(np.uint8).reshape(16, 16, 3))
    pipeline = build_transforms({"tonumpy": None, "normalize": {"mean": MEAN, "std": STD}})
    out = pipeline({"image": image, "gt": image.convert("L")}, np.random.default_rng(0))
    expected = np.asarray(image, dtype=np.float32)  # §16.2, literally with numpy in place
    expected /= 255
    expected -= np.array(MEAN)
    expected /= np.array(STD)
    assert out["image"].dtype == np.float32
    np.testing.assert_array_equal(out["image"], expected)
    float32_formula = (np.asarray(image, np.float32) / np.float32(255) - np.float32(MEAN)) / (
        np.float32(STD)
    )
    assert not np.array_equal(out["image"], float32_formula)  # the 1-ulp difference is real
    np.testing.assert_array_equal(out["gt"], np.asarray(image.convert("L"), np.float32) / 255)


def test_totensor_layout():
    out = build_transforms({"tonumpy": None, "totensor": None})(
        {"image": _photo(10, 6), "gt": Image.new("L", (10, 6), 255)}, None
    )
    assert out["image"].shape == (3, 6, 10) and out["image"].dtype == torch.float32
    assert out["gt"].shape == (1, 6, 10)
    np.testing.assert_array_equal(out["image"][1].numpy(), np.asarray(_photo(10, 6))[..., 1])


def test_random_scale_crop_up_and_down_by_hand():
    sample = {"image": _photo(40, 30), "gt": Image.fromarray(np.asarray(_photo(40, 30))[..., 0])}
    crop = RandomScaleCrop([0.75, 1.25])
    # draws 0.9 -> scale 1.2 (40×30 -> 48×36), 0.1 < 0.5 -> apply; crop box (4, 3, 44, 33)
    up = crop(dict(sample), ScriptedRng([0.9, 0.1]))
    expected = sample["image"].resize((48, 36), Image.Resampling.BICUBIC).crop((4, 3, 44, 33))
    np.testing.assert_array_equal(np.asarray(up["image"]), np.asarray(expected))
    expected_gt = sample["gt"].resize((48, 36), Image.Resampling.BICUBIC).crop((4, 3, 44, 33))
    np.testing.assert_array_equal(np.asarray(up["gt"]), np.asarray(expected_gt))
    # draws 0.1 -> scale 0.8 (32×24), apply: centred at offset (4, 3) on black
    down = crop(dict(sample), ScriptedRng([0.1, 0.2]))
    canvas = np.zeros((30, 40, 3), np.uint8)
    canvas[3:27, 4:36] = np.asarray(sample["image"].resize((32, 24), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(np.asarray(down["image"]), canvas)
    # second draw >= 0.5: untouched, but both draws were consumed
    rng = ScriptedRng([0.9, 0.7, 0.123])
    assert crop(dict(sample), rng)["image"] is sample["image"] and rng.randoms == [0.123]


def test_random_flip_draw_order():
    image = _photo(8, 4)
    mirrored = np.asarray(image)[:, ::-1]
    assert np.array_equal(
        np.asarray(RandomFlip()({"image": image}, ScriptedRng([0.3, 0.9]))["image"]), mirrored
    )
    rng = ScriptedRng([0.7, 0.1, 0.5])
    assert RandomFlip(lr=True, ud=False)({"image": image}, rng)["image"] is image
    assert rng.randoms == [0.5]  # the unused ud draw is still made
    flipped = RandomFlip(lr=True, ud=True)({"image": image}, ScriptedRng([0.7, 0.1]))["image"]
    np.testing.assert_array_equal(np.asarray(flipped), np.asarray(image)[::-1])


def test_random_rotate_semantics():
    image, gt = _photo(40, 30), Image.fromarray(np.asarray(_photo(40, 30))[..., 2])
    rng = ScriptedRng([0.2], integers=[-5])
    out = RandomRotate([-10, 10])({"image": image, "gt": gt}, rng)
    assert rng.integer_calls == [(-10, 10)]  # numpy's high bound is exclusive: -10..9
    rotated = image.rotate(355, resample=Image.Resampling.NEAREST, expand=True)
    w2, h2 = rotated.size
    box = ((w2 - 40) // 2, (h2 - 30) // 2, (w2 + 40) // 2, (h2 + 30) // 2)
    np.testing.assert_array_equal(np.asarray(out["image"]), np.asarray(rotated.crop(box)))
    assert out["gt"].size == (40, 30)
    assert np.asarray(out["image"])[0, 0].tolist() == [0, 0, 0]  # black fill in the corner
    skipped = RandomRotate([-10, 10])({"image": image}, ScriptedRng([0.6], integers=[3]))
    assert skipped["image"] is image
    draws = {int(np.random.default_rng(s).integers(-10, 10)) for s in range(400)}
    assert min(draws) == -10 and max(draws) == 9


def test_random_image_enhance_factors_and_persistent_order():
    image = _photo(16, 12)
    # fixed order [contrast, brightness, sharpness] (shuffle scripted as a no-op):
    # contrast: 0.9 > 0.5 -> factor 1 + 0.5/10; brightness: 0.2 skipped; sharpness: 0.7 -> 1.0
    out = RandomImageEnhance(["sharpness", "contrast", "brightness"])(
        {"image": image}, ScriptedRng([0.9, 0.5, 0.2, 0.7, 0.0])
    )
    expected = ImageEnhance.Contrast(image).enhance(1.05)
    expected = ImageEnhance.Sharpness(expected).enhance(1.0)
    np.testing.assert_array_equal(np.asarray(out["image"]), np.asarray(expected))

    enhance = RandomImageEnhance(["contrast", "brightness", "sharpness"])
    rng = np.random.default_rng(5)
    orders = []
    for _ in range(6):
        enhance({"image": image}, rng)
        orders.append(list(enhance._order))
    assert sorted(orders[0]) == ["brightness", "contrast", "sharpness"]
    assert len({tuple(o) for o in orders}) > 1  # the in-place shuffle persists and moves
    enhance.reset()
    assert enhance._order == ["contrast", "brightness", "sharpness"]


def test_random_pipeline_reproducible_and_aligned():
    geometric = {k: TRAIN_SPEC[k] for k in ("random_scale_crop", "random_flip", "random_rotate")}
    results = []
    for seed in range(12):
        out = build_transforms(geometric)(_mask_sample(), np.random.default_rng(seed))
        image, gt = np.asarray(out["image"]), np.asarray(out["gt"])
        np.testing.assert_array_equal(image[..., 0], gt)  # same filters/boxes on image and gt
        results.append(gt)
    assert len({r.tobytes() for r in results}) > 3  # the draws do change the output
    first = build_transforms(TRAIN_SPEC)(_mask_sample(seed=1), np.random.default_rng(42))
    second = build_transforms(TRAIN_SPEC)(_mask_sample(seed=1), np.random.default_rng(42))
    assert torch.equal(first["image"], second["image"]) and torch.equal(first["gt"], second["gt"])
    seeded = [build_transforms(TRAIN_SPEC, seed=7)(_mask_sample(seed=1))["image"] for _ in "ab"]
    assert torch.equal(*seeded)  # the Compose's own generator, seeded


def test_pipelines_work_without_gt():
    out = build_transforms(TRAIN_SPEC)(
        {"image": _photo(50, 40), "name": "x", "shape": (40, 50)}, np.random.default_rng(0)
    )
    assert out["image"].shape == (3, 64, 64) and "gt" not in out
    out = build_transforms(TEST_SPEC)({"image": _photo(50, 40), "name": "x", "shape": (40, 50)})
    assert out["image"].shape == (3, 32, 64) and "gt" not in out


def test_bad_specs_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown transform 'random_dilation_erosion'") as caught:
        build_transforms({"random_dilation_erosion": {"kernel_range": [2, 5]}})
    assert all(name in str(caught.value) for name in TRANSFORMS)
    with pytest.raises(ValueError, match=r"'random_flip': unknown argument\(s\) \['prob'\]"):
        build_transforms({"random_flip": {"prob": 0.5}})
    with pytest.raises(ValueError, match="'static_resize': size"):
        build_transforms({"static_resize": {"size": "384"}})
    with pytest.raises(ValueError, match="'random_image_enhance': unknown enhance method"):
        build_transforms({"random_image_enhance": {"methods": ["hue"]}})
    with pytest.raises(ValueError, match="either L .* or stride"):
        build_transforms({"dynamic_resize": {"L": 1280, "stride": 192}})
    with pytest.raises(ValueError, match="'normalize'"):
        build_transforms({"normalize": {"mean": [0.5], "std": STD}})
    with pytest.raises(ValueError, match="put 'tonumpy' before 'normalize'"):
        build_transforms({"normalize": None})({"image": _photo()})
