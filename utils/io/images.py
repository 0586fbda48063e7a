"""The one place where images and masks are read and written, for every script.

Rules (documented in README, "What happens when things go wrong"):

* Photos (:func:`read_image`): EXIF orientation is applied; grayscale, palette, RGBA (alpha
  dropped: the colour channels are kept as stored), CMYK, 16-bit and float inputs become 8-bit RGB.
  16-bit values are scaled by 1/257 (65535 -> 255).
* Masks (:func:`read_mask`): exactly what ``cv2.imread(path, cv2.IMREAD_GRAYSCALE)`` gives, as the
  standard SOD toolkits read them: the decoder makes the one channel (for a colour JPEG the luma
  it stores, for a colour PNG libpng's RGB-to-gray, within 1 of 0.299 R + 0.587 G + 0.114 B;
  alpha is dropped). Two deliberate differences: a 16-bit mask is scaled by 1/257 (OpenCV would
  drop the low byte), and the EXIF orientation is the one Pillow reads, applied the way
  :func:`read_image` applies it, so a mask stays aligned with its photo and with
  :func:`read_image_size` (OpenCV 5.0, for one, cannot decode a TIFF tagged 5-8). What OpenCV
  cannot decode (32-bit or float values, a damaged PNG) is read with Pillow instead: colour by
  0.299 R + 0.587 G + 0.114 B, or Pillow's one-line error when the file is broken. Values other
  than 0/255 are kept: training treats them as soft targets (/255) and evaluation binarises at
  > 128, as the standard toolkits do.
* Only regular files are read (``utils.io.files.file_problem``): a FIFO named like an image
  cannot block the reader.
* A file larger than ``MAX_PIXELS`` is refused from its header, before it is decoded, with a
  clear message (decompression bombs). Before decoding, the decoded size (H×W×channels×bytes,
  from the header) is compared with what this process can still allocate (the system's
  MemAvailable, and the room left under RLIMIT_AS when one is set): a file that would not fit is
  refused in one line naming its size and the limit, instead of a MemoryError or the kernel's
  out-of-memory killer.
* Paths may hold any unicode characters and spaces.
* PNGs are written atomically (:mod:`utils.io.atomic`).

Every failure raises :class:`ImageReadError`, whose message names the file and the problem on
one line, so callers can report it and go on with the rest of a batch.
"""

from __future__ import annotations

import os
import resource
import threading
import warnings
from contextlib import AbstractContextManager
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from utils.io.atomic import write_bytes_atomic
from utils.io.files import file_problem

# 120 Mpx: above every SOD data set image (UHRSD/DIS are <= ~25 Mpx) and the largest common
# camera photos (102 Mpx medium format). Reading and predicting hold several copies of an image
# (the decode, its 8-bit RGB copy: 3 B/px each; a float32 map at the original size: 4 B/px; the
# output): ~12-15 bytes per pixel, so 120 Mpx is ~1.5-2 GB at the peak, which a usual machine
# survives (the former 400 Mpx cap let a 350 KB PNG drive a process to 4.3 GB). Pillow's own
# default (89 Mpx warning) would refuse genuine large photos. Raise it here for larger files.
MAX_PIXELS = 120_000_000

_HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_EXIF_ORIENTATION = 0x0112
# What each EXIF orientation needs to be upright: the table of Pillow's ImageOps.exif_transpose.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# Orientations 5..8 are transposes/90-degree rotations: they swap width and height.
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)
# Pillow finds the orientation of a PNG whose EXIF (an eXIf chunk, ImageMagick's "Raw profile type
# exif" text or XMP) follows the pixel data only by decoding the whole image. A PNG whose bytes
# hold none of these chunk keywords has no orientation: searching the bytes is ~15x quicker than
# decoding, and most masks are such PNGs.
_PNG_EXIF_KEYWORDS = (b"eXIf", b"Raw profile type exif", b"XML:com.adobe.xmp")
# read_mask's OpenCV decode: one channel as cv2.IMREAD_GRAYSCALE makes it, 16 bits kept (scaled by
# our rule), the orientation left to us (see the module rules).
_MASK_FLAGS = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_ANYDEPTH | cv2.IMREAD_IGNORE_ORIENTATION
# Bytes per band of a decoded image in Pillow's modes (8-bit modes: 1).
_BAND_BYTES = {"I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Pillow's bomb limit is a process-wide global: set and restore it under a lock.
_PIL_LIMIT_LOCK = threading.Lock()


class ImageReadError(ValueError):
    """An image or mask that cannot be used; ``str()`` is a one-line message naming the file."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = " ".join(str(problem).split())  # one line, whatever the decoder said
        super().__init__(f"{self.path}: {self.problem}")


def _open_header(path: str | os.PathLike, decoding: bool = False) -> Image.Image:
    """Open ``path`` lazily (header only), refusing anything but a regular file and images
    above ``MAX_PIXELS``; with ``decoding`` (the caller decodes next) also images whose decoded
    size exceeds what the process can allocate."""
    problem = file_problem(path)
    if problem:
        raise ImageReadError(path, problem)
    limit = MAX_PIXELS  # read at call time so tests and users can lower or raise it
    with warnings.catch_warnings(), _PIL_LIMIT_LOCK:
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            image = Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageReadError(
                path,
                f"image has more than {limit / 1e6:.0f} Mpx, refused as a possible decompression "
                "bomb (raise utils.io.images.MAX_PIXELS if the file is genuine)",
            ) from None
        except (OSError, SyntaxError, ValueError) as error:
            raise ImageReadError(path, f"cannot decode image ({error})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    if decoding:
        _check_memory(image, path)
    return image


def _check_memory(image: Image.Image, path: str | os.PathLike) -> None:
    """ImageReadError (the file closed) when decoding ``image`` needs more memory than the
    process can allocate now (module rules)."""
    width, height = image.size
    needed = width * height * len(image.getbands()) * _BAND_BYTES.get(image.mode, 1)
    room = _allocatable()
    if room is None or needed <= room[0]:
        return
    image.close()
    raise ImageReadError(
        path,
        f"decoding this {width}x{height} {image.mode} image needs {needed / 1e6:,.1f} MB, more "
        f"than the {room[0] / 1e6:,.1f} MB this process can allocate now ({room[1]}); refused "
        "(free memory, or shrink the image)",
    )


def _allocatable() -> tuple[int, str] | None:
    """(bytes, what sets them) this process can still allocate: the smaller of the system's
    MemAvailable and the room left under RLIMIT_AS; None when neither is known."""
    limits = [limit for limit in (_memory_available(), _address_space_left()) if limit]
    return min(limits) if limits else None


def _memory_available() -> tuple[int, str] | None:
    """The kernel's estimate of memory available without swapping (Linux), or None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable"
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left() -> tuple[int, str] | None:
    """Room left under the soft RLIMIT_AS (``ulimit -v``), or None when there is none or the
    process size is unknown (no /proc)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            used = int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return None
    return max(soft - used, 0), "RLIMIT_AS"


def _open_pil(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode ``path`` with Pillow, turning every failure into ImageReadError."""
    image = _open_header(path, decoding=True)
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


def _scale_16bit(array: np.ndarray) -> np.ndarray:
    """16-bit values scaled to uint8 by 1/257 (65535 -> 255), rounded."""
    return (array.astype(np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)


def _to_8bit_array(image: Image.Image) -> np.ndarray:
    """Array of a 16/32-bit integer or float single-channel image scaled to uint8."""
    array = np.asarray(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N") or (
        image.mode == "I" and array.max(initial=0) > 255
    ):
        return _scale_16bit(array)
    if image.mode == "F":
        scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
        return (array.astype(np.float64) * scale).round().clip(0, 255).astype(np.uint8)
    return array.clip(0, 255).astype(np.uint8)


def _read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes; ImageReadError naming it when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ImageReadError(path, f"cannot read file ({error.strerror or error})") from None


def _orientation(
    image: Image.Image, path: str | os.PathLike, data: bytes | None = None
) -> int | None:
    """The EXIF orientation (1..8, or None) of ``image`` opened from ``path`` (raw bytes ``data``
    when already read), as Pillow's exif_transpose reads it, without decoding the pixels when
    the file cannot hold one."""
    if image.format == "PNG" and "exif" not in image.info:
        data = _read_bytes(path) if data is None else data
        if not any(keyword in data for keyword in _PNG_EXIF_KEYWORDS):
            return None
    try:
        return image.getexif().get(_EXIF_ORIENTATION)
    except (OSError, ValueError, SyntaxError, KeyError):  # a broken EXIF block: no orientation
        return None


def read_image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of the image as :func:`read_image` / :func:`read_mask` return it, header only.

    The EXIF orientation is taken into account (a 90-degree tag swaps the sides) without decoding
    the pixels, so a data set can check thousands of pairs quickly.
    """
    with _open_header(path) as image:
        width, height = image.size
        orientation = _orientation(image, path)
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
    with _open_header(path, decoding=True) as header:  # refused before decoding (module rules)
        data = _read_bytes(path)
        orientation = _orientation(header, path, data)
        decodable = header.format != "PNG" or _png_intact(path)
    mask = _decode_gray(data) if decodable else None
    if mask is None:
        return _read_mask_pil(path)
    if orientation in _UPRIGHT:
        mask = np.asarray(Image.fromarray(mask).transpose(_UPRIGHT[orientation]))
    return mask


def _png_intact(path: str | os.PathLike) -> bool:
    """Pillow's check of a PNG's chunks and checksums (the pixels are not decoded). A damaged PNG
    is left to Pillow, which names the problem, because libpng prints its own lines on stderr."""
    try:
        with _open_header(path) as image:
            image.verify()
    except Exception:  # damaged files raise many types; _read_mask_pil reports the problem
        return False
    return True


def _decode_gray(data: bytes) -> np.ndarray | None:
    """OpenCV's one-channel decode of a file's bytes (16-bit scaled to 8), not turned upright;
    None when OpenCV cannot decode it or gives 32-bit or float values (Pillow's rules then)."""
    with quiet_opencv():
        try:
            gray = cv2.imdecode(np.frombuffer(data, np.uint8), _MASK_FLAGS)
        except cv2.error:
            return None
    if gray is None or gray.dtype not in (np.uint8, np.uint16):
        return None
    return _scale_16bit(gray) if gray.dtype == np.uint16 else gray


def _read_mask_pil(path: str | os.PathLike) -> np.ndarray:
    """:func:`read_mask` for what OpenCV cannot decode: Pillow, colour by COLOR_RGB2GRAY."""
    image = _exif_transpose(_open_pil(path))
    if image.mode in _HIGH_DEPTH_MODES:
        return _to_8bit_array(image)
    if image.mode == "L":
        return np.array(image, dtype=np.uint8)
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class _QuietOpenCV:
    """OpenCV's console log switched off while at least one user (of any thread) is inside."""

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._level = 0

    def __enter__(self) -> None:
        with self._lock:
            if self._users == 0:
                self._level = cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
            self._users += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                cv2.utils.logging.setLogLevel(self._level)


_QUIET_OPENCV = _QuietOpenCV()


def quiet_opencv() -> AbstractContextManager[None]:
    """``with quiet_opencv():`` silences OpenCV's own console messages (several lines, often
    without the file name) while reading; the caller reports a failure as one line naming the
    file. Nested and concurrent (threads) uses are fine."""
    return _QUIET_OPENCV


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
