"""`rasterize` on the Triton kernels: free Gaussians binned into tiles (see `kernels.py`).

A tile is a unit: its rows are its binning entries (contiguous, in Gaussian order, as
many as there are: no cap), padded to a multiple of RUN = 4, in coordinates centred on
the tile. The forward bins, lays out the row table and writes the image directly, and
returns the binning and the table (a `SavedBinning`) for the backward, which reads them
as they are. The backward writes one gradient row per entry, and the entries of each
Gaussian are summed by a segment reduction over the entries sorted by Gaussian:
deterministic, with no atomics.

Host syncs: two per forward (the binning's entry count, then the table's row and work
counts together, both through `binning.host_sync`), none in the backward."""

from __future__ import annotations

import torch
from torch import Tensor

from ...binning import SavedBinning, bin_gaussians, host_sync, tile_grid
from ...settings import RasterizeSettings
from .launch import BWD_WARPS, RUN, Units, gradients, on_device, padded_rows, prepare, render


def _units(cfg: RasterizeSettings, count: int, rows: int, row_start, row_gaussian, row_tile, work) -> Units:
    t = cfg.tile_size
    ty, tx = tile_grid(cfg)
    return Units(
        count=count, side=t, offset=0.5 - 0.5 * t, rows=rows, grid_h=ty, grid_w=tx, free=True, tile=t,
        unit_rows=row_start, src=row_gaussian, unit=row_tile, work=work,
    )  # fmt: skip


def tile_rows(bins) -> dict[str, Tensor]:
    """The row table's index: rows of every tile's entries (entry e of tile t is row
    row_start[t] + e - tile_start[t]), every row's Gaussian and tile, and the backward's
    (tile, chunk) work list. One host sync: the row and work counts, read together."""
    counts = bins.counts()
    dev = counts.device
    padded = (counts + RUN - 1) // RUN * RUN
    row_start = torch.cat((padded.new_zeros(1), torch.cumsum(padded, 0)))
    per_program = RUN * 32 * BWD_WARPS
    chunks = (padded + per_program - 1) // per_program
    total_rows, programs = host_sync(torch.stack((row_start[-1], chunks.sum())))
    rows = padded_rows(total_rows)
    entry = torch.arange(bins.pair_gaussian.numel(), device=dev)
    entry_row = row_start[bins.pair_tile] + entry - bins.tile_start[bins.pair_tile]
    row_gaussian = torch.full((rows,), -1, dtype=torch.int64, device=dev)
    row_gaussian[entry_row] = bins.pair_gaussian
    row_tile = torch.zeros(rows, dtype=torch.int64, device=dev)
    row_tile[entry_row] = bins.pair_tile
    work_tile = torch.repeat_interleave(torch.arange(counts.numel(), device=dev), chunks, output_size=programs)
    work_chunk = torch.arange(programs, device=dev) - (torch.cumsum(chunks, 0) - chunks)[work_tile]
    work = torch.stack((work_tile, work_chunk), dim=1).contiguous()
    return dict(entry_row=entry_row, row_start=row_start, row_gaussian=row_gaussian, row_tile=row_tile, work=work)


def saved_units(saved: SavedBinning, cfg: RasterizeSettings) -> Units:
    """The forward's units, from its saved record."""
    count = saved.tile_start.numel() - 1
    return _units(cfg, count, saved.table.shape[1], saved.row_start, saved.row_gaussian, saved.row_tile, saved.work)


def _flat(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.reshape(t.shape[0] * t.shape[1], *t.shape[2:])


def forward(means, cholesky, colors, opacity, background, cfg: RasterizeSettings):
    b, n, c = colors.shape
    out = colors.new_empty(b, c, cfg.height, cfg.width)
    with on_device(colors):
        bins = bin_gaussians(means, cholesky, opacity, cfg.height, cfg.width, cfg.tile_size, cfg.alpha_min)
        if n == 0:
            out = out.zero_() if background is None else out.copy_(background.view(1, c, 1, 1).expand_as(out))
            return out, SavedBinning.of(bins, colors)
        rows = tile_rows(bins)
        units = _units(cfg, bins.counts().numel(), rows["row_gaussian"].numel(), rows["row_start"],
                       rows["row_gaussian"], rows["row_tile"], rows["work"])  # fmt: skip
        table = prepare(units, _flat(means), _flat(cholesky), _flat(opacity), _flat(colors))
        strides = (c * cfg.height * cfg.width, cfg.height * cfg.width, cfg.width, 1, cfg.tile_size * cfg.width,
                   cfg.tile_size)  # fmt: skip
        render(units, table, out, strides, cfg, opacity, background, cfg.height, cfg.width)
    return out, SavedBinning.of(bins, colors, table=table, **rows)


def tile_gradient(grad_image: Tensor, tiles_y: int, tiles_x: int, tile_size: int) -> Tensor:
    """[B, C, H, W] -> the gradient of every tile pixel, [B * tiles, C, T^2] (zero past the image)."""
    b, c, h, w = grad_image.shape
    t = tile_size
    padded = torch.nn.functional.pad(grad_image, (0, tiles_x * t - w, 0, tiles_y * t - h))
    tiles = padded.reshape(b, c, tiles_y, t, tiles_x, t).permute(0, 2, 4, 1, 3, 5)
    return tiles.reshape(b * tiles_y * tiles_x, c, t * t).contiguous()


def per_gaussian_sums(rows: Tensor, saved: SavedBinning, gaussians: int) -> Tensor:
    """[F, R] gradient rows -> [gaussians, F]: each Gaussian's entries summed in a fixed
    order (its entries by tile), with no host sync: the entries' rows and Gaussians are
    the saved binning's."""
    gauss = saved.entry_gaussian
    order = torch.argsort(gauss, stable=True)
    lengths = torch.zeros(gaussians, dtype=torch.int64, device=gauss.device)
    lengths.scatter_add_(0, gauss, torch.ones_like(gauss))
    return torch.segment_reduce(rows[:, saved.entry_row[order]].t(), "sum", lengths=lengths, axis=0, unsafe=True)


def backward(grad_image, means, cholesky, colors, opacity, background, cfg: RasterizeSettings, *, saved):
    b, n, c = colors.shape
    if n == 0:
        d_bg = None if background is None else grad_image.sum((0, 2, 3))
        zeros = [torch.zeros_like(t) if t is not None else None for t in (means, cholesky, colors, opacity)]
        return (*zeros, d_bg)
    with on_device(colors):
        units = saved_units(saved, cfg)
        gcan = tile_gradient(grad_image, units.grid_h, units.grid_w, cfg.tile_size)
        d_geo, d_col, d_bg = gradients(
            units, saved.table, _flat(means), _flat(cholesky), gcan, cfg, _flat(opacity), background
        )  # fmt: skip
        per_gaussian = per_gaussian_sums(torch.cat((d_geo, d_col), 0), saved, b * n)  # [B*N, 6 + C]
    per_gaussian = per_gaussian.reshape(b, n, 6 + c)
    return (
        per_gaussian[..., 0:2].contiguous(),
        per_gaussian[..., 2:5].contiguous(),
        per_gaussian[..., 6:].contiguous(),
        None if opacity is None else per_gaussian[..., 5].contiguous(),
        d_bg,
    )
