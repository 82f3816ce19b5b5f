"""Triton kernels for `rasterize`: free Gaussians, one program per (image, tile).

A program walks its tile's entries of the binning list (contiguous, in Gaussian order,
as many as there are: no cap) in blocks of BLOCK_K, gathering each entry's Gaussian, and
composites them over the tile's pixels with the 3-sigma cut, through the same device
functions as the patch kernels (`common.py`). The backward writes one gradient row per
binning entry, owned by its tile's program, so no atomics are needed; the launcher sums
the rows of each Gaussian with `index_add_`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..binning import bin_gaussians
from .common import backward_chunk, launch_config, render_chunk
from .patches import MODE_IDS

# pointer arguments that are not float32 (for the ahead-of-time build)
POINTER_TYPES = {"pairs_ptr": "*i64", "tile_start_ptr": "*i64", "block_start_ptr": "*i64"}


@triton.jit
def _tile_pixels(p0, tile, TILES_X, TILE: tl.constexpr, BLOCK_PIX: tl.constexpr):
    """A chunk of a tile's pixels: index, image row and column, pixel centres."""
    pix = p0 + tl.arange(0, BLOCK_PIX)
    y = (tile // TILES_X) * TILE + pix // TILE
    x = (tile % TILES_X) * TILE + pix % TILE
    return pix, y, x, x.to(tl.float32) + 0.5, y.to(tl.float32) + 0.5


@triton.jit
def _free_fwd_kernel(
    pairs_ptr,  # [P] int64: Gaussian (b * N + n) of every binning entry, sorted by tile
    tile_start_ptr,  # [B * tiles + 1] int64
    means_ptr,  # [B * N, 2]
    chol_ptr,  # [B * N, 3]
    colors_ptr,  # [B * N, C]
    opacity_ptr,  # [B * N]
    bg_ptr,  # [C]
    out_ptr,  # [B, C, H, W]
    C, H, W, TILES_X, N_TILES,
    alpha_max, alpha_min,
    TILE: tl.constexpr, MODE: tl.constexpr, HAS_OPACITY: tl.constexpr, HAS_BG: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0).to(tl.int64)
    b = t // N_TILES
    start = tl.load(tile_start_ptr + t)
    count = tl.load(tile_start_ptr + t + 1) - start
    cc = tl.arange(0, BLOCK_C)
    for p0 in range(0, TILE * TILE, BLOCK_PIX):
        pix, y, x, tx, ty = _tile_pixels(p0, t % N_TILES, TILES_X, TILE, BLOCK_PIX)
        pmask = (pix < TILE * TILE) & (y < H) & (x < W)
        acc = render_chunk(
            tx, ty, start, count, pairs_ptr, means_ptr, chol_ptr, colors_ptr, opacity_ptr, bg_ptr, C,
            alpha_max, alpha_min, MODE, HAS_OPACITY, HAS_BG, True, True, BLOCK_PIX, BLOCK_K, BLOCK_C,
        )  # fmt: skip
        offs = ((b * C + cc[None, :]) * H + y[:, None]) * W + x[:, None]
        tl.store(out_ptr + offs, acc, mask=pmask[:, None] & (cc < C)[None, :])


@triton.jit
def _free_bwd_kernel(
    grad_ptr,  # [B, C, H, W]
    pairs_ptr, tile_start_ptr,
    block_start_ptr,  # [B * tiles] int64: first scratch block of each tile (mode alpha)
    means_ptr, chol_ptr, colors_ptr, opacity_ptr, bg_ptr,
    d_means_ptr,  # [P, 2] per binning entry, zero-initialised
    d_chol_ptr,  # [P, 3]
    d_colors_ptr,  # [P, C]
    d_opacity_ptr,  # [P]
    d_bg_ptr,  # [B * tiles, C] per-tile partial sums
    scratch_ptr,  # [blocks, BLOCK_PIX]
    C, H, W, TILES_X, N_TILES,
    alpha_max, alpha_min,
    TILE: tl.constexpr, MODE: tl.constexpr, HAS_OPACITY: tl.constexpr, HAS_BG: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    t = tl.program_id(0).to(tl.int64)
    b = t // N_TILES
    start = tl.load(tile_start_ptr + t)
    count = tl.load(tile_start_ptr + t + 1) - start
    block0 = tl.load(block_start_ptr + t)
    cc = tl.arange(0, BLOCK_C)
    for p0 in range(0, TILE * TILE, BLOCK_PIX):
        pix, y, x, tx, ty = _tile_pixels(p0, t % N_TILES, TILES_X, TILE, BLOCK_PIX)
        pmask = (pix < TILE * TILE) & (y < H) & (x < W)
        offs = ((b * C + cc[None, :]) * H + y[:, None]) * W + x[:, None]
        grad = tl.load(grad_ptr + offs, mask=pmask[:, None] & (cc < C)[None, :], other=0.0)
        backward_chunk(
            grad, tx, ty, pmask, start, count, pairs_ptr, scratch_ptr, block0,
            means_ptr, chol_ptr, colors_ptr, opacity_ptr, bg_ptr,
            d_means_ptr, d_chol_ptr, d_colors_ptr, d_opacity_ptr, d_bg_ptr + t * C, C, alpha_max, alpha_min,
            MODE, HAS_OPACITY, HAS_BG, True, True, BLOCK_PIX, BLOCK_K, BLOCK_C,
        )  # fmt: skip


# (BLOCK_PIX, BLOCK_K, num_warps), from the ptxas report of `python -m tritonsplat.aot`
# (16 x 16 tiles, C=3, sm_90): forward as for patches, 184-192 regs, 0 spills. Backward
# 32 x 16 with 4 warps: 205 / 210 / 154 regs ("sum" / "alpha" / "normalized"), 0 spills;
# the patches' 64 x 16 choice spills 24-40 bytes here (the gather adds live registers).
LAUNCH = {"forward": (128, 32, 8), "backward": {"sum": (32, 16, 4), "alpha": (32, 16, 4), "normalized": (32, 16, 4)}}


def _flat(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.reshape(t.shape[0] * t.shape[1], *t.shape[2:])


def free_forward(means, cholesky, colors, opacity, background, height, width, mode, tile_size, alpha_max, alpha_min):
    b, n, c = colors.shape
    bins = bin_gaussians(means, cholesky, opacity, height, width, tile_size, alpha_min)
    out = colors.new_empty(b, c, height, width)
    cfg = launch_config(LAUNCH, tile_size * tile_size, c, mode, backward=False)
    _free_fwd_kernel[(b * bins.num_tiles,)](
        bins.pair_gaussian, bins.tile_start, _flat(means), _flat(cholesky), _flat(colors),
        _flat(opacity) if opacity is not None else colors, background if background is not None else colors, out,
        c, height, width, bins.tiles_x, bins.num_tiles, alpha_max, alpha_min,
        TILE=tile_size, MODE=MODE_IDS[mode], HAS_OPACITY=opacity is not None, HAS_BG=background is not None, **cfg,
    )  # fmt: skip
    return out


def free_backward(
    grad_image, means, cholesky, colors, opacity, background, height, width, mode, tile_size, alpha_max, alpha_min
):
    b, n, c = colors.shape
    bins = bin_gaussians(means, cholesky, opacity, height, width, tile_size, alpha_min)
    cfg = launch_config(LAUNCH, tile_size * tile_size, c, mode, backward=True)
    pairs = bins.pair_gaussian.numel()
    rows = [colors.new_zeros(pairs, k) for k in (2, 3, c)]
    d_op_rows = colors.new_zeros(pairs) if opacity is not None else None
    d_bg = colors.new_zeros(b * bins.num_tiles, c) if background is not None else None
    blocks = (bins.counts() + cfg["BLOCK_K"] - 1) // cfg["BLOCK_K"]
    block_start = torch.cumsum(blocks, 0) - blocks
    scratch = colors.new_empty(max(1, int(blocks.sum())), cfg["BLOCK_PIX"]) if mode == "alpha" else colors
    _free_bwd_kernel[(b * bins.num_tiles,)](
        grad_image, bins.pair_gaussian, bins.tile_start, block_start,
        _flat(means), _flat(cholesky), _flat(colors), _flat(opacity) if opacity is not None else colors,
        background if background is not None else colors,
        rows[0], rows[1], rows[2], d_op_rows if d_op_rows is not None else colors,
        d_bg if d_bg is not None else colors, scratch,
        c, height, width, bins.tiles_x, bins.num_tiles, alpha_max, alpha_min,
        TILE=tile_size, MODE=MODE_IDS[mode], HAS_OPACITY=opacity is not None, HAS_BG=background is not None, **cfg,
    )  # fmt: skip
    idx = bins.pair_gaussian

    def reduce(r, like):  # per-entry rows -> per-Gaussian gradients
        return like.new_zeros(b * n, *r.shape[1:]).index_add_(0, idx, r).reshape(like.shape)

    return (
        reduce(rows[0], means),
        reduce(rows[1], cholesky),
        reduce(rows[2], colors),
        None if opacity is None else reduce(d_op_rows, opacity),
        None if d_bg is None else d_bg.sum(0),
    )
