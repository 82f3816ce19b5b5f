"""Fused Triton kernels for `rasterize_patches`, forward and backward, and their launchers.

One program owns one patch: it evaluates the patch's K Gaussians on the patch's canvas
(its P x P core plus `overlap` pixels on every side), accumulates them by the compositing
mode, multiplies by the feathering weight and writes the canvas, in a single pass. The
backward program of the same patch recomputes the alphas, reads the upstream gradient of
its canvas straight from the image gradient (feathered on the fly), and reduces every
Gaussian's gradient over the canvas in registers: a Gaussian belongs to exactly one
program, so no gradient needs an atomic.

Canvases are flattened to one pixel axis, processed in chunks of BLOCK_PIX pixels (a
18 x 18 canvas wastes 16% of a 3 x 128 chunking, against 68% of a 32 x 32 tile), and
the Gaussians in blocks of BLOCK_K. Within a chunk:

  forward    q = |L^-1 (p - mu)|^2 = u^2 + v^2,  u = dx / l11,  v = (dy - l21 u) / l22
             alpha = cut(min(alpha_max, o * 2^(-q log2(e) / 2)))
             "sum":        acc += alpha @ colors                      (tl.dot, fp32 "ieee")
             "normalized": acc += alpha @ colors,  den += sum_k alpha,  out = acc / (den + 1e-6)
             "alpha":      T_k = T_block * prod_{j<k in block} (1 - alpha_j)   (an associative
                           scan giving inclusive and exclusive products at once, no division)
                           acc += (alpha T) @ colors;  out = acc + T_final * background
  backward   dL/dalpha from the mode, then through the clamp, the exponential and the
             Cholesky maps; per-Gaussian sums over pixels of five products (see
             `_geometry_grads`) give the gradients of the mean and the factor.
             "alpha" runs the Gaussian blocks back to front with the composite behind
             each Gaussian, A_k, from a reverse scan of affine maps
             A_{k-1} = alpha_k (c_k . g) + (1 - alpha_k) A_k: exact at alpha = 1.

Where a canvas overlaps its neighbours the forward writes the feathered canvas to a
[B, C, S, S, Hp, Wp] buffer that `fold` (a per-pixel gather: deterministic, unlike atomic
adds) sums into the image; with overlap 0 it writes the image directly.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..feather import feather_tables, fold_canvases
from .common import backward_chunk, launch_config, render_chunk

MODE_IDS = {"sum": 0, "alpha": 1, "normalized": 2}


# ----------------------------------------------------------------------------- kernels


@triton.jit
def _canvas_pixels(p0, S: tl.constexpr, OVERLAP: tl.constexpr, BLOCK_PIX: tl.constexpr):
    """Canvas pixel indices of a chunk, their rows, columns and patch-frame centres."""
    pix = p0 + tl.arange(0, BLOCK_PIX)
    row = pix // S
    col = pix % S
    return pix, row, col, col.to(tl.float32) - OVERLAP + 0.5, row.to(tl.float32) - OVERLAP + 0.5


@triton.jit
def _feather_weight(wy_ptr, wx_ptr, u, v, row, col, pmask, S: tl.constexpr):
    return tl.load(wy_ptr + u * S + row, mask=pmask, other=0.0) * tl.load(wx_ptr + v * S + col, mask=pmask, other=0.0)


@triton.jit
def _patches_fwd_kernel(
    means_ptr,  # [N, K, 2]   N = B * Hp * Wp patches
    chol_ptr,  # [N, K, 3]
    colors_ptr,  # [N, K, C]
    opacity_ptr,  # [N, K] (unused without HAS_OPACITY)
    bg_ptr,  # [C] (unused without HAS_BG)
    wy_ptr,  # [Hp, S] feathering table, rows
    wx_ptr,  # [Wp, S] feathering table, columns
    out_ptr,  # canvases, addressed by the six strides below
    K, C, HP, WP,
    s_ob, s_oc, s_or, s_os, s_ou, s_ov,
    alpha_max, alpha_min,
    P: tl.constexpr, OVERLAP: tl.constexpr, S: tl.constexpr, MODE: tl.constexpr,
    HAS_OPACITY: tl.constexpr, HAS_BG: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    n = tl.program_id(0).to(tl.int64)
    b = n // (HP * WP)
    u_patch = (n // WP) % HP
    v_patch = n % WP
    cc = tl.arange(0, BLOCK_C)
    for p0 in range(0, S * S, BLOCK_PIX):
        pix, row, col, tx, ty = _canvas_pixels(p0, S, OVERLAP, BLOCK_PIX)
        pmask = pix < S * S
        acc = render_chunk(
            tx, ty, n * K, K, means_ptr, means_ptr, chol_ptr, colors_ptr, opacity_ptr, bg_ptr, C,
            alpha_max, alpha_min, MODE, HAS_OPACITY, HAS_BG, False, False, BLOCK_PIX, BLOCK_K, BLOCK_C,
        )  # fmt: skip
        acc = acc * _feather_weight(wy_ptr, wx_ptr, u_patch, v_patch, row, col, pmask, S)[:, None]
        offs = b * s_ob + row[:, None] * s_or + col[:, None] * s_os + u_patch * s_ou + v_patch * s_ov
        tl.store(out_ptr + offs + cc[None, :] * s_oc, acc, mask=pmask[:, None] & (cc < C)[None, :])


@triton.jit
def _patches_bwd_kernel(
    grad_ptr,  # [B, C, H, W] upstream gradient of the image
    means_ptr, chol_ptr, colors_ptr, opacity_ptr, bg_ptr, wy_ptr, wx_ptr,
    d_means_ptr,  # [N, K, 2], zero-initialised
    d_chol_ptr,  # [N, K, 3]
    d_colors_ptr,  # [N, K, C]
    d_opacity_ptr,  # [N, K]
    d_bg_ptr,  # [N, C] per-patch partial sums
    scratch_ptr,  # [N, ceil(K / BLOCK_K), BLOCK_PIX]: T at each block start (mode alpha)
    K, C, HP, WP,
    alpha_max, alpha_min,
    P: tl.constexpr, OVERLAP: tl.constexpr, S: tl.constexpr, MODE: tl.constexpr,
    HAS_OPACITY: tl.constexpr, HAS_BG: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    n = tl.program_id(0).to(tl.int64)
    b = n // (HP * WP)
    u_patch = (n // WP) % HP
    v_patch = n % WP
    height = HP * P
    width = WP * P
    cc = tl.arange(0, BLOCK_C)
    for p0 in range(0, S * S, BLOCK_PIX):
        pix, row, col, tx, ty = _canvas_pixels(p0, S, OVERLAP, BLOCK_PIX)
        pmask = pix < S * S
        y = u_patch * P + row - OVERLAP
        x = v_patch * P + col - OVERLAP
        inside = pmask & (y >= 0) & (y < height) & (x >= 0) & (x < width)
        gmask = inside[:, None] & (cc < C)[None, :]
        grad = tl.load(
            grad_ptr + ((b * C + cc[None, :]) * height + y[:, None]) * width + x[:, None], mask=gmask, other=0.0
        )
        grad = grad * _feather_weight(wy_ptr, wx_ptr, u_patch, v_patch, row, col, pmask, S)[:, None]
        backward_chunk(
            grad, tx, ty, pmask, n * K, K, means_ptr, scratch_ptr, n * tl.cdiv(K, BLOCK_K),
            means_ptr, chol_ptr, colors_ptr, opacity_ptr, bg_ptr,
            d_means_ptr, d_chol_ptr, d_colors_ptr, d_opacity_ptr, d_bg_ptr + n * C, C, alpha_max, alpha_min,
            MODE, HAS_OPACITY, HAS_BG, False, False, BLOCK_PIX, BLOCK_K, BLOCK_C,
        )  # fmt: skip


# ----------------------------------------------------------------------------- launchers


# (BLOCK_PIX, BLOCK_K, num_warps), chosen from the ptxas report of `python -m tritonsplat.aot`
# at P=16, overlap 1, C=3 on sm_90 (registers / spill bytes):
#   forward  128 x 32, 8 warps: 174-184 regs, 0 spills (4 warps: 253 regs, spills in "alpha")
#   backward  64 x 16, 8 warps: 112 ("sum") and 181 ("alpha") regs, 0 spills; 64 x 32 with
#             4 warps spills 700-1000 bytes. "normalized" spills 48 bytes at 8 warps
#             (ptxas caps it at 128 regs) and none at 4 warps (192 regs).
LAUNCH = {"forward": (128, 32, 8), "backward": {"sum": (64, 16, 8), "alpha": (64, 16, 8), "normalized": (64, 16, 4)}}


def _common(colors: Tensor, patch_size: int, overlap: int, window: str):
    b, hp, wp, k, c = colors.shape
    s = patch_size + 2 * overlap
    wy, wx = feather_tables(hp, wp, patch_size, overlap, window, colors.device, torch.float32)
    return b, hp, wp, k, c, s, wy, wx


def patches_forward(
    means: Tensor,  # [B, Hp, Wp, K, 2]
    cholesky: Tensor,  # [B, Hp, Wp, K, 3]
    colors: Tensor,  # [B, Hp, Wp, K, C]
    opacity: Tensor | None,  # [B, Hp, Wp, K]
    background: Tensor | None,  # [C]
    patch_size: int,
    overlap: int,
    mode: str,
    window: str,
    alpha_max: float,
    alpha_min: float,
) -> Tensor:  # [B, C, Hp*P, Wp*P]
    b, hp, wp, k, c, s, wy, wx = _common(colors, patch_size, overlap, window)
    h, w = hp * patch_size, wp * patch_size
    if overlap == 0:  # canvases tile the image: write it directly
        out = colors.new_empty(b, c, h, w)
        strides = (c * h * w, h * w, w, 1, patch_size * w, patch_size)
    else:  # [B, C, S, S, Hp, Wp] = fold's column layout
        out = colors.new_empty(b, c, s, s, hp, wp)
        strides = out.stride()
    cfg = launch_config(LAUNCH, s * s, c, mode, backward=False)
    _patches_fwd_kernel[(b * hp * wp,)](
        means, cholesky, colors, opacity if opacity is not None else colors,
        background if background is not None else colors, wy, wx, out,
        k, c, hp, wp, *strides, alpha_max, alpha_min,
        P=patch_size, OVERLAP=overlap, S=s, MODE=MODE_IDS[mode],
        HAS_OPACITY=opacity is not None, HAS_BG=background is not None, **cfg,
    )  # fmt: skip
    if overlap == 0:
        return out
    return fold_canvases(out.reshape(b, c * s * s, hp * wp), hp, wp, patch_size, overlap)


def patches_backward(
    grad_image: Tensor,  # [B, C, Hp*P, Wp*P]
    means: Tensor,
    cholesky: Tensor,
    colors: Tensor,
    opacity: Tensor | None,
    background: Tensor | None,
    patch_size: int,
    overlap: int,
    mode: str,
    window: str,
    alpha_max: float,
    alpha_min: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    b, hp, wp, k, c, s, wy, wx = _common(colors, patch_size, overlap, window)
    cfg = launch_config(LAUNCH, s * s, c, mode, backward=True)
    n = b * hp * wp
    d_means, d_chol, d_colors = torch.zeros_like(means), torch.zeros_like(cholesky), torch.zeros_like(colors)
    d_opacity = None if opacity is None else torch.zeros_like(opacity)
    d_bg = colors.new_zeros(n, c) if background is not None else None
    n_blocks = triton.cdiv(k, cfg["BLOCK_K"])
    scratch = colors.new_empty(n, n_blocks, cfg["BLOCK_PIX"]) if mode == "alpha" else colors
    _patches_bwd_kernel[(n,)](
        grad_image, means, cholesky, colors, opacity if opacity is not None else colors,
        background if background is not None else colors, wy, wx,
        d_means, d_chol, d_colors, d_opacity if d_opacity is not None else colors,
        d_bg if d_bg is not None else colors, scratch,
        k, c, hp, wp, alpha_max, alpha_min,
        P=patch_size, OVERLAP=overlap, S=s, MODE=MODE_IDS[mode],
        HAS_OPACITY=opacity is not None, HAS_BG=background is not None, **cfg,
    )  # fmt: skip
    return d_means, d_chol, d_colors, d_opacity, None if d_bg is None else d_bg.sum(0)
