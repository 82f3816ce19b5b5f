"""tritonsplat.viz against ellipses worked out by hand, in both parameter layouts."""

import math

import numpy as np
import pytest
import torch

from tritonsplat import cholesky_from_scale_rotation
from tritonsplat.viz import draw_gaussians, ellipse_pixels, image_means

RED = (255, 0, 0)


def _pixels(mean, chol, sigma, size=32, outline=False):
    rows, cols, owner = ellipse_pixels(np.array([mean]), np.array([chol]), sigma, size, size, outline=outline)
    assert (owner == 0).all()
    return set(zip(rows.tolist(), cols.tolist(), strict=True))


def _around(row, col, offsets):
    """(dx, dy) offsets from pixel (row, col) -> {(row + dy, col + dx)}."""
    return {(row + dy, col + dx) for dx, dy in offsets}


def test_circle_on_a_pixel_corner():
    # centre (10, 10), radius 2: pixel centres lie at offsets +-0.5, +-1.5; those with
    # dx^2 + dy^2 <= 4 are (0.5, 0.5) (0.5) and (1.5, 0.5) (2.5), not (1.5, 1.5) (4.5): 12 pixels
    got = _pixels((10.0, 10.0), (2.0, 0.0, 2.0), 1)
    want = {(r, c) for r in (9, 10) for c in range(8, 12)} | {(r, c) for r in (8, 11) for c in (9, 10)}
    assert got == want


def test_three_sigma_circle_is_the_lattice_disc():
    # unit Gaussian on the centre of pixel (10, 20) at 3 sigma: the integer (dx, dy) with
    # dx^2 + dy^2 <= 9, which is 7 + 2*5 + 2*5 + 2 = 29 pixels
    got = _pixels((20.5, 10.5), (1.0, 0.0, 1.0), 3)
    want = _around(10, 20, [(dx, dy) for dx in range(-3, 4) for dy in range(-3, 4) if dx * dx + dy * dy <= 9])
    assert len(want) == 29 and got == want


def test_outline_of_the_radius_three_disc():
    # interior = disc pixels whose 4 neighbours are all in the disc: the centre, its 4
    # neighbours, the 4 diagonals (1, 1) and the 4 at distance 2 on the axes: 13 of 29
    got = _pixels((20.5, 10.5), (1.0, 0.0, 1.0), 3, outline=True)
    interior = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1),
                (2, 0), (-2, 0), (0, 2), (0, -2)]  # fmt: skip
    disc = [(dx, dy) for dx in range(-3, 4) for dy in range(-3, 4) if dx * dx + dy * dy <= 9]
    assert got == _around(10, 20, [o for o in disc if o not in interior])
    assert len(got) == 16


def test_axis_aligned_ellipse():
    # sigma_x = 3.2, sigma_y = 1.2 on the centre of pixel (10, 20), 1 sigma: row 10 takes
    # |dx| <= 3.2 (7 pixels); rows 9 and 11 (dy^2 / 1.44 = 0.69) take (dx / 3.2)^2 <= 0.31,
    # |dx| <= 1.77 (3 pixels each); rows 8 and 12 (2.78) none
    got = _pixels((20.5, 10.5), (3.2, 0.0, 1.2), 1)
    assert got == _around(10, 20, [(dx, 0) for dx in range(-3, 4)] + [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 1)])


def test_rotated_ellipse():
    # sigma 4 along (1, 1) / sqrt 2 (down-right on the image), sigma 1 across it, on the
    # centre of pixel (16, 16): q = ((dx + dy) / sqrt2 / 4)^2 + ((dx - dy) / sqrt2)^2 <= 1
    # holds for (0,0); (1,0) and its 3 turns (0.53); (1,1), (2,2) and their opposites
    # (0.06, 0.25); (2,1), (1,2) and their opposites (0.78); not for (3,3) (1.13),
    # (2,0) (2.06), (1,-1) (2), (3,2) (1.28)
    chol = cholesky_from_scale_rotation(torch.tensor([4.0, 1.0]), torch.tensor(math.pi / 4)).tolist()
    got = _pixels((16.5, 16.5), chol, 1)
    want = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (2, 2), (-1, -1), (-2, -2),
            (2, 1), (1, 2), (-2, -1), (-1, -2)]  # fmt: skip
    assert got == _around(16, 16, want)


