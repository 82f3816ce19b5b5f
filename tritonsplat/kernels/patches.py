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

MODE_IDS = {"sum": 0, "alpha": 1, "normalized": 2}
LOG2E = 1.4426950408889634


# ----------------------------------------------------------------------------- helpers


@triton.jit
def _mul(a, b):
    return a * b


@triton.jit
def _prefix_products(a1, e1, a2, e2):
    """Combine for an associative scan carrying (inclusive, exclusive) products: a segment's
    exclusive product is that of all but its last element, so no division is needed."""
    return a1 * a2, a1 * e2


@triton.jit
def _behind_composite(a_late, b_late, xa_late, xb_late, a_early, b_early, xa_early, xb_early):
    """Combine for the reverse scan of the affine maps f_k(A) = a_k A + b_k (a = 1 - alpha,
    b = alpha c.g): (a, b) composes the whole segment, (xa, xb) all of it but its first
    Gaussian, so at k it gives the composite of the Gaussians behind k. A reverse scan hands
    the later segment first."""
    return (
        a_early * a_late,
        a_early * b_late + b_early,
        xa_early * a_late,
        xa_early * b_late + xb_early,
    )


@triton.jit
def _canvas_pixels(p0, S: tl.constexpr, OVERLAP: tl.constexpr, BLOCK_PIX: tl.constexpr):
    """Canvas pixel indices of a chunk, their rows, columns and patch-frame centres."""
    pix = p0 + tl.arange(0, BLOCK_PIX)
    row = pix // S
    col = pix % S
    return pix, row, col, col.to(tl.float32) - OVERLAP + 0.5, row.to(tl.float32) - OVERLAP + 0.5


@triton.jit
def _load_gaussians(means_ptr, chol_ptr, opacity_ptr, gbase, kk, kmask, HAS_OPACITY: tl.constexpr):
    """Means, inverse diagonal of the Cholesky factor and opacity of a block of Gaussians."""
    mx = tl.load(means_ptr + (gbase + kk) * 2, mask=kmask, other=0.0)
    my = tl.load(means_ptr + (gbase + kk) * 2 + 1, mask=kmask, other=0.0)
    l11 = tl.load(chol_ptr + (gbase + kk) * 3, mask=kmask, other=1.0)
    l21 = tl.load(chol_ptr + (gbase + kk) * 3 + 1, mask=kmask, other=0.0)
    l22 = tl.load(chol_ptr + (gbase + kk) * 3 + 2, mask=kmask, other=1.0)
    if HAS_OPACITY:
        op = tl.load(opacity_ptr + gbase + kk, mask=kmask, other=0.0)
    else:
        op = tl.full(kk.shape, 1.0, tl.float32)
    return mx, my, 1.0 / l11, l21, 1.0 / l22, op


@triton.jit
def _evaluate(tx, ty, mx, my, i11, l21, i22, op, kmask, alpha_max, alpha_min):
    """[BLOCK_PIX, BLOCK_K] tiles u, v, G, o*G and alpha (0 for padding Gaussians)."""
    u = (tx[:, None] - mx[None, :]) * i11[None, :]
    v = (ty[:, None] - my[None, :] - l21[None, :] * u) * i22[None, :]
    g = tl.exp2((u * u + v * v) * (-0.5 * 1.4426950408889634))
    a = g * op[None, :]
    alpha = tl.minimum(a, alpha_max)
    alpha = tl.where((alpha >= alpha_min) & kmask[None, :], alpha, 0.0)
    return u, v, g, a, alpha


@triton.jit
def _feather_weight(wy_ptr, wx_ptr, u, v, row, col, pmask, S: tl.constexpr):
    return tl.load(wy_ptr + u * S + row, mask=pmask, other=0.0) * tl.load(wx_ptr + v * S + col, mask=pmask, other=0.0)


