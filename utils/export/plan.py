"""Which networks an export needs: the config's test path (architecture §10.1, §16.1) as a list of
fixed-size graphs (utils.inference.exported describes the two kinds, ``single`` and ``blend``).

    specs = plan_graphs(model_cfg, test_transforms, sizes=[(1024, 1024)])
    [s.name for s in specs]    # ['single_384x384', 'blend_1024x1024']
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from data.transforms import DynamicResize, PMResize, StaticResize, build_transforms

logger = logging.getLogger(__name__)


class ExportError(ValueError):
    """An export that cannot be made or is refused; ``str()`` is one line."""


class ExportRefusedError(ExportError):
    """The exported network differs from PyTorch by more than the tolerance."""


@dataclass(frozen=True)
class GraphSpec:
    """One network to export: ``kind`` (single | blend), ``image`` (H, W) and, for blend,
    ``image_resized`` (h, w)."""

    kind: str
    image: tuple[int, int]
    image_resized: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        """The file stem: ``single_384x384``, ``blend_1024x1024``."""
        return f"{self.kind}_{self.image[0]}x{self.image[1]}"

    @property
    def inputs(self) -> dict[str, list[int]]:
        """Input names and (H, W) sizes, as in the metadata."""
        sizes = {"image": list(self.image)}
        if self.image_resized is not None:
            sizes["image_resized"] = list(self.image_resized)
        return sizes


def plan_graphs(
    model_cfg: Mapping, transforms_cfg: Mapping, sizes: Sequence[tuple[int, int]] = ()
) -> list[GraphSpec]:
    """The graphs that run the config's test path: the low-resolution (or static) input size,
    and pyramid blending at each of ``sizes`` (high-resolution inputs, after the transforms'
    dynamic resize). Raises ExportError when the path cannot be exported as asked."""
    threshold = model_cfg.get("threshold")
    resizes = [
        t
        for t in build_transforms(transforms_cfg).transforms
        if isinstance(t, StaticResize | DynamicResize | PMResize)
    ]
    if not resizes or isinstance(resizes[0], PMResize):
        raise ExportError(
            "the test transforms have no static_resize or dynamic_resize (L=...): only those "
            "test paths are exported (Patch Merging is not)"
        )
    resize = resizes[0]

    def is_high(size: tuple[int, int]) -> bool:
        return threshold is not None and min(size) > threshold

    if isinstance(resize, StaticResize):
        if sizes:
            logger.info("note: the static resize gives one input size; --size is not used")
        if not is_high(resize.size):
            return [GraphSpec("single", resize.size)]
        if resize.base_size is None:
            raise ExportError(
                f"a static {resize.size[0]}x{resize.size[1]} input is above the threshold "
                f"{threshold} but the transforms give no image_resized for pyramid blending"
            )
        return [GraphSpec("blend", resize.size, resize.size)]  # image_resized at size (sic)
    specs = []
    if threshold is not None:
        specs.append(GraphSpec("single", resize.base_size))
    for size in dict.fromkeys(sizes):
        height, width = size
        if resize.target_size(width, height) != (width, height):
            w, h = resize.target_size(width, height)
            raise ExportError(
                f"--size {height}x{width}: the dynamic resize (L={resize.L}, multiples of 32) "
                f"never gives that size (a {height}x{width} photo becomes {h}x{w})"
            )
        if threshold is None:
            specs.append(GraphSpec("single", size))
        elif is_high(size):
            specs.append(GraphSpec("blend", size, resize.base_size))
        else:
            logger.info(
                "note: %dx%d inputs take the low-resolution branch (a side <= %s): the %dx%d "
                "network covers them",
                height,
                width,
                threshold,
                *resize.base_size,
            )
    if not specs:
        raise ExportError(
            "Model.threshold is null, so the network runs at each dynamic input size: "
            "give the sizes to export (--size HxW ...)"
        )
    return specs
