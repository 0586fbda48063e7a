"""Sample transforms (architecture §15.4, §16.1, §16.2, §18.1), built from a config by a registry.

A *sample* is a dict: ``image`` (PIL RGB), optional ``gt`` (PIL 'L'; inference has none),
``name`` and ``shape`` (the original (H, W)); resizing transforms may add ``image_resized`` and
``gt_resized``. Every transform works when ``gt`` is absent.

    transforms = build_transforms(cfg["Train"]["Dataset"]["transforms"])
    sample = transforms({"image": image, "gt": mask, "name": "0001", "shape": (h, w)}, rng=rng)

Sizes in the config (``size``, ``base_size``) are ``[height, width]``, like ``shape``; every
published config uses squares.

Randomness: random transforms draw from the ``numpy.random.Generator`` passed to
:meth:`Compose.__call__` (``rng=``); without one they use the Compose's own generator, seeded by
``build_transforms(..., seed=)`` (``None``: fresh OS entropy). :class:`data.dataset.SODDataset`
passes a generator seeded by (seed, epoch, index) for every sample, so a run is reproducible and
does not depend on which worker loads which sample, except for one documented piece of state:
``random_image_enhance`` shuffles its method list *in place* (§15.4 quirk), so its order
persists from one call to the next within a process. :meth:`Compose.reset` restores the
initial order; the dataset calls it at every epoch start (``set_epoch``), as the reference's
DataLoader workers, started afresh each epoch, effectively did.

Numbers reproduce the reference exactly: PIL filters as listed per transform, banker's rounding
in ``dynamic_resize`` and normalisation in float64 stored as float32.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from utils.config import did_you_mean

Sample = dict[str, Any]
_BILINEAR = Image.Resampling.BILINEAR
_BICUBIC = Image.Resampling.BICUBIC
_NEAREST = Image.Resampling.NEAREST


def _is_int(value: Any) -> bool:
    """True for a Python or numpy integer that is not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _pair(value: Any, what: str) -> tuple[int, int]:
    """``value`` (an int or a [height, width] pair) as a (height, width) tuple of positive ints."""
    if _is_int(value):
        value = [value, value]
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"{what} must be an integer or [height, width], got {value!r}")
    if not all(_is_int(v) and v > 0 for v in value):
        raise ValueError(f"{what} must hold two positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def _range(value: Any, what: str) -> tuple[float, float]:
    """``value`` as a (low, high) pair of numbers with low <= high."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"{what} must be [low, high], got {value!r}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{what} must hold two numbers, got {value!r}")
    if value[0] > value[1]:
        raise ValueError(f"{what} must have low <= high, got {value!r}")
    return value[0], value[1]


class Transform:
    """Base class: ``__call__(sample, rng) -> sample``; stateless unless :meth:`reset` says."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        raise NotImplementedError

    def reset(self) -> None:
        """Restore the initial state (only stateful transforms do anything)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


class StaticResize(Transform):
    """§15.4.1: image to ``size`` with PIL BILINEAR (antialiased), gt with NEAREST.

    ``base_size`` (optional, never enabled in a published config) also writes ``image_resized``
    / ``gt_resized`` at ``size`` (sic, §15.4.1: the reference uses ``size`` there too).
    """

    def __init__(self, size: list[int] | int = (384, 384), base_size: list[int] | None = None):
        self.size = _pair(size, "size")
        self.base_size = None if base_size is None else _pair(base_size, "base_size")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = self.size
        if self.base_size is not None:
            sample["image_resized"] = sample["image"].resize((width, height), _BILINEAR)
            if "gt" in sample:
                sample["gt_resized"] = sample["gt"].resize((width, height), _NEAREST)
        sample["image"] = sample["image"].resize((width, height), _BILINEAR)
        if "gt" in sample:
            sample["gt"] = sample["gt"].resize((width, height), _NEAREST)
        return sample


class RandomScaleCrop(Transform):
    """§15.4.2: scale = U·(high−low)+low always drawn; applied when a second draw < 0.5.

    Image and gt are resized with PIL BICUBIC (Pillow's default filter, §19.20) to
    round(size·scale), zero-padded when smaller and centre-cropped back to the original size.
    """

    def __init__(self, range: list[float] = (0.75, 1.25)):
        self.range = _range(range, "range")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        low, high = self.range
        scale = rng.random() * (high - low) + low
        if rng.random() >= 0.5:
            return sample
        width, height = sample["image"].size
        new_w, new_h = round(width * scale), round(height * scale)
        left, up = (new_w - width) // 2, (new_h - height) // 2
        right, low_edge = (new_w + width) // 2, (new_h + height) // 2
        border = max(0, -min(left, up))
        box = (left + border, up + border, right + border, low_edge + border)
        for key in ("image", "gt"):
            if key in sample:
                resized = sample[key].resize((new_w, new_h), _BICUBIC)
                if border:
                    resized = ImageOps.expand(resized, border=border, fill=0)
                sample[key] = resized.crop(box)
        return sample


class RandomFlip(Transform):
    """§15.4.3: draw lr = U<0.5, then ud = U<0.5 (always both draws); flip where enabled."""

    def __init__(self, lr: bool = True, ud: bool = False):
        if not isinstance(lr, bool) or not isinstance(ud, bool):
            raise ValueError(f"lr and ud must be true/false, got lr={lr!r}, ud={ud!r}")
        self.lr, self.ud = lr, ud

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        flip_lr = rng.random() < 0.5 and self.lr
        flip_ud = rng.random() < 0.5 and self.ud
        for key in ("image", "gt"):
            if key in sample:
                if flip_lr:
                    sample[key] = sample[key].transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                if flip_ud:
                    sample[key] = sample[key].transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        return sample


class RandomRotate(Transform):
    """§15.4.4: rot = randint(low, high) (high excluded: −10..9), +360 when negative; then,
    when a second draw < 0.5, PIL ``rotate(rot, expand=True)`` (NEAREST, black fill) of image
    and gt and a centre crop back to the original size."""

    def __init__(self, range: list[int] = (-10, 10)):
        low, high = _range(range, "range")
        if not (float(low).is_integer() and float(high).is_integer()) or low >= high:
            raise ValueError(f"range must be two integers [low, high] with low < high, got {range}")
        self.range = (int(low), int(high))

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        rot = int(rng.integers(self.range[0], self.range[1]))
        if rot < 0:
            rot += 360
        if rng.random() >= 0.5:
            return sample
        width, height = sample["image"].size
        for key in ("image", "gt"):
            if key in sample:
                rotated = sample[key].rotate(rot, resample=_NEAREST, expand=True)
                new_w, new_h = rotated.size
                box = (
                    (new_w - width) // 2,
                    (new_h - height) // 2,
                    (new_w + width) // 2,
                    (new_h + height) // 2,
                )
                sample[key] = rotated.crop(box)
        return sample


_ENHANCERS = {
    "contrast": ImageEnhance.Contrast,
    "brightness": ImageEnhance.Brightness,
    "sharpness": ImageEnhance.Sharpness,
}


class RandomImageEnhance(Transform):
    """§15.4.5: the list [Contrast, Brightness, Sharpness] (kept in this fixed order, filtered by
    membership in ``methods``) is shuffled *in place* on each call, so the order persists and
    accumulates (state restored by :meth:`reset`). For each method in the current order: when a
    draw U > 0.5, enhance the image with factor 1 + U'/10, U' a second draw (the spec's U's are
    fresh draws, as in §15.4.2). The gt is untouched."""

    def __init__(self, methods: list[str] = ("contrast", "sharpness", "brightness")):
        if isinstance(methods, str) or not isinstance(methods, list | tuple):
            raise ValueError(f"methods must be a list of names, got {methods!r}")
        unknown = [m for m in methods if str(m).lower() not in _ENHANCERS]
        if unknown:
            raise ValueError(f"unknown enhance method(s) {unknown}; valid: {sorted(_ENHANCERS)}")
        wanted = {str(m).lower() for m in methods}
        self.methods = [name for name in _ENHANCERS if name in wanted]
        self._order = list(self.methods)

    def reset(self) -> None:
        self._order = list(self.methods)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        rng.shuffle(self._order)
        for name in self._order:
            if rng.random() > 0.5:
                factor = 1 + rng.random() / 10
                sample["image"] = _ENHANCERS[name](sample["image"]).enhance(factor)
        return sample


class DynamicResize(Transform):
    """§16.1: the final ``dynamic_resize(L=1280, base_size=[384, 384])``.

    The long side is limited so that the short side is at most ``L`` (float64, exact operation
    order), both sides are snapped to multiples of 32 with Python's round (half to even; at
    least 32, where the reference would crash on a side below 16 px), ``image`` is a PIL
    BILINEAR resize of the original to that size and ``image_resized`` one of the *original* to
    ``base_size``. GTs get NEAREST copies (``gt``, ``gt_resized``).
    Examples: 400×300 → 384×288, 1920×1080 → 1920×1088, 3840×2160 → 2272×1280 (w×h).
    """

    def __init__(self, L: int = 1280, base_size: list[int] = (384, 384)):  # noqa: N803
        if not _is_int(L) or L <= 0:
            raise ValueError(f"L must be a positive integer, got {L!r}")
        self.L = L
        self.base_size = _pair(base_size, "base_size")

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """PIL size (w, h) that an image of PIL size (width, height) is resized to."""
        w, h = float(width), float(height)
        if w >= h and h > self.L:
            w = w / (h / self.L)
            h = float(self.L)
        elif h > w and w > self.L:
            h = h / (w / self.L)
            w = float(self.L)
        return max(32, int(round(w / 32)) * 32), max(32, int(round(h / 32)) * 32)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        size = self.target_size(*sample["image"].size)
        base = (self.base_size[1], self.base_size[0])
        original = sample["image"]
        sample["image"] = original.resize(size, _BILINEAR)
        sample["image_resized"] = original.resize(base, _BILINEAR)
        if "gt" in sample:
            gt = sample["gt"]
            sample["gt"] = gt.resize(size, _NEAREST)
            sample["gt_resized"] = gt.resize(base, _NEAREST)
        return sample


class PMResize(Transform):
    """§18.1: the 2021 seed's ``dynamic_resize(base_size=384, stride=192)`` for PM inference.

    With n = base_size // stride and ar = w/h: if ar > 1 the size is (int(B·round(n·ar)/n), B),
    else (B, int(B·round(n/ar)/n)) (Python round, half to even): the short side becomes B and
    the long side the multiple of ``stride`` nearest to the aspect-preserving length. Only
    ``image`` is resized (PIL BILINEAR). Examples: 400×300 → 576×384, 1920×1080 → 768×384,
    672×384 → 768×384 (w×h).
    """

    def __init__(self, base_size: int | list[int] = 384, stride: int = 192):
        height, width = _pair(base_size, "base_size")
        if height != width:
            raise ValueError(f"base_size must be square for PM resizing, got {base_size!r}")
        if not _is_int(stride) or not 0 < stride <= height:
            raise ValueError(f"stride must be an integer in 1..base_size, got {stride!r}")
        self.base_size, self.stride = height, stride

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """PIL size (w, h) that an image of PIL size (width, height) is resized to."""
        n = self.base_size // self.stride
        ratio = width / height
        if ratio > 1:
            return int(self.base_size * round(n * ratio) / n), self.base_size
        return self.base_size, int(self.base_size * round(n / ratio) / n)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        sample["image"] = sample["image"].resize(self.target_size(*sample["image"].size), _BILINEAR)
        return sample


_IMAGE_KEYS = ("image", "image_resized")
_GT_KEYS = ("gt", "gt_resized")


class ToNumpy(Transform):
    """§15.4.6: every image/gt entry to a float32 numpy array (HWC for images, HW for gts)."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for key in _IMAGE_KEYS + _GT_KEYS:
            if key in sample:
                sample[key] = np.array(sample[key], dtype=np.float32)
        return sample


class Normalize(Transform):
    """§16.2 bit-exact: x /= 255 in float32; then x −= mean and x /= std computed in float64
    and stored back to float32 after each step (numpy in-place semantics). Gts: /= 255 only."""

    def __init__(
        self,
        mean: list[float] = (0.485, 0.456, 0.406),
        std: list[float] = (0.229, 0.224, 0.225),
    ):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if self.mean.shape != (3,) or self.std.shape != (3,) or not np.all(self.std > 0):
            raise ValueError(f"mean and std must be 3 numbers (std > 0), got {mean!r}, {std!r}")

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for key in _IMAGE_KEYS:
            if key in sample:
                x = _as_float32(sample[key], key)
                x /= np.float32(255)
                x -= self.mean  # float64 arithmetic, result cast back into the float32 array
                x /= self.std
                sample[key] = x
        for key in _GT_KEYS:
            if key in sample:
                x = _as_float32(sample[key], key)
                x /= np.float32(255)
                sample[key] = x
        return sample


def _as_float32(value: Any, key: str) -> np.ndarray:
    """A writable float32 copy-or-self of ``value`` (which ``tonumpy`` should have produced)."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"normalize: '{key}' is not an array; put 'tonumpy' before 'normalize'")
    if value.dtype == np.float32 and value.flags.writeable:
        return value
    return value.astype(np.float32)


class ToTensor(Transform):
    """§15.4.6: images HWC → CHW float tensors; gts (H, W) → (1, H, W)."""

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        import torch  # here only: the exported engines run the other transforms without torch

        for key in _IMAGE_KEYS:
            if key in sample:
                array = np.asarray(sample[key], dtype=np.float32)
                sample[key] = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        for key in _GT_KEYS:
            if key in sample:
                array = np.asarray(sample[key], dtype=np.float32)
                sample[key] = torch.from_numpy(np.ascontiguousarray(array[None]))
        return sample


TRANSFORMS: dict[str, type[Transform]] = {
    "static_resize": StaticResize,
    "resize": StaticResize,  # the 2021 seed's Test transform name (a plain 384×384 resize)
    "random_scale_crop": RandomScaleCrop,
    "random_flip": RandomFlip,
    "random_rotate": RandomRotate,
    "random_image_enhance": RandomImageEnhance,
    "dynamic_resize": DynamicResize,  # {base_size, stride} dispatches to PMResize (seed configs)
    "pm_resize": PMResize,
    "tonumpy": ToNumpy,
    "normalize": Normalize,
    "totensor": ToTensor,
}


class Compose:
    """Apply transforms in order; see the module docstring for how randomness is supplied."""

    def __init__(self, transforms: list[Transform], seed: int | None = None):
        self.transforms = list(transforms)
        self.rng = np.random.default_rng(seed)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        rng = self.rng if rng is None else rng
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample

    def reset(self) -> None:
        """Restore the initial state of stateful transforms (``random_image_enhance``'s order)."""
        for transform in self.transforms:
            transform.reset()

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


def _resolve(name: str, args: Mapping[str, Any]) -> type[Transform]:
    """The class for config entry ``name``: the seed's ``dynamic_resize`` takes ``stride``."""
    if name not in TRANSFORMS:
        valid = ", ".join(sorted(TRANSFORMS))
        raise ValueError(
            f"unknown transform '{name}'{did_you_mean(name, TRANSFORMS)}; valid names: {valid}"
        )
    if name == "dynamic_resize" and "stride" in args:
        if "L" in args:
            raise ValueError(
                "dynamic_resize: give either L (final version) or stride (2021 seed PM resize)"
            )
        return PMResize
    return TRANSFORMS[name]


def build_transform(name: str, args: Mapping[str, Any] | None = None) -> Transform:
    """One transform from its config entry, e.g. ``build_transform('random_flip', {'lr': True})``.

    Raises ValueError naming the transform for an unknown name or bad arguments.
    """
    args = {} if args is None else args
    if not isinstance(args, Mapping):
        raise ValueError(f"transform '{name}': arguments must be a mapping or empty, got {args!r}")
    cls = _resolve(name, args)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = [key for key in args if key not in accepted]
    if unknown:
        raise ValueError(
            f"transform '{name}': unknown argument(s) {unknown}; valid: {accepted or 'none'}"
        )
    try:
        return cls(**args)
    except ValueError as error:
        raise ValueError(f"transform '{name}': {error}") from None


def build_transforms(
    spec: Mapping[str, Mapping[str, Any] | None] | None, seed: int | None = None
) -> Compose:
    """A :class:`Compose` from a config's ordered ``transforms`` mapping (name -> args or None).

    ``seed`` seeds the Compose's own generator (used when no ``rng`` is passed per call).
    """
    spec = {} if spec is None else spec
    if not isinstance(spec, Mapping):
        raise ValueError(f"transforms must be a mapping of name -> arguments, got {spec!r}")
    return Compose([build_transform(name, args) for name, args in spec.items()], seed=seed)


# What the scripts pass to utils.config.load_config(checks=): every transform of both pipelines
# is built once at load, so a misspelt name ("did you mean ...?") or a bad argument is one config
# error naming the file and the dotted key, before any model or data is touched. utils.config
# sits below data and cannot know the registry itself.
CONFIG_CHECKS = {f"{split}.Dataset.transforms": build_transforms for split in ("Train", "Test")}
