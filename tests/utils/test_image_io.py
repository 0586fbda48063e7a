"""utils.image_io: every awkward input of the "Robustness" issue, built on the fly with PIL.

Expected values come from Pillow's / OpenCV's own conversions of the same file (the rules in
the module docstring) or from hand computation where stated.
"""

import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from utils import image_io
from utils.image_io import (
    ImageReadError,
    is_image_file,
    read_image,
    read_image_size,
    read_mask,
    write_bytes_atomic,
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
    np.testing.assert_array_equal(
        read_mask(palette_path), cv2.cvtColor(expected_rgb, cv2.COLOR_RGB2GRAY)
    )
    np.testing.assert_array_equal(np.asarray(read_image(rgba_path)), _pattern())  # alpha dropped


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


def _png_claiming(width, height):
    """A tiny PNG whose header claims ``width``×``height`` (8-bit gray), built by hand."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_claiming(30000, 30000))  # 900 Mpx > MAX_PIXELS (400 Mpx)
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


def test_is_image_file_any_case():
    assert is_image_file("a/B.JPG") and is_image_file("x.Webp") and is_image_file("y.jpeg")
    assert not is_image_file("clip.mp4") and not is_image_file("notes.txt")
