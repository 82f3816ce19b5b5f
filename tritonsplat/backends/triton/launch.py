"""Launchers shared by both rasterizers: the row table, the forward, the backward, and the
one table of launch configurations, each choice with the figures behind it.

A `Units` value describes one call's units (patch canvases or image tiles) and their rows;
`rasterize_patches.py` and `rasterize.py` build it and turn images into canvases and back."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import triton
from torch import Tensor

from ...constants import NORMALIZED_EPS
from .kernels import FIELDS, MODE_IDS, ROW_ALIGN, RUN, _grad_kernel, _prepare_kernel, _render_kernel, _state_kernel

# Forward (pixel-parallel): 1 warp, PPT = 4 pixels per thread, 128 canvas pixels per
# program. sm_90, "sum", C = 3, 18 x 18 canvases (python -m tritonsplat.aot's reading):
#   PPT  warps  PTX instr./pair  registers  warps/SM  slots for 324 pixels
#    1    1         23.0            70        28       352 (11 programs)
#    2    1         16.5            70        28       384
#    4    1         13.2           106        18       384 (3 programs)   <- per useful pair 15.6
#    4   2/4        13.2         102-103    16-18      512                 <- 20.9
#    8    1         11.6           201         9       512                 <- 18.3, and half the warps
# More pixels per thread amortise each row's loads over more pairs; past 4 the canvas no
# longer fills the slots and the registers halve the resident warps. 3 programs per patch
# also spread a small image: 1 x 128 x 128 of 16 x 16 patches is 192 programs, more than
# an H100's 132 SMs.
FWD_WARPS = 1
FWD_PPT = 4
# Backward (Gaussian-parallel): 1 warp, each thread owns RUN = 4 rows, 128 rows per
# program: K = 324 takes 3 programs per patch (384 row slots). 25.5 PTX instructions per
# pair at any warp count (118 registers, 16-17 warps per SM), but 2 or 4 warps need 512
# row slots for K = 324 (58% idle against 19%).
BWD_WARPS = 1
# The states of mode "alpha" (front to back, then back to front, one row at a time):
# 1 warp, 4 pixels per thread.
STATE_WARPS = 1
STATE_BLOCK = 128


def forward_channels(c: int) -> tuple[int, bool]:
    """(channels per program, DEFER) for the forward. DEFER keeps per-row partial sums
    ([4, PPT] registers per channel, 1 FMA per pair and channel) and suits few channels;
    without it each block is reduced in registers at once (PPT registers per channel)."""
    if c <= 4:
        return c, True
    return min(c, 8), False


def backward_channels(c: int) -> int:
    """Channels per backward program: each thread holds 4 rows x (colors + their
    gradients), 2 x 4 x CB registers: CB <= 4 keeps the backward near 128 registers (CB = 8
    reached 150-196 on sm_90, fewer resident warps)."""
    return min(c, 4)


@contextlib.contextmanager
def on_device(t: Tensor):
    """Launch on the tensors' device, not the current one (a second GPU)."""
    if t.is_cuda:
        with torch.cuda.device(t.device):
            yield
    else:
        yield


@dataclass(frozen=True)
class Units:
    """The units of one call. Patches: unit n = patch n, rows n * KP + k (k < K valid).
    Tiles: rows listed by `src` (Gaussian, -1 padding) and `unit`, unit n owns rows
    unit_rows[n] : unit_rows[n + 1]."""

    count: int  # number of units
    side: int  # canvas or tile side: SIDE^2 pixels
    offset: float  # x of canvas column 0's centre relative to the unit's centre
    rows: int  # R, a multiple of 16
    grid_h: int  # patches or tiles per image, down and across
    grid_w: int
    free: bool
    k: int = 0  # patches: Gaussians per patch, and rows per patch (K rounded up to RUN)
    kp: int = 0
    centre: float = 0.0  # patches: the core's centre in patch-local pixels
    tile: int = 1  # tiles: the tile size
    unit_rows: Tensor | None = None  # [count + 1] int64
    src: Tensor | None = None  # [R] int64
    unit: Tensor | None = None  # [R] int64
    work: Tensor | None = None  # [programs, 2] int64 (unit, chunk) of the backward

    @property
    def pixels(self) -> int:
        return self.side * self.side

    @property
    def cut_3sigma(self) -> bool:
        """alpha = 0 past the 3-sigma ellipse: the free rasterizer's contract (tiles)."""
        return self.free


