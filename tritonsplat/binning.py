"""Tile binning for free Gaussians, in torch operations only (no compile step at install).

Each Gaussian is listed once per tile its support touches: the 3-sigma ellipse q <= 9 of
DESIGN.md section 4, or its `alpha_min` contour where that is smaller. The list is sorted
by a 64-bit key (tile, then Gaussian index), so a tile's entries are contiguous and in
compositing order, and `tile_start` gives every tile's range. There is no cap on the
entries of a tile: the rasterizers loop over them all. The binning only decides what is
evaluated; the cut itself is applied exactly where alpha is computed, so the image does
not depend on the tile size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .constants import CUT_Q

_MARGIN = 1e-3  # pixels: a bounding box only needs to err on the large side


@dataclass
class Bins:
    """The binning of B images of N Gaussians into tiles."""

    tile_size: int
    tiles_y: int
    tiles_x: int
    pair_gaussian: Tensor  # [P] int64, b * N + n, sorted by (tile, Gaussian)
    pair_tile: Tensor  # [P] int64, b * tiles + tile
    tile_start: Tensor  # [B * tiles + 1] int64: tile t owns entries tile_start[t]:tile_start[t+1]

    @property
    def num_tiles(self) -> int:
        return self.tiles_y * self.tiles_x

    def counts(self) -> Tensor:  # [B * tiles]
        return self.tile_start[1:] - self.tile_start[:-1]


def support_radius(opacity: Tensor | None, shape, alpha_min: float, device, dtype) -> Tensor:
    """sqrt of the largest q at which alpha can be nonzero: 3, or less where alpha_min cuts
    first (o G >= alpha_min  <=>  q <= 2 ln(o / alpha_min)); 0 where alpha is always 0."""
    r2 = torch.full(shape, CUT_Q, device=device, dtype=dtype)
    if alpha_min > 0:
        o = torch.ones(shape, device=device, dtype=dtype) if opacity is None else opacity
        contour = 2.0 * torch.log(o.clamp_min(1e-30) / alpha_min)
        r2 = torch.minimum(r2, contour)
    return r2.clamp_min(0.0).sqrt()


def bin_gaussians(
    means: Tensor,  # [B, N, 2] image pixels (x, y)
    cholesky: Tensor,  # [B, N, 3]
    opacity: Tensor | None,  # [B, N]
    height: int,
    width: int,
    tile_size: int,
    alpha_min: float = 0.0,
) -> Bins:
    with torch.no_grad():
        b, n, _ = means.shape
        ty_n, tx_n = math.ceil(height / tile_size), math.ceil(width / tile_size)
        dev = means.device
        r = support_radius(opacity, (b, n), alpha_min, dev, means.dtype)
        l11, l21, l22 = cholesky.unbind(-1)
        half_x = r * l11.abs() * (1 + 1e-5) + _MARGIN  # sqrt(Sigma_xx) = |l11|
        half_y = r * torch.sqrt(l21 * l21 + l22 * l22) * (1 + 1e-5) + _MARGIN
        # pixel j (centre j + 0.5) is inside the box iff |j + 0.5 - m| <= half
        x0 = torch.ceil(means[..., 0] - half_x - 0.5).clamp(0, width - 1)
        x1 = torch.floor(means[..., 0] + half_x - 0.5).clamp(-1, width - 1)
        y0 = torch.ceil(means[..., 1] - half_y - 0.5).clamp(0, height - 1)
        y1 = torch.floor(means[..., 1] + half_y - 0.5).clamp(-1, height - 1)
        empty = (x1 < x0) | (y1 < y0) | (r <= 0)
        tx0, tx1 = (x0 // tile_size).long(), (x1 // tile_size).long()
        ty0, ty1 = (y0 // tile_size).long(), (y1 // tile_size).long()
        nx = (tx1 - tx0 + 1).clamp_min(0)
        counts = torch.where(empty, 0, nx * (ty1 - ty0 + 1).clamp_min(0)).reshape(-1)  # [B * N]
        total = int(counts.sum())
        gauss = torch.repeat_interleave(torch.arange(b * n, device=dev), counts, output_size=total)
        first = torch.cumsum(counts, 0) - counts
        local = torch.arange(total, device=dev) - first[gauss]
        nx_g = nx.reshape(-1)[gauss]
        tile_y = ty0.reshape(-1)[gauss] + local // nx_g
        tile_x = tx0.reshape(-1)[gauss] + local % nx_g
        tile = (gauss // n) * (ty_n * tx_n) + tile_y * tx_n + tile_x
        key, _ = torch.sort(tile * (b * n) + gauss)  # 64-bit: (tile, then Gaussian index)
        pair_tile, pair_gaussian = key // max(1, b * n), key % max(1, b * n)
        per_tile = torch.bincount(pair_tile, minlength=b * ty_n * tx_n)
        tile_start = torch.cat((per_tile.new_zeros(1), torch.cumsum(per_tile, 0)))
        return Bins(tile_size, ty_n, tx_n, pair_gaussian, pair_tile, tile_start)
