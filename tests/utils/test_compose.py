"""utils/inference/compose.py: output types. Expected numbers are hand computations of the
formulas in architecture §16.4 (img·m + background·(1 − m), alpha = floor(m·255)) on small
arrays, plus OpenCV's own GaussianBlur/Canny for the blur and overlay types. These formulas are
the ``foreground="none"`` outputs (the raw image as the foreground); the default estimation is
tested in tests/utils/test_foreground.py."""

import cv2
import numpy as np
import pytest
from skimage import data

from utils.inference.compose import GREEN, compose, parse_output_type, prepare_map, to_uint8


@pytest.fixture(scope="module")
def photo():
    """A real photo (skimage's coffee, 400x600) shrunk to 60x90 RGB uint8."""
    return cv2.resize(data.coffee(), (90, 60), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def ramp(photo):
    """A map rising from 0 (left) to 1 (right) with a bright square in the middle."""
    h, w = photo.shape[:2]
    m = np.tile(np.linspace(0, 1, w, dtype=np.float32), (h, 1))
    m[20:40, 30:60] = 1
    return m


def test_to_uint8_floors_like_numpy_truncation():
    # floor(m·255) in float32 (spec §16.3): 0.999999·255 = 254.99975 -> 254, 0.5 -> 127.
    m = np.array([0.0, 0.5, 0.999999, 1.0, 0.2], np.float32)
    assert to_uint8(m).tolist() == [0, 127, 254, 255, 51]
    assert to_uint8(m).dtype == np.uint8


@pytest.mark.parametrize(
    "text, colour",
    [("[255,0,0]", (255, 0, 0)), (" [ 1 , 22 ,  3 ] ", (1, 22, 3)), ("[0,0,0]", (0, 0, 0))],
)
def test_colour_parsing(text, colour):
    kind = parse_output_type(text)
    assert (kind.kind, kind.colour, kind.label) == (
        "colour",
        colour,
        "colour_{}_{}_{}".format(*colour),
    )


@pytest.mark.parametrize(
    "text",
    [
        "[256,0,0]",
        "[1,2]",
        "[1,2,3,4]",
        "(1,2,3)",
        "[1,2,3]+[0]",
        "[__import__('os'),0,0]",
        "[-1,0,0]",
    ],
)
def test_bad_colours_are_refused_without_evaluation(text):
    with pytest.raises(ValueError, match="colour must be"):
        parse_output_type(text)


def test_unknown_types_and_bad_backgrounds(tmp_path):
    with pytest.raises(ValueError, match="unknown output type 'grey'.*map, rgba"):
        parse_output_type("grey")
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(ValueError, match="not an image file"):
        parse_output_type(str(notes))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(ValueError, match="broken.jpg"):
        parse_output_type(str(broken))
    assert parse_output_type("GREEN").kind == "green"  # names are case-insensitive


def test_map_and_rgba(photo, ramp):
    gray = compose(photo, ramp, "map")
    assert gray.shape == ramp.shape and gray.dtype == np.uint8
    np.testing.assert_array_equal(gray, np.floor(ramp * np.float32(255)).astype(np.uint8))
    rgba = compose(photo, ramp, "rgba", foreground="none")
    assert rgba.shape == (*ramp.shape, 4) and rgba.dtype == np.uint8
    np.testing.assert_array_equal(rgba[..., :3], photo)
    np.testing.assert_array_equal(rgba[..., 3], gray)


@pytest.mark.parametrize(
    "name, background", [("green", GREEN), ("white", (255, 255, 255)), ("[10,20,30]", (10, 20, 30))]
)
def test_colour_backgrounds(photo, name, background):
    m = np.zeros(photo.shape[:2], np.float32)
    m[:, :30] = 1
    m[:, 30:60] = 0.5
    out = compose(photo, m, name, foreground="none")
    assert out.shape == photo.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :30], photo[:, :30])  # m = 1: the image
    assert (out[:, 60:] == np.array(background, np.uint8)).all()  # m = 0: the background
    half = (
        photo[:, 30:60].astype(np.float32) * 0.5 + np.float32(0.5) * np.float32(background)
    ).astype(np.uint8)
    np.testing.assert_array_equal(out[:, 30:60], half)  # truncated, as the reference casts


def test_blur(photo, ramp):
    out = compose(photo, ramp, "blur", foreground="none")
    blurred = cv2.GaussianBlur(photo, (0, 0), 15)
    weight = ramp[..., None]
    expected = photo.astype(np.float32) * weight + blurred.astype(np.float32) * (1 - weight)
    np.testing.assert_array_equal(out, expected.astype(np.uint8))
    np.testing.assert_array_equal(out[20:40, 30:60], photo[20:40, 30:60])  # m = 1 stays sharp


def test_background_image(tmp_path, photo):
    background = np.zeros((30, 45, 3), np.uint8)
    background[:, :, 2] = 200  # blue
    path = tmp_path / "sea.png"
    cv2.imwrite(str(path), background[..., ::-1])
    kind = parse_output_type(str(path))
    assert (kind.kind, kind.label) == ("image", "bg_sea")
    out = compose(photo, np.zeros(photo.shape[:2], np.float32), kind)
    assert out.shape == photo.shape
    assert (out == np.array([0, 0, 200], np.uint8)).all()  # resized to the photo, m = 0


def test_overlay_tints_inside_and_outlines(photo):
    m = np.zeros(photo.shape[:2], np.float32)
    m[15:45, 20:70] = 0.9
    out = compose(photo, m, "overlay")
    assert out.shape == photo.shape and out.dtype == np.uint8
    tinted = ((photo.astype(np.float32) + np.float32(GREEN)) / 2).astype(np.uint8)
    np.testing.assert_array_equal(out[25:35, 30:60], tinted[25:35, 30:60])  # inside, off the edge
    np.testing.assert_array_equal(out[:5], photo[:5])  # far outside: untouched
    assert (out[15, 30:60] == np.array(GREEN, np.uint8)).all()  # the outline


def test_threshold_and_reverse(photo):
    m = np.array([[0.2, 0.5, 0.6, 1.0]], np.float32)
    image = np.full((1, 4, 3), 100, np.uint8)
    assert prepare_map(m, threshold=0.5).tolist() == [[0, 0, 1, 1]]  # strict m > threshold
    assert compose(image, m, "map", threshold=0.5).tolist() == [[0, 0, 255, 255]]
    # float32: 1 - 0.6 = 0.39999998, times 255 = 101.99999 -> 101 (floor, not rounding)
    assert compose(image, m, "map", reverse=True).tolist() == [[204, 127, 101, 0]]
    assert compose(image, m, "map", threshold=0.5, reverse=True).tolist() == [[255, 255, 0, 0]]
    out = compose(image, m, "white", threshold=0.5, reverse=True)
    assert out[0, :, 0].tolist() == [100, 100, 255, 255]


def test_size_mismatch_is_an_error(photo):
    with pytest.raises(ValueError, match="differs from image size"):
        compose(photo, np.zeros((5, 5), np.float32), "map")
