"""Tile binning: sorted, complete (every tile where a Gaussian has alpha > 0 is listed),
and no larger than each Gaussian's bounding box."""

import torch

from tritonsplat.binning import bin_gaussians
from tritonsplat.spec import gaussian_alpha
from tritonsplat.testing import random_free_field


def test_bins_are_sorted_and_complete():
    h, w, t = 37, 50, 8
    f = random_free_field(2, 80, 1, h, w, seed=1, sigma=(0.3, 6.0))
    bins = bin_gaussians(f["means"], f["cholesky"], f["opacity"], h, w, t, alpha_min=0.05)
    key = bins.pair_tile * (2 * 80) + bins.pair_gaussian
    assert (key[1:] > key[:-1]).all()  # by tile, then Gaussian: compositing order
    assert bins.tile_start[-1] == key.numel()
    assert torch.equal(bins.pair_tile, torch.repeat_interleave(torch.arange(2 * bins.num_tiles), bins.counts()))
    listed = set(zip(bins.pair_tile.tolist(), bins.pair_gaussian.tolist(), strict=True))
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    for b in range(2):
        dx = xs.reshape(-1) - f["means"][b, :, 0:1]
        dy = ys.reshape(-1) - f["means"][b, :, 1:2]
        alpha = gaussian_alpha(dx, dy, f["cholesky"][b], f["opacity"][b], 1.0, 0.05, cut=9.0)  # [N, H*W]
        g, p = torch.nonzero(alpha > 0, as_tuple=True)
        tile = (p // w // t) * bins.tiles_x + (p % w // t) + b * bins.num_tiles
        needed = set(zip(tile.tolist(), (g + b * 80).tolist(), strict=True))
        assert needed <= listed
    # and tight: every listed tile meets the Gaussian's 3-sigma bounding box
    gb, gn = bins.pair_gaussian // 80, bins.pair_gaussian % 80
    m, ch = f["means"][gb, gn], f["cholesky"][gb, gn]
    half = torch.stack((3 * ch[:, 0].abs(), 3 * ch[:, 1:].norm(dim=-1)), -1) + 1e-2
    local = bins.pair_tile % bins.num_tiles
    lo = torch.stack((local % bins.tiles_x, local // bins.tiles_x), -1) * t
    assert ((m + half >= lo) & (m - half <= lo + t)).all()


def test_gaussians_below_alpha_min_are_not_binned():
    means = torch.tensor([[[4.0, 4.0], [9.0, 9.0]]])
    chol = torch.tensor([[[2.0, 0.0, 2.0], [2.0, 0.0, 2.0]]])
    opacity = torch.tensor([[0.01, 0.5]])
    bins = bin_gaussians(means, chol, opacity, 16, 16, 4, alpha_min=0.02)
    assert set(bins.pair_gaussian.tolist()) == {1}
