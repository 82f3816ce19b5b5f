"""Device functions shared by the patch and the tile kernels: evaluating a block of
Gaussians on a chunk of pixels, compositing them (forward), and the adjoint of that
(backward), for the three modes.

A kernel hands these functions a chunk of pixels (their centres `tx`, `ty`) and a range of
`count` rows starting at `row0`: for patches the rows are the patch's own Gaussians; for
tiles they are the tile's entries of the sorted binning list, and `GATHER` makes each row
look its Gaussian up through `pairs_ptr`. Gradients are written per row, so a tile kernel
writes per-(tile, Gaussian) rows that the launcher reduces, and a patch kernel writes the
Gaussian's own gradient.
"""

from __future__ import annotations

import triton
import triton.language as tl

LOG2E = 1.4426950408889634


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
def _rows(row0, count, kb, pairs_ptr, BLOCK_K: tl.constexpr, GATHER: tl.constexpr):
    """Rows of block kb, their mask, and the Gaussians they name."""
    kk = kb * BLOCK_K + tl.arange(0, BLOCK_K)
    kmask = kk < count
    rows = row0 + kk
    if GATHER:
        gidx = tl.load(pairs_ptr + rows, mask=kmask, other=0)
    else:
        gidx = rows
    return rows, kmask, gidx


@triton.jit
def _load_gaussians(means_ptr, chol_ptr, opacity_ptr, gidx, kmask, HAS_OPACITY: tl.constexpr):
    """Means, inverse diagonal of the Cholesky factor and opacity of a block of Gaussians."""
    mx = tl.load(means_ptr + gidx * 2, mask=kmask, other=0.0)
    my = tl.load(means_ptr + gidx * 2 + 1, mask=kmask, other=0.0)
    l11 = tl.load(chol_ptr + gidx * 3, mask=kmask, other=1.0)
    l21 = tl.load(chol_ptr + gidx * 3 + 1, mask=kmask, other=0.0)
    l22 = tl.load(chol_ptr + gidx * 3 + 2, mask=kmask, other=1.0)
    if HAS_OPACITY:
        op = tl.load(opacity_ptr + gidx, mask=kmask, other=0.0)
    else:
        op = tl.full(gidx.shape, 1.0, tl.float32)
    return mx, my, 1.0 / l11, l21, 1.0 / l22, op


@triton.jit
def _evaluate(tx, ty, mx, my, i11, l21, i22, op, kmask, alpha_max, alpha_min, CUT: tl.constexpr):
    """[BLOCK_PIX, BLOCK_K] tiles u, v, G, o*G and alpha (0 for padding rows). With CUT,
    G = 0 outside the 3-sigma ellipse q > 9, which zeroes alpha and every gradient there."""
    u = (tx[:, None] - mx[None, :]) * i11[None, :]
    v = (ty[:, None] - my[None, :] - l21[None, :] * u) * i22[None, :]
    q = u * u + v * v
    g = tl.exp2(q * (-0.5 * 1.4426950408889634))
    if CUT:
        g = tl.where(q <= 9.0, g, 0.0)
    a = g * op[None, :]
    alpha = tl.minimum(a, alpha_max)
    alpha = tl.where((alpha >= alpha_min) & kmask[None, :], alpha, 0.0)
    return u, v, g, a, alpha


@triton.jit
def _load_colors(colors_ptr, gidx, kmask, C, BLOCK_C: tl.constexpr):
    cc = tl.arange(0, BLOCK_C)
    return tl.load(colors_ptr + gidx[:, None] * C + cc[None, :], mask=kmask[:, None] & (cc < C)[None, :], other=0.0)


