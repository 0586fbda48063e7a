"""Image-pyramid properties (spec §7): level shapes, exact reconstruction, constant maps."""

import numpy as np
import pytest
import torch

from lib.pyramid import ImagePyramid, gaussian_kernel_2d


@pytest.fixture(scope="module")
def pyramid():
    return ImagePyramid()


def test_kernel_matches_opencv_gaussian():
    import cv2

    g = cv2.getGaussianKernel(7, 1).astype(np.float64)
    expected = (g @ g.T).astype(np.float32)
    assert np.array_equal(gaussian_kernel_2d(7, 1).numpy(), expected)
    # Centre row quoted in the spec, float32.
    assert np.allclose(expected[3, :3], [0.001769009, 0.021550942, 0.096584626], atol=1e-9)


def test_kernel_is_not_in_the_state_dict(pyramid):
    assert dict(pyramid.state_dict()) == {}


@pytest.mark.parametrize("size", [(64, 64), (48, 80), (37, 50)])
def test_level_shapes(pyramid, size):
    x = torch.rand(2, 1, *size)
    reduced = pyramid.reduce(x)
    assert reduced.shape[-2:] == ((size[0] + 1) // 2, (size[1] + 1) // 2)
    assert pyramid.expand(reduced).shape[-2:] == (2 * reduced.shape[-2], 2 * reduced.shape[-1])
    levels = [x]
    for _ in range(3):
        levels.append(pyramid.reduce(levels[-1]))
    assert [tuple(t.shape[-2:]) for t in levels[1:]] == [
        tuple(-(-n // 2**k) for n in size) for k in (1, 2, 3)
    ]


@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_reconstruct_inverts_deconstruct(pyramid, size):
    torch.manual_seed(0)
    x = torch.rand(1, 1, *size, dtype=torch.float64)
    pyramid64 = ImagePyramid().double()
    reduced, laplacian = pyramid64.deconstruct(x)
    assert torch.allclose(pyramid64.reconstruct(reduced, laplacian), x, atol=1e-12)


def test_reduce_of_constant_is_constant_away_from_borders(pyramid):
    x = torch.full((1, 1, 40, 40), 0.7)
    reduced = pyramid.reduce(x)
    assert torch.allclose(reduced[..., 2:-2, 2:-2], torch.tensor(0.7), atol=1e-6)


def test_expand_inserts_zeros_then_blurs_with_four_times_the_kernel(pyramid):
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4, 4] = 1.0
    expanded = pyramid.expand(x)
    kernel = gaussian_kernel_2d() * 4
    # Away from borders the impulse at (8, 8) of the zero-inserted map spreads as 4·K.
    assert torch.allclose(expanded[0, 0, 5:12, 5:12], kernel, atol=1e-7)
