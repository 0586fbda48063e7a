"""utils.io.images: every awkward input of the "Robustness" issue, built on the fly with PIL.

Expected values come from Pillow's / OpenCV's own conversions of the same file (the rules in
the module docstring) or from hand computation where stated.
"""

import os
import struct
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from utils.io import images as image_io
from utils.io.atomic import (
    AtomicFile,
    remove_stale_temporaries,
    temporary_prefix,
    write_bytes_atomic,
)
from utils.io.files import is_image_file
from utils.io.images import (
    ImageReadError,
    quiet_opencv,
    read_image,
    read_image_size,
    read_mask,
    write_png_atomic,
)


def _pattern(width=40, height=24):
    """An RGB array whose every pixel differs, so orientation mistakes show."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 6, y * 10, (x + y) * 3], axis=-1).astype(np.uint8)


def test_exif_orientation_applied_to_jpeg(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": Pillow's ROTATE_270
    Image.fromarray(_pattern()).save(path, quality=95, exif=exif)
    stored = Image.open(path).convert("RGB")
    expected = np.asarray(stored.transpose(Image.Transpose.ROTATE_270))
    image = read_image(path)
    assert image.mode == "RGB" and image.size == (24, 40)
    np.testing.assert_array_equal(np.asarray(image), expected)
    assert read_image_size(path) == (40, 24)  # (H, W) after the orientation, header only


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(path, quality=100)  # pure red in CMYK
    image = read_image(path)
    assert image.mode == "RGB" and image.size == (16, 12)
    assert np.abs(np.asarray(image, np.int16) - [255, 0, 0]).max() <= 3


def test_progressive_and_gray_jpeg(tmp_path):
    progressive, gray = tmp_path / "progressive.jpg", tmp_path / "gray.jpg"
    Image.fromarray(_pattern()).save(progressive, progressive=True, quality=90)
    Image.fromarray(_pattern()[..., 0]).save(gray)
    np.testing.assert_array_equal(
        np.asarray(read_image(progressive)), np.asarray(Image.open(progressive).convert("RGB"))
    )
    rgb = np.asarray(read_image(gray))
    assert rgb.shape == (24, 40, 3)
    np.testing.assert_array_equal(rgb[..., 0], np.asarray(Image.open(gray)))
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_16bit_png_scaled_to_8bit(tmp_path):
    path = tmp_path / "deep.png"
    values = np.array([[0, 257, 32896], [65535, 1000, 128]], dtype=np.uint16)
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    expected = np.array([[0, 1, 128], [255, 4, 0]], np.uint8)  # round(v / 257), by hand
    np.testing.assert_array_equal(read_mask(path), expected)
    np.testing.assert_array_equal(np.asarray(read_image(path))[..., 1], expected)


def test_palette_and_rgba_png(tmp_path):
    palette_path, rgba_path = tmp_path / "palette.png", tmp_path / "rgba.png"
    palette = Image.fromarray(_pattern()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(palette_path)
    rgba = np.dstack([_pattern(), np.full((24, 40), 7, np.uint8)])
    Image.fromarray(rgba).save(rgba_path)
    expected_rgb = np.asarray(Image.open(palette_path).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(read_image(palette_path)), expected_rgb)
    np.testing.assert_array_equal(np.asarray(read_image(rgba_path)), _pattern())  # alpha dropped
    for path in (palette_path, rgba_path):  # masks: what the toolkits' cv2.imread gives
        np.testing.assert_array_equal(read_mask(path), cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))


def _gray_pattern(width=40, height=24):
    """A (H, W) uint8 array that is not symmetric under any flip or rotation."""
    y, x = np.mgrid[0:height, 0:width]
    return (x * 5 + y).astype(np.uint8)


def test_colour_masks_read_as_cv2_imread_grayscale(tmp_path):
    """Every colour mask gives exactly cv2.imread(path, IMREAD_GRAYSCALE), the SOD toolkits'
    reader (module rules); unicode and a space in the path are fine."""
    rgb = Image.fromarray(_pattern())
    files = {
        "rgb.png": rgb,
        "rgba.png": Image.fromarray(np.dstack([_pattern(), np.full((24, 40), 9, np.uint8)])),
        "palette.png": rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16),
        "colour.jpg": rgb,
        "cmyk.jpg": rgb.convert("CMYK"),
        "colour.webp": rgb,
        "colour.bmp": rgb,
    }
    folder = tmp_path / "마스크 폴더"
    folder.mkdir()
    for name, image in files.items():
        image.save(folder / name)
        expected = cv2.imread(str(folder / name), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(read_mask(folder / name), expected, err_msg=name)
    # The rule matters: cvtColor on Pillow's RGB (what read_mask did before) is 1 off on many
    # pixels of the PNG (libpng's integer conversion).
    converted = cv2.cvtColor(_pattern(), cv2.COLOR_RGB2GRAY).astype(int)
    difference = np.abs(converted - read_mask(folder / "rgb.png"))
    assert difference.max() == 1


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_mask_exif_orientation_as_read_image(tmp_path, suffix):
    """All eight EXIF orientations turn a mask as read_image turns the same file (Pillow's
    exif_transpose, the reference) and as cv2.imread does, at read_image_size's size."""
    for orientation in range(1, 9):
        path = tmp_path / f"orientation{orientation}{suffix}"
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(_gray_pattern()).save(path, exif=exif, quality=95)
        mask = read_mask(path)
        np.testing.assert_array_equal(mask, np.asarray(read_image(path))[..., 0])
        np.testing.assert_array_equal(mask, cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
        assert mask.shape == read_image_size(path)
        assert mask.shape == ((40, 24) if orientation >= 5 else (24, 40))


def _png_chunks(data: bytes) -> list[bytes]:
    """The chunks (length, type, data, CRC) of a PNG file, in order, after the signature."""
    chunks, position = [], 8
    while position < len(data):
        length = struct.unpack(">I", data[position : position + 4])[0]
        chunks.append(data[position : position + 12 + length])
        position += 12 + length
    return chunks


def test_png_exif_after_the_pixels(tmp_path):
    """An eXIf chunk after IDAT (libpng can write it there) still turns size and mask."""
    path = tmp_path / "late_exif.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_gray_pattern()).save(path, exif=exif)
    data = path.read_bytes()
    chunks = _png_chunks(data)
    kinds = [chunk[4:8] for chunk in chunks]
    assert kinds.index(b"eXIf") < kinds.index(b"IDAT")  # Pillow writes it early
    exif_chunk = chunks.pop(kinds.index(b"eXIf"))
    chunks.insert(len(chunks) - 1, exif_chunk)  # just before IEND
    path.write_bytes(data[:8] + b"".join(chunks))
    assert "exif" not in Image.open(path).info  # not seen without decoding
    assert read_image_size(path) == (40, 24)
    np.testing.assert_array_equal(read_mask(path), np.asarray(read_image(path))[..., 0])


def test_png_size_read_without_decoding(tmp_path, monkeypatch):
    """A PNG without EXIF is not decoded to learn its size (data sets list thousands)."""
    path = tmp_path / "plain.png"
    Image.fromarray(_gray_pattern()).save(path)

    def no_decoding(self):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decoding)
    assert read_image_size(path) == (24, 40)