def test_clipped_at_the_image_edge_and_huge_gaussians():
    # a radius-3 disc on pixel (0, 0): only its quarter on the image, rows of 4 + 3 + 3 + 1 = 11 pixels
    got = _pixels((0.5, 0.5), (1.0, 0.0, 1.0), 3, size=8)
    assert got == {(r, c) for r in range(4) for c in range(4) if r * r + c * c <= 9} and len(got) == 11
    # one far larger than the image covers all of it, its outline none of it
    assert len(_pixels((4.0, 4.0), (1e4, 0.0, 1e4), 1, size=8)) == 64
    assert _pixels((4.0, 4.0), (1e4, 0.0, 1e4), 1, size=8, outline=True) == set()
    assert _pixels((-50.0, 4.0), (1.0, 0.0, 1.0), 3, size=8) == set()


def test_fill_blends_the_color_and_overlaps_average():
    image = np.full((16, 16, 3), 100, np.uint8)
    means = torch.tensor([[[4.5, 4.5], [5.5, 4.5]]])  # two unit circles one pixel apart
    # 1 sigma of 1.2: the pixel and its 4 neighbours (1 / 1.44 <= 1 < 2 / 1.44)
    chol = torch.tensor([[[1.2, 0.0, 1.2], [1.2, 0.0, 1.2]]])
    colors = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    out = draw_gaussians(image, means, chol, colors, style="fill", alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == (16, 16, 3)
    assert out[4, 3].tolist() == [178, 50, 50]  # only the red one: (100 + 255) / 2 rounded
    assert out[4, 6].tolist() == [50, 50, 178]  # only the blue one
    assert out[4, 4].tolist() == [114, 50, 114]  # both: 0.5 * 100 + 0.5 * mean(red, blue)
    assert (out[10:, 10:] == 100).all()
    changed = np.argwhere((out != 100).any(-1))
    assert len(changed) == 8  # two 5-pixel crosses sharing 2 pixels


def test_patch_layout_matches_the_free_layout():
    # patch (u=1, v=2) of 8 x 8 patches has its origin at image (x, y) = (16, 8)
    means = torch.zeros(1, 2, 3, 1, 2)
    chol = torch.ones(1, 2, 3, 1, 3) * torch.tensor([1.0, 0.0, 1.0])
    means[0, 1, 2, 0] = torch.tensor([2.5, 3.5])
    xy = image_means(means, patch_size=8)
    assert xy.shape == (1, 6, 2) and xy[0, 5].tolist() == [18.5, 11.5]
    keep = torch.zeros(1, 2, 3, 1, dtype=torch.bool)
    keep[0, 1, 2, 0] = True
    image = np.zeros((16, 24, 3), np.uint8)
    patches = draw_gaussians(image, means, chol, RED, patch_size=8, sigma=3, style="outline", keep=keep)
    free = draw_gaussians(image, torch.tensor([[[18.5, 11.5]]]), torch.tensor([[[1.0, 0.0, 1.0]]]), RED, sigma=3)
    assert np.array_equal(patches, free)
    assert len(np.argwhere(free.any(-1))) == 16  # the outline of the radius-3 disc, as above
    assert free[11, 18 + 3].tolist() == list(RED)


def test_default_colors_and_tensor_images():
    image = torch.zeros(1, 3, 8, 8)
    image[:, 1] = 0.4  # a dark green, 102
    means, chol = torch.tensor([[[4.0, 4.0]]]), torch.tensor([[[1.0, 0.0, 1.0]]])
    filled = draw_gaussians(image, means, chol, style="fill", alpha=1.0)  # its color: the image's under it
    assert (filled == [0, 102, 0]).all()
    outlined = draw_gaussians(image, means, chol, sigma=1)
    assert outlined[4, 3].tolist() == [255, 214, 0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(means=torch.zeros(1, 2, 2, 1, 2), chol=torch.ones(1, 2, 2, 1, 3)), "patch_size"),
        (dict(means=torch.zeros(2, 2), chol=torch.ones(2, 3)), "means: expected"),
        (dict(means=torch.zeros(1, 2, 2), chol=torch.ones(1, 3, 3)), "cholesky: expected shape"),
        (dict(means=torch.zeros(1, 2, 2), chol=torch.ones(1, 2, 3), style="dots"), "style"),
        (dict(means=torch.zeros(1, 2, 2), chol=torch.ones(1, 2, 3), sigma=0), "sigma"),
        (dict(means=torch.zeros(1, 2, 2), chol=-torch.ones(1, 2, 3)), "positive diagonal"),
        (dict(means=torch.full((1, 2, 2), float("nan")), chol=torch.ones(1, 2, 3)), "finite"),
    ],
    ids=["no-patch-size", "bad-means", "bad-cholesky", "bad-style", "bad-sigma", "negative-diagonal", "nan"],
)
def test_errors(kwargs, match):
    means, chol = kwargs.pop("means"), kwargs.pop("chol")
    with pytest.raises(ValueError, match=match):
        draw_gaussians(np.zeros((8, 8, 3), np.uint8), means, chol, **kwargs)