def _placeholder(t: Tensor | None, like: Tensor) -> Tensor:
    return like if t is None else t


def _flags(opacity, cfg) -> dict:
    """Which of alpha's clamps can fire: alpha_max (an opacity can exceed it; G alone
    cannot exceed 1) and alpha_min."""
    return dict(
        HAS_OPACITY=opacity is not None,
        CLAMP=opacity is not None or cfg.alpha_max < 1.0,
        CUT_MIN=cfg.alpha_min > 0.0,
    )


def prepare(units: Units, means: Tensor, cholesky: Tensor, opacity: Tensor | None, colors: Tensor) -> Tensor:
    """The [6 + C, R] field-major row table."""
    c = colors.shape[-1]
    table = colors.new_empty(FIELDS + c, units.rows)
    block = 256
    dummy = torch.empty(1, dtype=torch.int64, device=colors.device)
    _prepare_kernel[(triton.cdiv(units.rows, block),)](
        means, cholesky, _placeholder(opacity, means), colors,
        _placeholder(units.src, dummy), _placeholder(units.unit, dummy), table,
        units.rows, units.k, max(units.kp, 1), c, units.grid_w, units.grid_h,
        CENTRE=units.centre, TILE=units.tile, FREE=units.free, HAS_OPACITY=opacity is not None, BLOCK=block,
    )  # fmt: skip
    return table


def render(
    units: Units, table: Tensor, out: Tensor, strides, cfg, opacity, background, height: int = 0, width: int = 0,
    weights=None, den: Tensor | None = None,
) -> None:  # fmt: skip
    """Forward into `out` (addressed by the six strides (image, channel, canvas row,
    canvas column, unit row, unit column)); with `den` the unfeathered canvases and the
    normaliser (the backward of "normalized"). `cfg`: the operation's settings (mode and
    alpha bounds are read); height and width bound the tiles of the free rasterizer."""
    c = table.shape[0] - FIELDS
    cb, defer = forward_channels(c)
    wy, wx = weights if weights is not None else (table, table)
    _render_kernel[forward_grid(units, c)](
        table, _placeholder(units.unit_rows, table), _placeholder(background, table), wy, wx, out,
        _placeholder(den, table),
        units.rows, max(units.kp, 1), c, units.grid_h, units.grid_w, height, width, *strides,
        cfg.alpha_max, cfg.alpha_min,
        SIDE=units.side, OFFSET=units.offset, FREE=units.free, RAW=den is not None, CUT_3SIGMA=units.cut_3sigma,
        MODE=MODE_IDS[cfg.mode], HAS_BG=background is not None, **_flags(opacity, cfg),
        CB=cb, PPT=FWD_PPT, NT=32 * FWD_WARPS, DEFER=defer, num_warps=FWD_WARPS,
    )  # fmt: skip


def forward_grid(units: Units, c: int) -> tuple[int, int, int]:
    """(units, pixel chunks, channel blocks) of the forward."""
    return units.count, triton.cdiv(units.pixels, FWD_PPT * 32 * FWD_WARPS), triton.cdiv(c, forward_channels(c)[0])


def backward_grid(units: Units, c: int) -> tuple[int, int, int]:
    """(units, row chunks, channel blocks) of the backward; tiles hold different numbers
    of rows, so the free rasterizer's (unit, chunk) pairs come from its work list."""
    ncb = triton.cdiv(c, backward_channels(c))
    if units.free:
        return units.work.shape[0], 1, ncb
    return units.count, triton.cdiv(units.kp, RUN * 32 * BWD_WARPS), ncb


