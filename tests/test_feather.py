"""Feathering tables: a partition of unity over the image, the windows of docs/design.md."""

import itertools

import pytest
import torch

from tritonsplat.feather import feather_tables, fold_canvases, window_profile


@pytest.mark.parametrize("window,overlap", list(itertools.product(["linear", "cosine", "box"], [0, 1, 3, 4])))
def test_weights_sum_to_one_on_every_pixel(window, overlap):
    hp, wp, p = 3, 4, 8
    s = p + 2 * overlap
    ty, tx = feather_tables(hp, wp, p, overlap, window, torch.device("cpu"), torch.float64)
    w = ty[:, None, :, None] * tx[None, :, None, :]  # [Hp, Wp, S, S]
    cols = w.permute(2, 3, 0, 1).reshape(1, s * s, hp * wp)
    total = fold_canvases(cols, hp, wp, p, overlap)
    torch.testing.assert_close(total, torch.ones_like(total))


def test_linear_ramps_of_neighbours_sum_to_one_before_normalising():
    p, o = 8, 3
    t = torch.arange(p + 2 * o, dtype=torch.float64) - o + 0.5
    phi = window_profile(t, p, o, "linear")
    # the band at the right edge of one patch is the left band of its neighbour (t - P)
    right = phi[t > p - o]
    left = window_profile(t[t > p - o] - p, p, o, "linear")
    torch.testing.assert_close(right + left, torch.ones_like(right))
    assert phi[(t > o) & (t < p - o)].eq(1).all()


def test_box_with_overlap_one_averages_the_two_patches():
    ty, tx = feather_tables(1, 2, 4, 1, "box", torch.device("cpu"), torch.float64)
    # patch 0's canvas columns: -1 (off-image), 0..3 (core), 4 (in patch 1's core)
    torch.testing.assert_close(tx[0], torch.tensor([0.0, 1.0, 1.0, 1.0, 0.5, 0.5], dtype=torch.float64))
    torch.testing.assert_close(tx[1], torch.tensor([0.5, 0.5, 1.0, 1.0, 1.0, 0.0], dtype=torch.float64))