@triton.jit
def render_chunk(
    tx, ty, row0, count, pairs_ptr, means_ptr, chol_ptr, colors_ptr, opacity_ptr, bg_ptr, C, alpha_max, alpha_min,
    MODE: tl.constexpr, HAS_OPACITY: tl.constexpr, HAS_BG: tl.constexpr, CUT: tl.constexpr, GATHER: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """[BLOCK_PIX, BLOCK_C] composite of `count` rows over a chunk of pixels.

    "sum": acc += alpha @ colors (tl.dot, fp32 "ieee"); "normalized": the same over
    (den + 1e-6), den = sum alpha; "alpha": T_k = T_block * prod_{j<k} (1 - alpha_j) from
    an associative scan, acc += (alpha T) @ colors, plus T_final * background."""
    acc = tl.zeros((BLOCK_PIX, BLOCK_C), tl.float32)
    den = tl.zeros((BLOCK_PIX,), tl.float32)
    trans = tl.full((BLOCK_PIX,), 1.0, tl.float32)
    for kb in range(0, tl.cdiv(count, BLOCK_K)):
        _, kmask, gidx = _rows(row0, count, kb, pairs_ptr, BLOCK_K, GATHER)
        mx, my, i11, l21, i22, op = _load_gaussians(means_ptr, chol_ptr, opacity_ptr, gidx, kmask, HAS_OPACITY)
        _, _, _, _, alpha = _evaluate(tx, ty, mx, my, i11, l21, i22, op, kmask, alpha_max, alpha_min, CUT)
        colors = _load_colors(colors_ptr, gidx, kmask, C, BLOCK_C)
        if MODE == 1:
            _, before = tl.associative_scan((1.0 - alpha, tl.full(alpha.shape, 1.0, tl.float32)), 1, _prefix_products)
            acc += tl.dot(alpha * before * trans[:, None], colors, input_precision="ieee")
            trans = trans * tl.reduce(1.0 - alpha, 1, _mul)
        else:
            acc += tl.dot(alpha, colors, input_precision="ieee")
            if MODE == 2:
                den += tl.sum(alpha, 1)
    if MODE == 1:
        if HAS_BG:
            cc = tl.arange(0, BLOCK_C)
            acc += trans[:, None] * tl.load(bg_ptr + cc, mask=cc < C, other=0.0)[None, :]
    if MODE == 2:
        acc = acc / (den[:, None] + 1e-6)
    return acc


@triton.jit
def _geometry_grads(d_a, u, v, g, a, l21, i11, i22):
    """Per-row gradients (mean x, mean y, l11, l21, l22, opacity) from dL/d(o G).

    With s = 2 dL/dq = -dL/d(oG) * oG: dL/du = s u + (s v)(-l21 / l22), dL/dv = s v, and
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
    """Read-add-write of a gradient row this program alone owns: no atomic needed."""
    tl.store(ptr + offs, tl.load(ptr + offs, mask=mask, other=0.0) + value, mask=mask)


@triton.jit
def backward_chunk(
    grad, tx, ty, pmask, row0, count, pairs_ptr, scratch_ptr, scratch_block0,
    means_ptr, chol_ptr, colors_ptr, opacity_ptr, bg_ptr,
    d_means_ptr, d_chol_ptr, d_colors_ptr, d_opacity_ptr, d_bg_ptr, C, alpha_max, alpha_min,
    MODE: tl.constexpr, HAS_OPACITY: tl.constexpr, HAS_BG: tl.constexpr, CUT: tl.constexpr, GATHER: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """Adds the gradients of <grad, render_chunk(...)> to the rows' gradients (and, for
    "alpha" with a background, to the BLOCK_C floats at d_bg_ptr).

    Pass 1 ("normalized", "alpha") gathers per-pixel statistics over all rows: the
    normaliser and the output, or T at the start of every block (kept in the scratch at
    scratch_block0, since pass 2 needs them back to front). Pass 2 recomputes each block:
    dL/dalpha from the mode, then through the clamp, the exponential and the Cholesky maps.
    "alpha" runs back to front with A_k, the composite behind k dotted with the gradient,
    from a reverse scan of affine maps: d out / d alpha_k = T_k (c_k - A_k), no division."""
    n_blocks = tl.cdiv(count, BLOCK_K)
    cc = tl.arange(0, BLOCK_C)
    cmask = cc < C
    num = tl.zeros((BLOCK_PIX, BLOCK_C), tl.float32)
    den = tl.zeros((BLOCK_PIX,), tl.float32)
    trans = tl.full((BLOCK_PIX,), 1.0, tl.float32)
    if MODE != 0:
        for kb in range(0, n_blocks):
            _, kmask, gidx = _rows(row0, count, kb, pairs_ptr, BLOCK_K, GATHER)
            mx, my, i11, l21, i22, op = _load_gaussians(means_ptr, chol_ptr, opacity_ptr, gidx, kmask, HAS_OPACITY)
            _, _, _, _, alpha = _evaluate(tx, ty, mx, my, i11, l21, i22, op, kmask, alpha_max, alpha_min, CUT)
            if MODE == 1:
                tl.store(scratch_ptr + (scratch_block0 + kb) * BLOCK_PIX + tl.arange(0, BLOCK_PIX), trans)
                trans = trans * tl.reduce(1.0 - alpha, 1, _mul)
            else:
                num += tl.dot(alpha, _load_colors(colors_ptr, gidx, kmask, C, BLOCK_C), input_precision="ieee")
                den += tl.sum(alpha, 1)
    tl.debug_barrier()  # the scratch written above is read below by other threads
    den = den + 1e-6
    g_out = tl.sum(grad * num, 1) / den  # g . out ("normalized")
    behind = tl.zeros((BLOCK_PIX,), tl.float32)  # g . A: the composite behind ("alpha")
    if MODE == 1:
        if HAS_BG:
            behind = tl.sum(grad * tl.load(bg_ptr + cc, mask=cmask, other=0.0)[None, :], 1)
            _accumulate(d_bg_ptr, cc, tl.sum(grad * trans[:, None], 0), cmask)
    for i in range(0, n_blocks):
        if MODE == 1:
            kb = n_blocks - 1 - i
        else:
            kb = i
        rows, kmask, gidx = _rows(row0, count, kb, pairs_ptr, BLOCK_K, GATHER)
        mx, my, i11, l21, i22, op = _load_gaussians(means_ptr, chol_ptr, opacity_ptr, gidx, kmask, HAS_OPACITY)
        u, v, g, a, alpha = _evaluate(tx, ty, mx, my, i11, l21, i22, op, kmask, alpha_max, alpha_min, CUT)
        colors = _load_colors(colors_ptr, gidx, kmask, C, BLOCK_C)
        beta = tl.dot(grad, tl.trans(colors), input_precision="ieee")  # c_k . g, [BLOCK_PIX, BLOCK_K]
        if MODE == 0:
            d_alpha = beta
            weight = alpha
        elif MODE == 2:
            d_alpha = (beta - g_out[:, None]) / den[:, None]
            weight = alpha / den[:, None]
        else:
            t0 = tl.load(scratch_ptr + (scratch_block0 + kb) * BLOCK_PIX + tl.arange(0, BLOCK_PIX))
            _, before = tl.associative_scan((1.0 - alpha, tl.full(alpha.shape, 1.0, tl.float32)), 1, _prefix_products)
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
        cofs = rows[:, None] * C + cc[None, :]
        _accumulate(
            d_colors_ptr, cofs, tl.dot(tl.trans(weight), grad, input_precision="ieee"), kmask[:, None] & cmask[None, :]
        )
        live = (a < alpha_max) & (a >= alpha_min)
        d_a = tl.where(live & pmask[:, None], d_alpha, 0.0)
        d_mx, d_my, d_l11, d_l21, d_l22, d_op = _geometry_grads(d_a, u, v, g, a, l21, i11, i22)
        _accumulate(d_means_ptr, rows * 2, d_mx, kmask)
        _accumulate(d_means_ptr, rows * 2 + 1, d_my, kmask)
        _accumulate(d_chol_ptr, rows * 3, d_l11, kmask)
        _accumulate(d_chol_ptr, rows * 3 + 1, d_l21, kmask)
        _accumulate(d_chol_ptr, rows * 3 + 2, d_l22, kmask)
        if HAS_OPACITY:
            _accumulate(d_opacity_ptr, rows, d_op, kmask)
    tl.debug_barrier()  # a next chunk reads back the gradients stored by this one


def launch_config(table: dict, pixels: int, channels: int, mode: str, backward: bool) -> dict:
    """Block sizes and warps of a launch from a kernel's table {"forward": (BLOCK_PIX,
    BLOCK_K, num_warps), "backward": {mode: (...)}}; tl.dot needs every side >= 16."""
    block_pix, block_k, num_warps = table["backward"][mode] if backward else table["forward"]
    block_pix = min(block_pix, max(16, triton.next_power_of_2(pixels)))
    block_c = max(16, triton.next_power_of_2(channels))
    return dict(BLOCK_PIX=block_pix, BLOCK_K=block_k, BLOCK_C=block_c, num_warps=num_warps)