def canvas_strides(units: Units, c: int) -> tuple[int, ...]:
    """Strides of unfeathered canvases [units, C, SIDE^2] in `render`'s terms."""
    per_unit = c * units.pixels
    return (units.grid_h * units.grid_w * per_unit, units.pixels, units.side, 1, units.grid_w * per_unit, per_unit)


def gradients(
    units: Units, table: Tensor, means: Tensor, cholesky: Tensor, gcan: Tensor, cfg, opacity, background
) -> tuple[Tensor, Tensor, Tensor | None]:  # fmt: skip
    """Backward from the upstream gradient of every canvas pixel, gcan [units, C, SIDE^2].
    Returns per-row gradients ([6, R]: mean x, mean y, l11, l21, l22, opacity; [C, R]
    colors) and, for "alpha" with a background, its gradient [C]."""
    c, mode, alpha_max, alpha_min = table.shape[0] - FIELDS, cfg.mode, cfg.alpha_max, cfg.alpha_min
    flags = _flags(opacity, cfg)
    dev = gcan.device
    gamma = tstart = behind = None
    d_bg = None
    if mode == "normalized":  # canvases and normaliser, then g' = g / den and g' . out
        num = gcan.new_zeros(units.count, c, units.pixels)
        den = gcan.new_zeros(units.count, units.pixels)
        render(units, table, num, canvas_strides(units, c), cfg, opacity, None, den=den)
        inv = 1.0 / (den + NORMALIZED_EPS)
        gcan = gcan * inv[:, None, :]
        gamma = (gcan * num).sum(1) * inv
    cb = backward_channels(c)
    ncb = triton.cdiv(c, cb)
    if mode == "alpha":
        runs = units.rows // RUN
        tstart = gcan.new_empty(units.pixels, runs)
        tfinal = gcan.new_empty(units.count, units.pixels)
        behind = gcan.new_empty(ncb, units.pixels, runs)
        _state_kernel[(units.count, triton.cdiv(units.pixels, STATE_BLOCK), ncb)](
            table, _placeholder(units.unit_rows, table), _placeholder(background, table), gcan, tstart, tfinal,
            behind, units.rows, max(units.kp, 1), c, alpha_max, alpha_min,
            SIDE=units.side, OFFSET=units.offset, FREE=units.free, HAS_BG=background is not None,
            CUT_3SIGMA=units.cut_3sigma,
            CB=cb, BLOCK=STATE_BLOCK, num_warps=STATE_WARPS, **flags,
        )  # fmt: skip
        if background is not None:
            d_bg = torch.einsum("np,ncp->c", tfinal, gcan)
    d_geo = gcan.new_empty(ncb, 6, units.rows)
    d_col = gcan.new_zeros(c, units.rows)
    nt = 32 * BWD_WARPS
    grid = backward_grid(units, c)
    dummy = torch.empty(2, dtype=torch.int64, device=dev)
    _grad_kernel[grid](
        table, _placeholder(units.unit_rows, dummy), _placeholder(units.src, dummy), _placeholder(units.unit, dummy),
        means, cholesky, gcan, _placeholder(gamma, gcan), _placeholder(tstart, gcan), _placeholder(behind, gcan),
        _placeholder(units.work, dummy), d_geo, d_col,
        units.rows, units.k, max(units.kp, 1), c, units.grid_w, units.grid_h, alpha_max, alpha_min,
        SIDE=units.side, OFFSET=units.offset, CENTRE=units.centre, TILE=units.tile, FREE=units.free,
        MODE=MODE_IDS[mode], CUT_3SIGMA=units.cut_3sigma, CB=cb, NT=nt, num_warps=BWD_WARPS, **flags,
    )  # fmt: skip
    return d_geo.sum(0) if ncb > 1 else d_geo[0], d_col, d_bg


def padded_rows(n: int) -> int:
    return max(ROW_ALIGN, triton.cdiv(n, ROW_ALIGN) * ROW_ALIGN)