# ----------------------------------------------------------------------------- forward


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
    K,
    C,
    HP,
    WP,
    s_ob,
    s_oc,
    s_or,
    s_os,
    s_ou,
    s_ov,
    alpha_max,
    alpha_min,
    P: tl.constexpr,
    OVERLAP: tl.constexpr,
    S: tl.constexpr,
    MODE: tl.constexpr,
    HAS_OPACITY: tl.constexpr,
    HAS_BG: tl.constexpr,
    BLOCK_PIX: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    n = tl.program_id(0).to(tl.int64)
    b = n // (HP * WP)
    u_patch = (n // WP) % HP
    v_patch = n % WP
    gbase = n * K
    cc = tl.arange(0, BLOCK_C)
    cmask = cc < C
    for p0 in range(0, S * S, BLOCK_PIX):
        pix, row, col, tx, ty = _canvas_pixels(p0, S, OVERLAP, BLOCK_PIX)
        pmask = pix < S * S
        acc = tl.zeros((BLOCK_PIX, BLOCK_C), tl.float32)
        den = tl.zeros((BLOCK_PIX,), tl.float32)
        trans = tl.full((BLOCK_PIX,), 1.0, tl.float32)
        for k0 in range(0, K, BLOCK_K):
            kk = k0 + tl.arange(0, BLOCK_K)
            kmask = kk < K
            mx, my, i11, l21, i22, op = _load_gaussians(means_ptr, chol_ptr, opacity_ptr, gbase, kk, kmask, HAS_OPACITY)
            _, _, _, _, alpha = _evaluate(tx, ty, mx, my, i11, l21, i22, op, kmask, alpha_max, alpha_min)
            colors = tl.load(
                colors_ptr + (gbase + kk[:, None]) * C + cc[None, :], mask=kmask[:, None] & cmask[None, :], other=0.0
            )
            if MODE == 1:
                _, before = tl.associative_scan(
                    (1.0 - alpha, tl.full(alpha.shape, 1.0, tl.float32)), 1, _prefix_products
                )
                acc += tl.dot(alpha * before * trans[:, None], colors, input_precision="ieee")
                trans = trans * tl.reduce(1.0 - alpha, 1, _mul)
            else:
                acc += tl.dot(alpha, colors, input_precision="ieee")
                if MODE == 2:
                    den += tl.sum(alpha, 1)
        if MODE == 1:
            if HAS_BG:
                acc += trans[:, None] * tl.load(bg_ptr + cc, mask=cmask, other=0.0)[None, :]
        if MODE == 2:
            acc = acc / (den[:, None] + 1e-6)
        acc = acc * _feather_weight(wy_ptr, wx_ptr, u_patch, v_patch, row, col, pmask, S)[:, None]
        offs = b * s_ob + row[:, None] * s_or + col[:, None] * s_os + u_patch * s_ou + v_patch * s_ov
        tl.store(out_ptr + offs + cc[None, :] * s_oc, acc, mask=pmask[:, None] & cmask[None, :])


# ----------------------------------------------------------------------------- backward


@triton.jit
def _geometry_grads(d_a, u, v, g, a, l21, i11, i22):
    """Per-Gaussian gradients (mean x, mean y, l11, l21, l22, opacity-times-o) from dL/d(o G).

    With s = dL/dq * 2 = -dL/d(oG) * oG: dL/du = s u + (s v)(-l21 / l22), dL/dv = s v, and
    u = dx / l11, v = (dy - l21 u) / l22 give the five pixel sums below."""
    s = -d_a * a
    su = s * u
    sv = s * v
    r_su = tl.sum(su, 0)
    r_suu = tl.sum(su * u, 0)
    r_sv = tl.sum(sv, 0)
    r_svu = tl.sum(sv * u, 0)
    r_svv = tl.sum(sv * v, 0)
    k21 = l21 * i22
    d_mx = -i11 * (r_su - k21 * r_sv)
    d_l11 = -i11 * (r_suu - k21 * r_svu)
    d_my = -i22 * r_sv
    d_l21 = -i22 * r_svu
    d_l22 = -i22 * r_svv
    d_op = tl.sum(d_a * g, 0)
    return d_mx, d_my, d_l11, d_l21, d_l22, d_op


@triton.jit
def _accumulate(ptr, offs, value, mask):
    """Read-add-write of a gradient this program alone owns: no atomic needed."""
    tl.store(ptr + offs, tl.load(ptr + offs, mask=mask, other=0.0) + value, mask=mask)


@triton.jit
def _patches_bwd_kernel(
    grad_ptr,  # [B, C, H, W] upstream gradient of the image
    means_ptr,
    chol_ptr,
    colors_ptr,
    opacity_ptr,
    bg_ptr,
    wy_ptr,
    wx_ptr,
    d_means_ptr,  # [N, K, 2], zero-initialised
    d_chol_ptr,  # [N, K, 3]
    d_colors_ptr,  # [N, K, C]
    d_opacity_ptr,  # [N, K]
    d_bg_ptr,  # [N, C] per-patch partial sums
    trans_ptr,  # [N, ceil(K / BLOCK_K), BLOCK_PIX] scratch: T at each block start (mode alpha)
    K,
    C,
    HP,
    WP,
    alpha_max,
    alpha_min,
    P: tl.constexpr,
    OVERLAP: tl.constexpr,
    S: tl.constexpr,
    MODE: tl.constexpr,
    HAS_OPACITY: tl.constexpr,
    HAS_BG: tl.constexpr,
    BLOCK_PIX: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    n = tl.program_id(0).to(tl.int64)
    b = n // (HP * WP)
    u_patch = (n // WP) % HP
    v_patch = n % WP
    gbase = n * K
    height = HP * P
    width = WP * P
    n_blocks = tl.cdiv(K, BLOCK_K)
    cc = tl.arange(0, BLOCK_C)
    cmask = cc < C
    if HAS_BG:
        bg = tl.load(bg_ptr + cc, mask=cmask, other=0.0)
    for p0 in range(0, S * S, BLOCK_PIX):
        pix, row, col, tx, ty = _canvas_pixels(p0, S, OVERLAP, BLOCK_PIX)
        pmask = pix < S * S
        y = u_patch * P + row - OVERLAP
        x = v_patch * P + col - OVERLAP
        inside = pmask & (y >= 0) & (y < height) & (x >= 0) & (x < width)
        wgt = _feather_weight(wy_ptr, wx_ptr, u_patch, v_patch, row, col, pmask, S)
        gmask = inside[:, None] & cmask[None, :]
        grad = tl.load(
            grad_ptr + ((b * C + cc[None, :]) * height + y[:, None]) * width + x[:, None], mask=gmask, other=0.0
        )
        grad = grad * wgt[:, None]  # dL/d(canvas) of this patch
        # pass 1 (normalized, alpha): per-pixel statistics over all Gaussians
        num = tl.zeros((BLOCK_PIX, BLOCK_C), tl.float32)
        den = tl.zeros((BLOCK_PIX,), tl.float32)
        trans = tl.full((BLOCK_PIX,), 1.0, tl.float32)
        if MODE != 0:
            for kb in range(0, n_blocks):
                kk = kb * BLOCK_K + tl.arange(0, BLOCK_K)
                kmask = kk < K
                mx, my, i11, l21, i22, op = _load_gaussians(
                    means_ptr, chol_ptr, opacity_ptr, gbase, kk, kmask, HAS_OPACITY
                )
                _, _, _, _, alpha = _evaluate(tx, ty, mx, my, i11, l21, i22, op, kmask, alpha_max, alpha_min)
                if MODE == 1:
                    tl.store(trans_ptr + (n * n_blocks + kb) * BLOCK_PIX + tl.arange(0, BLOCK_PIX), trans)
                    trans = trans * tl.reduce(1.0 - alpha, 1, _mul)
                else:
                    colors = tl.load(
                        colors_ptr + (gbase + kk[:, None]) * C + cc[None, :],
                        mask=kmask[:, None] & cmask[None, :],
                        other=0.0,
                    )
                    num += tl.dot(alpha, colors, input_precision="ieee")
                    den += tl.sum(alpha, 1)
        tl.debug_barrier()  # the scratch written above is read below by other threads
        den = den + 1e-6
        g_out = tl.sum(grad * num, 1) / den  # g . out (normalized)
        behind = tl.zeros((BLOCK_PIX,), tl.float32)  # g . A: the composite behind (alpha)
        if MODE == 1:
            if HAS_BG:
                behind = tl.sum(grad * bg[None, :], 1)
                _accumulate(d_bg_ptr, n * C + cc, tl.sum(grad * trans[:, None], 0), cmask)
        # pass 2: gradients, block by block (back to front for "alpha")
        for i in range(0, n_blocks):
            if MODE == 1:
                kb = n_blocks - 1 - i
            else:
                kb = i
            kk = kb * BLOCK_K + tl.arange(0, BLOCK_K)
            kmask = kk < K
            mx, my, i11, l21, i22, op = _load_gaussians(means_ptr, chol_ptr, opacity_ptr, gbase, kk, kmask, HAS_OPACITY)
            u, v, g, a, alpha = _evaluate(tx, ty, mx, my, i11, l21, i22, op, kmask, alpha_max, alpha_min)
            cofs = (gbase + kk[:, None]) * C + cc[None, :]
            cm = kmask[:, None] & cmask[None, :]
            colors = tl.load(colors_ptr + cofs, mask=cm, other=0.0)
            beta = tl.dot(grad, tl.trans(colors), input_precision="ieee")  # c_k . g, [BLOCK_PIX, BLOCK_K]
            if MODE == 0:
                d_alpha = beta
                weight = alpha
            elif MODE == 2:
                d_alpha = (beta - g_out[:, None]) / den[:, None]
                weight = alpha / den[:, None]
            else:
                t0 = tl.load(trans_ptr + (n * n_blocks + kb) * BLOCK_PIX + tl.arange(0, BLOCK_PIX))
                _, before = tl.associative_scan(
                    (1.0 - alpha, tl.full(alpha.shape, 1.0, tl.float32)), 1, _prefix_products
                )
                t_k = before * t0[:, None]
                one = tl.full(alpha.shape, 1.0, tl.float32)
                zero = tl.zeros(alpha.shape, tl.float32)
                ca, cb, xa, xb = tl.associative_scan(
                    (1.0 - alpha, alpha * beta, one, zero), 1, _behind_composite, reverse=True
                )
                d_alpha = t_k * (beta - (xa * behind[:, None] + xb))
                first = (tl.arange(0, BLOCK_K) == 0)[None, :]
                behind = tl.sum(tl.where(first, ca * behind[:, None] + cb, 0.0), 1)
                weight = alpha * t_k
            _accumulate(d_colors_ptr, cofs, tl.dot(tl.trans(weight), grad, input_precision="ieee"), cm)
            live = (a < alpha_max) & (a >= alpha_min)
            d_a = tl.where(live & pmask[:, None], d_alpha, 0.0)
            d_mx, d_my, d_l11, d_l21, d_l22, d_op = _geometry_grads(d_a, u, v, g, a, l21, i11, i22)
            _accumulate(d_means_ptr, (gbase + kk) * 2, d_mx, kmask)
            _accumulate(d_means_ptr, (gbase + kk) * 2 + 1, d_my, kmask)
            _accumulate(d_chol_ptr, (gbase + kk) * 3, d_l11, kmask)
            _accumulate(d_chol_ptr, (gbase + kk) * 3 + 1, d_l21, kmask)
            _accumulate(d_chol_ptr, (gbase + kk) * 3 + 2, d_l22, kmask)
            if HAS_OPACITY:
                _accumulate(d_opacity_ptr, gbase + kk, d_op, kmask)
        tl.debug_barrier()  # the next chunk reads back the gradients stored by this one


# ----------------------------------------------------------------------------- launchers


# (BLOCK_PIX, BLOCK_K, num_warps), chosen from the ptxas report of `python -m tritonsplat.aot`
# at P=16, overlap 1, C=3 on sm_90 (registers / spill bytes):
#   forward  128 x 32, 8 warps: 174-184 regs, 0 spills (4 warps: 253 regs, spills in "alpha")
#   backward  64 x 16, 8 warps: 112 ("sum") and 181 ("alpha") regs, 0 spills; 64 x 32 with
#             4 warps spills 700-1000 bytes. "normalized" spills 48 bytes at 8 warps
#             (ptxas caps it at 128 regs) and none at 4 warps (192 regs).
_FORWARD = (128, 32, 8)
_BACKWARD = {"sum": (64, 16, 8), "alpha": (64, 16, 8), "normalized": (64, 16, 4)}


def launch_config(canvas_pixels: int, channels: int, mode: str, backward: bool) -> dict:
    """Block sizes and warps of a launch, in one place. tl.dot needs every side >= 16."""
    block_pix, block_k, num_warps = _BACKWARD[mode] if backward else _FORWARD
    block_pix = min(block_pix, max(16, triton.next_power_of_2(canvas_pixels)))
    block_c = max(16, triton.next_power_of_2(channels))
    return dict(BLOCK_PIX=block_pix, BLOCK_K=block_k, BLOCK_C=block_c, num_warps=num_warps)


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
    cfg = launch_config(s * s, c, mode, backward=False)
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
    cfg = launch_config(s * s, c, mode, backward=True)
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
