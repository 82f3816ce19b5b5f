"""`rasterize` on the Triton kernels: free Gaussians binned into tiles (see `kernels.py`).

A tile is a unit: its rows are its binning entries (contiguous, in Gaussian order, as
many as there are: no cap), padded to a multiple of 4, in coordinates centred on the
tile. The forward writes the image directly; the backward writes one gradient row per
entry, and the entries of each Gaussian are summed by a segment reduction over the
entries sorted by Gaussian: deterministic, with no atomics."""

from __future__ import annotations

import torch
from torch import Tensor

from ...binning import bin_gaussians
from ...settings import RasterizeSettings
from .launch import BWD_WARPS, RUN, Units, gradients, on_device, padded_rows, prepare, render


def tile_units(bins) -> Units:
    """Rows of every tile's entries: entry e of tile t is row unit_rows[t] + e - tile_start[t]."""
    counts = bins.counts()
    padded = (counts + RUN - 1) // RUN * RUN
    unit_rows = torch.cat((padded.new_zeros(1), torch.cumsum(padded, 0)))
    total = int(unit_rows[-1])  # the one host sync of the launch: the table's size
    rows = padded_rows(total)
    entry = torch.arange(bins.pair_gaussian.numel(), device=counts.device)
    row = unit_rows[bins.pair_tile] + entry - bins.tile_start[bins.pair_tile]
    src = torch.full((rows,), -1, dtype=torch.int64, device=counts.device)
    src[row] = bins.pair_gaussian
    unit = torch.zeros(rows, dtype=torch.int64, device=counts.device)
    unit[row] = bins.pair_tile
    per_program = RUN * 32 * BWD_WARPS
    chunks = (padded + per_program - 1) // per_program
    work_unit = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), chunks)
    work_chunk = torch.arange(work_unit.numel(), device=counts.device) - (torch.cumsum(chunks, 0) - chunks)[work_unit]
    t = bins.tile_size
    return Units(
        count=counts.numel(), side=t, offset=0.5 - 0.5 * t, rows=rows, grid_h=bins.tiles_y, grid_w=bins.tiles_x,
        free=True, tile=t, unit_rows=unit_rows, src=src, unit=unit,
        work=torch.stack((work_unit, work_chunk), dim=1).contiguous(),
    )  # fmt: skip


def _flat(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.reshape(t.shape[0] * t.shape[1], *t.shape[2:])


def _tiled(means, cholesky, colors, opacity, cfg: RasterizeSettings):
    """What both passes start from: the binning, its units, the row table."""
    bins = bin_gaussians(means, cholesky, opacity, cfg.height, cfg.width, cfg.tile_size, cfg.alpha_min)
    units = tile_units(bins)
    return bins, units, prepare(units, _flat(means), _flat(cholesky), _flat(opacity), _flat(colors))


def forward(means, cholesky, colors, opacity, background, cfg: RasterizeSettings):
    b, n, c = colors.shape
    out = colors.new_empty(b, c, cfg.height, cfg.width)
    if n == 0:
        return out.zero_() if background is None else out.copy_(background.view(1, c, 1, 1).expand_as(out))
    with on_device(colors):
        _, units, table = _tiled(means, cholesky, colors, opacity, cfg)
        strides = (
            c * cfg.height * cfg.width,
            cfg.height * cfg.width,
            cfg.width,
            1,
            cfg.tile_size * cfg.width,
            cfg.tile_size,
        )
        render(units, table, out, strides, cfg, opacity, background, cfg.height, cfg.width)
    return out


def tile_gradient(grad_image: Tensor, tiles_y: int, tiles_x: int, tile_size: int) -> Tensor:
    """[B, C, H, W] -> the gradient of every tile pixel, [B * tiles, C, T^2] (zero past the image)."""
    b, c, h, w = grad_image.shape
    t = tile_size
    padded = torch.nn.functional.pad(grad_image, (0, tiles_x * t - w, 0, tiles_y * t - h))
    tiles = padded.reshape(b, c, tiles_y, t, tiles_x, t).permute(0, 2, 4, 1, 3, 5)
    return tiles.reshape(b * tiles_y * tiles_x, c, t * t).contiguous()


def backward(grad_image, means, cholesky, colors, opacity, background, cfg: RasterizeSettings):
    b, n, c = colors.shape
    if n == 0:
        d_bg = None if background is None else grad_image.sum((0, 2, 3))
        zeros = [torch.zeros_like(t) if t is not None else None for t in (means, cholesky, colors, opacity)]
        return (*zeros, d_bg)
    with on_device(colors):
        bins, units, table = _tiled(means, cholesky, colors, opacity, cfg)
        gcan = tile_gradient(grad_image, bins.tiles_y, bins.tiles_x, cfg.tile_size)
        d_geo, d_col, d_bg = gradients(
            units, table, _flat(means), _flat(cholesky), gcan, cfg, _flat(opacity), background
        )  # fmt: skip
        # one gradient row per binning entry -> per Gaussian, summed in a fixed order
        valid = torch.nonzero(units.src >= 0).squeeze(1)
        gauss = units.src[valid]
        order = torch.argsort(gauss, stable=True)
        rows = torch.cat((d_geo, d_col), 0)[:, valid[order]].t()
        lengths = torch.bincount(gauss, minlength=b * n)
        per_gaussian = torch.segment_reduce(rows, "sum", lengths=lengths, axis=0, unsafe=True)  # [B*N, 6 + C]
    per_gaussian = per_gaussian.reshape(b, n, 6 + c)
    return (
        per_gaussian[..., 0:2].contiguous(),
        per_gaussian[..., 2:5].contiguous(),
        per_gaussian[..., 6:].contiguous(),
        None if opacity is None else per_gaussian[..., 5].contiguous(),
        d_bg,
    )
