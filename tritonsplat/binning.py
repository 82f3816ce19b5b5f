"""Tile binning for free Gaussians, in torch operations only (no compile step at install).

Each Gaussian is listed once per tile its support touches: the 3-sigma ellipse q <= 9 of
docs/design.md section 4, or its `alpha_min` contour where that is smaller. The list is sorted
by a 64-bit key (tile, then Gaussian index), so a tile's entries are contiguous and in
compositing order, and `tile_start` gives every tile's range. There is no cap on the
entries of a tile: the rasterizers loop over them all. The binning only decides what is
evaluated; the cut itself is applied exactly where alpha is computed, so the image does
not depend on the tile size.

The binning is a step of its own in `rasterize`: its forward bins once and returns the
result as a `SavedBinning` record, which the autograd context keeps by name for the
backward, so the backward neither sorts nor prepares again. Reading the number of
entries is the binning's one host sync (`host_sync` counts it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from .constants import CUT_Q

_MARGIN = 1e-3  # pixels: a bounding box only needs to err on the large side

host_syncs = 0  # how many times the rasterizers have read a device value on the host


def host_sync(values: Tensor) -> list[int]:
    """`values` (a 0-d or 1-d integer tensor) read on the host: a device sync on CUDA. Every
    size the free rasterizer needs on the host is read here, and counted."""
    global host_syncs
    host_syncs += 1
    out = values.tolist()
    return out if isinstance(out, list) else [out]


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
        (total,) = host_sync(counts.sum())
        gauss = torch.repeat_interleave(torch.arange(b * n, device=dev), counts, output_size=total)
        first = torch.cumsum(counts, 0) - counts
        local = torch.arange(total, device=dev) - first[gauss]
        nx_g = nx.reshape(-1)[gauss]
        tile_y = ty0.reshape(-1)[gauss] + local // nx_g
        tile_x = tx0.reshape(-1)[gauss] + local % nx_g
        tile = (gauss // n) * (ty_n * tx_n) + tile_y * tx_n + tile_x
        key, _ = torch.sort(tile * (b * n) + gauss)  # 64-bit: (tile, then Gaussian index)
        pair_tile, pair_gaussian = key // max(1, b * n), key % max(1, b * n)
        # the entries are sorted by tile: tile t starts where the first entry >= t would be
        tile_start = torch.searchsorted(pair_tile, torch.arange(b * ty_n * tx_n + 1, device=dev))
        return Bins(tile_size, ty_n, tx_n, pair_gaussian, pair_tile, tile_start)


def tile_grid(cfg) -> tuple[int, int]:
    """(tiles down, tiles across) of a `RasterizeSettings`."""
    return math.ceil(cfg.height / cfg.tile_size), math.ceil(cfg.width / cfg.tile_size)


class SavedBinning(NamedTuple):
    """What the forward of `rasterize` computes once and the backward reads, by name. The
    torch path fills the binning fields; the Triton path also the row table and its index
    (the torch path leaves those empty)."""

    tile_start: Tensor  # [B * tiles + 1] int64: tile t owns entries tile_start[t]:tile_start[t + 1]
    entry_gaussian: Tensor  # [P] int64 sorted entries: b * N + n, ordered by (tile, Gaussian)
    entry_tile: Tensor  # [P] int64 b * tiles + tile of every entry
    entry_row: Tensor  # [P] int64 the entry's row of the row table
    row_start: Tensor  # [B * tiles + 1] int64: tile t owns rows row_start[t]:row_start[t + 1]
    row_gaussian: Tensor  # [R] int64 the Gaussian of every row, -1 for padding
    row_tile: Tensor  # [R] int64 the tile of every row
    work: Tensor  # [programs, 2] int64 (tile, chunk) of every backward program
    table: Tensor  # [6 + C, R] the row table

    @classmethod
    def of(cls, bins: Bins, colors: Tensor, **rows: Tensor) -> SavedBinning:
        """The binning's fields from `bins`; the row fields given, or empty (distinct
        tensors: a custom op's outputs may not alias one another)."""
        names = ("entry_row", "row_start", "row_gaussian", "row_tile")
        empty = {name: bins.tile_start.new_empty(0) for name in names if name not in rows}
        empty.setdefault("work", bins.tile_start.new_empty(0, 2))
        empty.setdefault("table", colors.new_empty(colors.shape[-1] + 6, 0))
        return cls(bins.tile_start, bins.pair_gaussian, bins.pair_tile, **{**empty, **rows})

    @classmethod
    def fake(cls, colors: Tensor, cfg) -> SavedBinning:
        """Fake values for torch.compile: the entry and row counts are known only at run time."""
        ctx = torch.library.get_ctx()
        ty, tx = tile_grid(cfg)
        starts = colors.new_empty(colors.shape[0] * ty * tx + 1, dtype=torch.int64)

        def index(*shape):
            return colors.new_empty(ctx.new_dynamic_size(), *shape, dtype=torch.int64)

        table = colors.new_empty(colors.shape[-1] + 6, ctx.new_dynamic_size())
        return cls(starts, index(), index(), index(), index(), index(), index(), index(2), table)

    def bins(self, cfg) -> Bins:
        ty, tx = tile_grid(cfg)
        return Bins(cfg.tile_size, ty, tx, self.entry_gaussian, self.entry_tile, self.tile_start)
