"""The one place where images and masks are read and written, for every script.

Rules (documented in README, "What happens when things go wrong"):

* Photos (:func:`read_image`): EXIF orientation is applied; grayscale, palette, RGBA (alpha
  dropped: the colour channels are kept as stored), CMYK, 16-bit and float inputs become 8-bit RGB.
  16-bit values are scaled by 1/257 (65535 -> 255).
* Masks (:func:`read_mask`): read as 8-bit single channel, EXIF orientation applied too (so a
  mask saved by the same camera app stays aligned with its photo). A colour (RGB, RGBA, palette,
  CMYK) mask becomes gray with OpenCV's ``COLOR_RGB2GRAY`` rule 0.299 R + 0.587 G + 0.114 B
  (what ``cv2.imread(..., IMREAD_GRAYSCALE)`` and the SOD toolkits do; alpha is dropped); a
  16-bit mask is scaled to 8 bits. Values other than 0/255 are kept: training treats them as soft
  targets (/255) and evaluation binarises at > 128, as the standard toolkits do.
* A file larger than ``MAX_PIXELS`` is refused before it is decoded, with a clear message
  (decompression bombs).
* Paths may hold any unicode characters and spaces.

Every failure raises :class:`ImageReadError`, whose message names the file and the problem on
one line, so callers can report it and go on with the rest of a batch.
"""

from __future__ import annotations

import os
import tempfile
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# 400 Mpx (1.2 GB as 8-bit RGB): far above any SOD data set image (UHRSD/DIS are <= ~25 Mpx) and
# 100+ Mpx camera photos, small enough that one decode cannot exhaust a usual machine. Pillow's
# own default (89 Mpx warning) would refuse genuine large photos. Raise it here for larger files.
MAX_PIXELS = 20000 * 20000

_HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
# EXIF orientations 5..8 are transposes/90-degree rotations: they swap width and height.
_EXIF_ORIENTATION = 0x0112
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
# Pillow's bomb limit is a process-wide global: set and restore it under a lock.
_PIL_LIMIT_LOCK = threading.Lock()


class ImageReadError(ValueError):
    """An image or mask that cannot be used; ``str()`` is a one-line message naming the file."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = " ".join(str(problem).split())  # one line, whatever the decoder said
        super().__init__(f"{self.path}: {self.problem}")


def is_image_file(path: str | os.PathLike) -> bool:
    """True when the file name has a supported image extension (any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _open_header(path: str | os.PathLike) -> Image.Image:
    """Open ``path`` lazily (header only), refusing images above ``MAX_PIXELS``."""
    if not Path(path).is_file():
        raise ImageReadError(path, "file not found")
    limit = MAX_PIXELS  # read at call time so tests and users can lower or raise it
    with warnings.catch_warnings(), _PIL_LIMIT_LOCK:
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            return Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageReadError(
                path,
                f"image has more than {limit / 1e6:.0f} Mpx, refused as a possible decompression "
                "bomb (raise utils.image_io.MAX_PIXELS if the file is genuine)",
            ) from None
        except (OSError, SyntaxError, ValueError) as error:
            raise ImageReadError(path, f"cannot decode image ({error})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def _open_pil(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode ``path`` with Pillow, turning every failure into ImageReadError."""
    image = _open_header(path)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(path, f"cannot decode image ({error})") from None
    return image


def _exif_transpose(image: Image.Image) -> Image.Image:
    """``image`` rotated/flipped by its EXIF orientation tag (unchanged when it has none)."""
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, KeyError):  # a broken EXIF block: keep the pixels
        return image


def _to_8bit_array(image: Image.Image) -> np.ndarray:
    """Array of a 16/32-bit integer or float single-channel image scaled to uint8."""
    array = np.asarray(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N") or (
        image.mode == "I" and array.max(initial=0) > 255
    ):
        return (array.astype(np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)
    if image.mode == "F":
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
        return (array.astype(np.float64) * scale).round().clip(0, 255).astype(np.uint8)
    return array.clip(0, 255).astype(np.uint8)


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of the image as :func:`read_image` / :func:`read_mask` return it, header only.

    The EXIF orientation is taken into account (a 90-degree tag swaps the sides) without decoding
    the pixels, so a data set can check thousands of pairs quickly.
    """
    image = _open_header(path)
    with image:
        width, height = image.size
        try:
            orientation = image.getexif().get(_EXIF_ORIENTATION)
        except (OSError, ValueError, SyntaxError, KeyError):
            orientation = None
    if orientation in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return height, width


def read_image(path: str | os.PathLike) -> Image.Image:
    """Read a photo as an 8-bit RGB PIL image with its EXIF orientation applied."""
    image = _exif_transpose(_open_pil(path))
    if image.mode in _HIGH_DEPTH_MODES:
        image = Image.fromarray(_to_8bit_array(image))
    if image.mode in ("LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
    return image.convert("RGB")


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask or a saliency map as a (H, W) uint8 array (see the module rules)."""
    image = _exif_transpose(_open_pil(path))
    if image.mode in _HIGH_DEPTH_MODES:
        return _to_8bit_array(image)
    if image.mode == "L":
        return np.array(image, dtype=np.uint8)
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def write_png_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` (H,W), (H,W,3 RGB) or (H,W,4 RGBA) uint8 as a PNG, atomically.

    The file appears complete or not at all: the data goes to a temporary file in the same
    folder, which is then renamed over ``path``.
    """
    path = Path(path)
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    write_bytes_atomic(path, encoded.tobytes())


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (no partial files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; follow the umask
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