def test_damaged_png_mask_is_one_quiet_line(tmp_path, capfd):
    """A damaged or truncated PNG mask: Pillow's one-line error, nothing from libpng/OpenCV."""
    noise = np.random.default_rng(0).integers(0, 256, (40, 60), dtype=np.uint8)
    damaged, truncated = tmp_path / "damaged.png", tmp_path / "truncated.png"
    Image.fromarray(noise).save(damaged)
    data = bytearray(damaged.read_bytes())
    truncated.write_bytes(bytes(data[: len(data) * 3 // 4]))
    data[data.index(b"IDAT") + 30] ^= 0xFF  # a flipped bit in the compressed pixels
    damaged.write_bytes(bytes(data))
    for path in (damaged, truncated):
        with pytest.raises(ImageReadError, match="cannot decode image") as caught:
            read_mask(path)
        assert str(caught.value).startswith(f"{path}: ") and "\n" not in str(caught.value)
    assert capfd.readouterr().err == ""


def test_float_tiff_mask_uses_pillow_rules(tmp_path):
    """OpenCV gives float values for a float TIFF: Pillow's rule (x255 when <= 1) applies."""
    path = tmp_path / "soft.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32), mode="F").save(path)
    np.testing.assert_array_equal(read_mask(path), [[0, 128, 255]])  # round(v * 255), by hand


def test_quiet_opencv_nests_and_restores():
    logging = cv2.utils.logging
    before = logging.getLogLevel()
    with quiet_opencv():
        with quiet_opencv():
            assert logging.getLogLevel() == logging.LOG_LEVEL_SILENT
        assert logging.getLogLevel() == logging.LOG_LEVEL_SILENT
    assert logging.getLogLevel() == before != logging.LOG_LEVEL_SILENT


def test_mask_rules_rgb_and_soft_values(tmp_path):
    rgb_path, soft_path = tmp_path / "rgb_mask.png", tmp_path / "soft.png"
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0] = [255, 255, 255]
    rgb[1] = [255, 0, 0]
    Image.fromarray(rgb).save(rgb_path)
    mask = read_mask(rgb_path)
    assert mask.dtype == np.uint8 and mask.shape == (4, 4)
    assert mask[0, 0] == 255 and mask[1, 0] == 76 and mask[2, 0] == 0  # 0.299·255 rounded
    soft = np.array([[0, 1, 128, 254, 255]], np.uint8)
    Image.fromarray(soft).save(soft_path)
    np.testing.assert_array_equal(read_mask(soft_path), soft)  # values kept as they are


def test_truncated_jpeg_is_one_line_error(tmp_path):
    path = tmp_path / "broken.jpg"
    Image.fromarray(_pattern(200, 150)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    path.write_bytes(b"not an image at all")
    with pytest.raises(ImageReadError, match="cannot decode"):
        read_mask(path)
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "missing.png")


def test_decompression_bomb_refused(tmp_path, monkeypatch, png_claiming):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(30000, 30000))  # 900 Mpx > MAX_PIXELS (400 Mpx)
    assert bomb.stat().st_size < 200
    for reader in (read_image, read_mask, read_image_size):
        with pytest.raises(ImageReadError, match="decompression bomb"):
            reader(bomb)
    small = tmp_path / "small.png"
    Image.fromarray(_pattern()).save(small)
    monkeypatch.setattr(image_io, "MAX_PIXELS", 100)  # 40×24 = 960 px > 100
    with pytest.raises(ImageReadError, match="decompression bomb"):
        read_image(small)
    monkeypatch.undo()
    assert read_image(small).size == (40, 24)
    assert Image.MAX_IMAGE_PIXELS not in (100, image_io.MAX_PIXELS)  # global restored


def test_unicode_path_with_spaces(tmp_path):
    folder = tmp_path / "폴더 이름"
    path = folder / "한글 파일 이름.png"
    write_png_atomic(path, _pattern())
    np.testing.assert_array_equal(np.asarray(read_image(path)), _pattern())
    assert read_image_size(path) == (24, 40)
    assert [p.name for p in folder.iterdir()] == ["한글 파일 이름.png"]  # no temp file left


def test_write_atomic_roundtrip_and_failure_cleanup(tmp_path, monkeypatch):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgba = np.dstack([_pattern(4, 3), np.full((3, 4), 9, np.uint8)])
    write_png_atomic(tmp_path / "gray.png", gray)
    write_png_atomic(tmp_path / "rgba.png", rgba)
    np.testing.assert_array_equal(read_mask(tmp_path / "gray.png"), gray)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "rgba.png")), rgba)

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(image_io.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_bytes_atomic(tmp_path / "out.bin", b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gray.png", "rgba.png"]


def test_remove_stale_temporaries(tmp_path):
    """Only our writers' temporary files go, and only when their writer is gone: a dead
    process's (whatever its age), another host's after a day. A live writer's, this process's
    open ones, a user's look-alikes (however old) and folders stay."""
    ours = AtomicFile(tmp_path / "latest.pth")  # open: this process is writing it
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine = temporary_prefix(tmp_path / "map.png")
    named = {
        "dead": mine.replace(f".{os.getpid()}.", f".{dead.pid}.") + "abcd1234.tmp",
        "dead_video": mine.replace(f".{os.getpid()}.", f".{dead.pid}.") + "abcd1234.tmp.mp4",
        "live": mine.replace(f".{os.getpid()}.", f".{os.getppid()}.") + "abcd1234.tmp",
        "foreign_new": ".a.png.sodtmp.0badc0de.12.abcd1234.tmp",
        "foreign_old": ".b.png.sodtmp.0badc0de.12.abcd1234.tmp",
    }
    users = [".DS_Store", "x.tmp", ".a.png.tmp", ".a.png.abcdefgh.tmp", ".c.sodtmp.1.2.3.tmp"]
    paths = {key: tmp_path / name for key, name in named.items()}
    for path in [*paths.values(), *(tmp_path / name for name in users)]:
        path.write_bytes(b"partial")
    (tmp_path / named["dead"].replace("map.png", "dir.png")).mkdir()
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in [paths["foreign_old"], *(tmp_path / name for name in users)]:
        os.utime(path, (two_days_ago, two_days_ago))

    gone = [paths["dead"], paths["dead_video"], paths["foreign_old"]]
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(gone)
    assert ours.tmp.exists() and paths["live"].exists() and paths["foreign_new"].exists()
    assert all((tmp_path / name).exists() for name in users)
    ours.discard()
    assert remove_stale_temporaries(tmp_path / "absent") == []


def test_is_image_file_any_case():
    assert is_image_file("a/B.JPG") and is_image_file("x.Webp") and is_image_file("y.jpeg")
    assert not is_image_file("clip.mp4") and not is_image_file("notes.txt")
