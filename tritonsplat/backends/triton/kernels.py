"""The Triton kernels behind both rasterizers, and what their launchers share.

Both operations reduce to the same work on "units": a patch's canvas (S x S pixels, its
own K Gaussians) or a tile (T x T pixels, the Gaussians the binning lists for it). Every
unit owns a contiguous range of *rows*, one per Gaussian (patches) or per binning entry
(tiles), padded to a multiple of 4 with rows that can never contribute.

Four kernels:

  _prepare_kernel  rows -> a field-major table [6 + C, R] of what the hot loops need:
                   the linear forms u' = A x + B, v' = D y + E x + F (with x, y the pixel
                   centre relative to the unit's centre, and the scale sqrt(log2(e)/2)
                   folded in, so G = 2^-(u'^2 + v'^2)), the opacity, then the colors.
                   A = s / l11, B = -A mx, D = s / l22, E = -s l21 / (l11 l22),
                   F = -D my - E mx. Padding rows get F = 1e4: G = 2^-1e8 = 0.
  _render_kernel   forward. Pixel-parallel: each thread owns PPT pixels of the unit and
                   walks the unit's rows front to back, 4 at a time, holding the 4 rows'
                   fields in registers (one 16-byte load per field: the table is
                   field-major) and accumulating per channel in registers:
                     "sum"         acc_c += alpha c_c
                     "normalized"  acc_c += alpha c_c, den += alpha; out = acc / (den + 1e-6)
                     "alpha"       acc_c += alpha T c_c, T *= 1 - alpha; out = acc + T bg
                   No shared memory, no barrier, no cross-thread reduction in the loop.
  _state_kernel    what the backward needs per pixel besides the upstream gradient, in
                   mode "alpha": the transmittance T at the start of every run of 4 rows
                   (front to back) and A, the composite behind every run dotted with the
                   gradient (back to front, A <- alpha (c . g) + (1 - alpha) A), so that
                   no division by 1 - alpha is ever needed (exact at alpha = 1).
  _grad_kernel     backward. Gaussian-parallel: each thread owns RUN = 4 consecutive rows
                   and walks every pixel of the unit (the pixel's upstream gradient is the
                   same load for every thread), keeping each row's partial sums in
                   registers; nothing is reduced across threads and every gradient row
                   has exactly one writer, so there are no atomics. With w = dL/da * a
                   (a = o G before the clamp) the exponent's gradient needs five sums,
                   sum w u', sum w u' x, sum w v', sum w v' x, sum w v' y, and the chain
                   rule to (means, cholesky) runs once per row at the end.

The scan-free formulation of "alpha" (transmittance carried in registers front to back,
the composite behind carried back to front) is the one 3D Gaussian splatting's CUDA
rasterizer uses for its backward; here the backward's per-run states come from a pass
of their own instead of a division by 1 - alpha.
"""

from __future__ import annotations

import math

import triton
import triton.language as tl

from ...constants import CUT_Q, NORMALIZED_EPS

MODE_IDS = {"sum": 0, "alpha": 1, "normalized": 2}
SCALE = math.sqrt(0.5 * math.log2(math.e))  # G = exp(-q/2) = 2^-(q s^2)
LN2 = math.log(2.0)
CUT_Q_SCALED = CUT_Q * SCALE * SCALE  # the same cut on u'^2 + v'^2
FIELDS = 6  # A, B, D, E, F, opacity; the colors follow in the table
RUN = 4  # rows a thread loads at once (forward) and owns (backward)
NEVER = 1.0e4  # F of a padding row: v' = 1e4, G = 2^-1e8 = 0
ROW_ALIGN = 16  # the table's row count is a multiple of this (16-byte aligned fields)
_SCALE: tl.constexpr = tl.constexpr(SCALE)
_CUT: tl.constexpr = tl.constexpr(CUT_Q_SCALED)
_EPS: tl.constexpr = tl.constexpr(NORMALIZED_EPS)
_LN2: tl.constexpr = tl.constexpr(LN2)
_NEVER: tl.constexpr = tl.constexpr(NEVER)


# ----------------------------------------------------------------------------- device functions


@triton.jit
def _raw_rows(r, valid, src, cx, cy, means_ptr, chol_ptr, opacity_ptr, HAS_OPACITY: tl.constexpr):
    """Mean relative to the unit's centre, Cholesky factor and opacity of rows `r` (their
    Gaussians `src`); padding rows get a unit Gaussian at the centre."""
    mx = tl.load(means_ptr + 2 * src, mask=valid, other=0.0) - cx
    my = tl.load(means_ptr + 2 * src + 1, mask=valid, other=0.0) - cy
    l11 = tl.load(chol_ptr + 3 * src, mask=valid, other=1.0)
    l21 = tl.load(chol_ptr + 3 * src + 1, mask=valid, other=0.0)
    l22 = tl.load(chol_ptr + 3 * src + 2, mask=valid, other=1.0)
    if HAS_OPACITY:
        op = tl.load(opacity_ptr + src, mask=valid, other=0.0)
    else:
        op = tl.where(valid, 1.0, 0.0)
    return mx, my, l11, l21, l22, op


@triton.jit
def _row_sources(r, R, K, KP, src_ptr, unit_ptr, TILES_X, TILES_Y, CENTRE: tl.constexpr, TILE: tl.constexpr,
                 FREE: tl.constexpr):  # fmt: skip
    """Gaussian index, validity and unit centre (x, y) of rows `r`. Patches: row n * KP + k
    is Gaussian n * K + k (valid for k < K), centred on the patch core's centre CENTRE.
    Tiles: the rows' Gaussians and units come from tables (-1 marks padding)."""
    inb = r < R
    if FREE:
        src = tl.load(src_ptr + r, mask=inb, other=-1)
        tile = tl.load(unit_ptr + r, mask=inb, other=0) % (TILES_X * TILES_Y)
        cx = (tile % TILES_X).to(tl.float32) * TILE + 0.5 * TILE
        cy = (tile // TILES_X).to(tl.float32) * TILE + 0.5 * TILE
        valid = inb & (src >= 0)
    else:
        k = r % KP
        valid = inb & (k < K)
        src = (r // KP) * K + k
        cx = tl.full(r.shape, CENTRE, tl.float32)
        cy = cx
    return tl.where(valid, src, 0), valid, cx, cy


@triton.jit
def _linear_forms(mx, my, l11, l21, l22, valid):
    """(A, B, D, E, F) with u' = A x + B, v' = D y + E x + F (see the module docstring)."""
    s = _SCALE
    i11 = 1.0 / l11
    i22 = 1.0 / l22
    a = s * i11
    d = s * i22
    e = -s * l21 * i11 * i22
    f = tl.where(valid, -d * my - e * mx, _NEVER)
    return tl.where(valid, a, 0.0), tl.where(valid, -a * mx, 0.0), tl.where(valid, d, 0.0), tl.where(valid, e, 0.0), f


@triton.jit
def _alpha(u, v, op, alpha_max, alpha_min, HAS_OPACITY: tl.constexpr, CLAMP: tl.constexpr, CUT_MIN: tl.constexpr,
           CUT: tl.constexpr):  # fmt: skip
    """(G, a = o G, alpha) of a tile of pairs. CLAMP: alpha_max can fire (opacity given or
    alpha_max < 1; G <= 1 otherwise). CUT_MIN: alpha_min > 0. CUT: the 3-sigma cut."""
    q = u * u + v * v
    g = tl.exp2(-q)
    if CUT:
        g = tl.where(q <= _CUT, g, 0.0)
    if HAS_OPACITY:
        a = g * op
    else:
        a = g
    alpha = a
    if CLAMP:
        alpha = tl.minimum(alpha, alpha_max)
    if CUT_MIN:
        alpha = tl.where(alpha >= alpha_min, alpha, 0.0)
    return g, a, alpha


@triton.jit
def _unit_rows(n, unit_rows_ptr, KP, FREE: tl.constexpr):
    """First row and row count of unit n (a multiple of RUN = 4 both)."""
    if FREE:
        row0 = tl.load(unit_rows_ptr + n)
        count = tl.load(unit_rows_ptr + n + 1) - row0
    else:
        row0 = n * KP
        count = KP.to(tl.int64) + 0 * n
    return tl.multiple_of(row0, 4), count


@triton.jit
def _out_offsets(b, pu, pv, row, col, s_ob, s_or, s_os, s_ou, s_ov):
    """Element offsets of canvas pixels (row, col) of the unit at (b, pu, pv), in int64
    whatever the strides' type: B * C * H * W passes 2^31 at 8 x 64 x 2048 x 2048."""
    base = b.to(tl.int64) * s_ob + pu.to(tl.int64) * s_ou + pv.to(tl.int64) * s_ov
    return base + row.to(tl.int64) * s_or + col.to(tl.int64) * s_os


@triton.jit
def _unit_origin(n, HP, WP):
    """(image, patch-or-tile row, patch-or-tile column) of unit n."""
    return n // (HP * WP), (n // WP) % HP, n % WP


@triton.jit
def _rows4(t):
    """The 4 rows of a [4, A, B] tile as [A, B] tiles (dimension 0 lies in registers)."""
    a, b = tl.split(tl.reshape(tl.permute(t, (1, 2, 0)), (t.shape[1], t.shape[2], 2, 2)))
    r0, r2 = tl.split(a)
    r1, r3 = tl.split(b)
    return r0, r1, r2, r3


@triton.jit
def _zeros(shape: tl.constexpr, COUNT: tl.constexpr):
    t = ()
    for _ in tl.static_range(COUNT):
        t = t + (tl.zeros(shape, tl.float32),)
    return t


# ----------------------------------------------------------------------------- kernels


@triton.jit
def _prepare_kernel(
    means_ptr,  # [G, 2] float32 (patch-local or image pixels)
    chol_ptr,  # [G, 3]
    opacity_ptr,  # [G] (unused without HAS_OPACITY)
    colors_ptr,  # [G, C]
    src_ptr,  # [R] int64 Gaussian of each row, -1 for padding (FREE only)
    unit_ptr,  # [R] int64 unit of each row (FREE only)
    table_ptr,  # [6 + C, R] out
    R, K, KP, C, TILES_X, TILES_Y,
    CENTRE: tl.constexpr, TILE: tl.constexpr, FREE: tl.constexpr, HAS_OPACITY: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    r = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inb = r < R
    src, valid, cx, cy = _row_sources(r, R, K, KP, src_ptr, unit_ptr, TILES_X, TILES_Y, CENTRE, TILE, FREE)
    mx, my, l11, l21, l22, op = _raw_rows(r, valid, src, cx, cy, means_ptr, chol_ptr, opacity_ptr, HAS_OPACITY)
    a, b, d, e, f = _linear_forms(mx, my, l11, l21, l22, valid)
    R64 = R.to(tl.int64)
    tl.store(table_ptr + r, a, mask=inb)
    tl.store(table_ptr + R64 + r, b, mask=inb)
    tl.store(table_ptr + 2 * R64 + r, d, mask=inb)
    tl.store(table_ptr + 3 * R64 + r, e, mask=inb)
    tl.store(table_ptr + 4 * R64 + r, f, mask=inb)
    tl.store(table_ptr + 5 * R64 + r, op, mask=inb)
    for c in range(0, C):
        col = tl.load(colors_ptr + src * C + c, mask=valid, other=0.0)
        tl.store(table_ptr + (6 + c) * R64 + r, col, mask=inb)


@triton.jit
def _pixel_slots(chunk, SIDE: tl.constexpr, OFFSET: tl.constexpr, PPT: tl.constexpr, NT: tl.constexpr):
    """A chunk's pixels as a [PPT, NT] grid (thread t holds pixels t, t + NT, ...): index,
    canvas row and column, centre (x, y) relative to the unit's centre, validity."""
    p = chunk * (PPT * NT) + tl.arange(0, PPT)[:, None] * NT + tl.arange(0, NT)[None, :]
    row = p // SIDE
    col = p % SIDE
    return p, row, col, col.to(tl.float32) + OFFSET, row.to(tl.float32) + OFFSET, p < SIDE * SIDE


@triton.jit
def _render_kernel(
    table_ptr,  # [6 + C, R] from _prepare_kernel
    unit_rows_ptr,  # [units + 1] int64 first row of every unit (FREE only)
    bg_ptr,  # [C] (HAS_BG only)
    wy_ptr, wx_ptr,  # [Hp, S], [Wp, S] feathering tables (patches only)
    out_ptr,  # image or canvases, addressed by the strides below
    den_ptr,  # [units, SIDE^2] normaliser (RAW only)
    R, KP, C, HP, WP, H, W,
    s_ob, s_oc, s_or, s_os, s_ou, s_ov,
    alpha_max, alpha_min,
    SIDE: tl.constexpr, OFFSET: tl.constexpr,
    FREE: tl.constexpr, RAW: tl.constexpr, MODE: tl.constexpr,
    HAS_OPACITY: tl.constexpr, HAS_BG: tl.constexpr, CLAMP: tl.constexpr, CUT_MIN: tl.constexpr,
    CB: tl.constexpr, PPT: tl.constexpr, NT: tl.constexpr, DEFER: tl.constexpr,
):  # fmt: skip
    """Program (unit, pixel chunk, channel block). RAW writes unfeathered canvases
    [units, C, SIDE^2] (and the normaliser), for the backward of "normalized"."""
    n = tl.program_id(0).to(tl.int64)
    c0 = tl.program_id(2) * CB
    p, row, col, x, y, pmask = _pixel_slots(tl.program_id(1), SIDE, OFFSET, PPT, NT)
    x = x[None, :, :]  # [1, PPT, NT]: broadcast against the 4 rows of a block
    y = y[None, :, :]
    row0, count = _unit_rows(n, unit_rows_ptr, KP, FREE)
    R64 = R.to(tl.int64)
    kk = tl.arange(0, 4)[:, None, None] + tl.zeros((1, 1, NT), tl.int64)  # [4, 1, NT], constant along NT
    if DEFER and MODE != 1:  # per-row partial sums, reduced once after the loop (1 FMA per pair and channel)
        acc = _zeros((4, PPT, NT), CB)
    else:  # reduced every block (fewer registers for many channels)
        acc = _zeros((PPT, NT), CB)
    den = tl.zeros((4, PPT, NT), tl.float32)
    trans = tl.full((PPT, NT), 1.0, tl.float32)
    for k0 in range(row0, row0 + count, 4):
        rows = table_ptr + k0 + kk
        u = x * tl.load(rows) + tl.load(rows + R64)
        v = y * tl.load(rows + 2 * R64) + (x * tl.load(rows + 3 * R64) + tl.load(rows + 4 * R64))
        _, _, alpha = _alpha(u, v, tl.load(rows + 5 * R64), alpha_max, alpha_min, HAS_OPACITY, CLAMP, CUT_MIN, FREE)
        if MODE == 1:
            # front to back through the 4 rows, T in registers: w = alpha T, T -= w
            a0, a1, a2, a3 = _rows4(alpha)
            w0 = a0 * trans
            trans = trans - w0
            w1 = a1 * trans
            trans = trans - w1
            w2 = a2 * trans
            trans = trans - w2
            w3 = a3 * trans
            trans = trans - w3
            new = ()
            for c in tl.static_range(CB):
                c0_, c1_, c2_, c3_ = _rows4(tl.load(rows + (6 + c0 + c) * R64, mask=c0 + c < C, other=0.0))
                new = new + (acc[c] + w0 * c0_ + w1 * c1_ + w2 * c2_ + w3 * c3_,)
            acc = new
        else:
            if MODE == 2:
                den += alpha
            new = ()
            for c in tl.static_range(CB):
                col_c = tl.load(rows + (6 + c0 + c) * R64, mask=c0 + c < C, other=0.0)
                if DEFER:
                    new = new + (acc[c] + alpha * col_c,)
                else:
                    new = new + (acc[c] + tl.sum(alpha * col_c, 0),)
            acc = new
    b, pu, pv = _unit_origin(n, HP, WP)
    if FREE and not RAW:  # tiles at the right and bottom edges reach past the image
        pmask = pmask & (pu * SIDE + row < H) & (pv * SIDE + col < W)
    den_p = tl.sum(den, 0)
    if RAW:
        if MODE == 2:
            tl.store(den_ptr + n * (SIDE * SIDE) + p, den_p, mask=pmask & (c0 == 0))
        scale = tl.full((PPT, NT), 1.0, tl.float32)
    elif MODE == 2:
        scale = 1.0 / (den_p + _EPS)
    else:
        scale = tl.full((PPT, NT), 1.0, tl.float32)
    if not FREE and not RAW:  # feathering: the weight of this canvas pixel in the image
        scale = scale * tl.load(wy_ptr + pu * SIDE + row, mask=pmask, other=0.0)
        scale = scale * tl.load(wx_ptr + pv * SIDE + col, mask=pmask, other=0.0)
    offs = _out_offsets(b, pu, pv, row, col, s_ob, s_or, s_os, s_ou, s_ov)
    for c in tl.static_range(CB):
        if DEFER and MODE != 1:
            value = tl.sum(acc[c], 0)
        else:
            value = acc[c]
        if MODE == 1:
            if HAS_BG:
                value = value + trans * tl.load(bg_ptr + c0 + c, mask=c0 + c < C, other=0.0)
        tl.store(out_ptr + offs + (c0 + c).to(tl.int64) * s_oc, value * scale, mask=pmask & (c0 + c < C))  # int64


@triton.jit
def _state_kernel(
    table_ptr, unit_rows_ptr, bg_ptr,
    gcan_ptr,  # [units, C, SIDE^2] upstream gradient of every canvas pixel (feathered)
    tstart_ptr,  # [SIDE^2, R / 4] out: T at the start of every run of 4 rows (runs numbered row // 4)
    tfinal_ptr,  # [units, SIDE^2] out: T behind every row
    behind_ptr,  # [channel blocks, SIDE^2, R / 4] out: A behind every run's last row
    R, KP, C, alpha_max, alpha_min,
    SIDE: tl.constexpr, OFFSET: tl.constexpr, FREE: tl.constexpr,
    HAS_OPACITY: tl.constexpr, HAS_BG: tl.constexpr, CLAMP: tl.constexpr, CUT_MIN: tl.constexpr,
    CB: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """Program (unit, pixel chunk, channel block): the per-run states of mode "alpha"."""
    n = tl.program_id(0).to(tl.int64)
    cb = tl.program_id(2)
    c0 = cb * CB
    p = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    pmask = p < SIDE * SIDE
    x = (p % SIDE).to(tl.float32) + OFFSET
    y = (p // SIDE).to(tl.float32) + OFFSET
    row0, count = _unit_rows(n, unit_rows_ptr, KP, FREE)
    R64 = R.to(tl.int64)
    runs = count // 4
    RUNS = R64 // 4
    first = row0 // 4  # global number of the unit's first run
    trans = tl.full((BLOCK,), 1.0, tl.float32)
    for i in range(0, runs):
        tl.store(tstart_ptr + p * RUNS + first + i, trans, mask=pmask & (cb == 0))
        for j in tl.static_range(4):
            rp = table_ptr + row0 + 4 * i + j
            u = x * tl.load(rp) + tl.load(rp + R64)
            v = y * tl.load(rp + 2 * R64) + (x * tl.load(rp + 3 * R64) + tl.load(rp + 4 * R64))
            _, _, alpha = _alpha(u, v, tl.load(rp + 5 * R64), alpha_max, alpha_min, HAS_OPACITY, CLAMP, CUT_MIN, FREE)
            trans = trans * (1.0 - alpha)
    tl.store(tfinal_ptr + n * (SIDE * SIDE) + p, trans, mask=pmask & (cb == 0))
    grads = ()
    for c in tl.static_range(CB):
        gp = gcan_ptr + (n * C + c0 + c) * (SIDE * SIDE) + p
        grads = grads + (tl.load(gp, mask=pmask & (c0 + c < C), other=0.0),)
    behind = tl.zeros((BLOCK,), tl.float32)
    if HAS_BG:
        for c in tl.static_range(CB):
            behind += grads[c] * tl.load(bg_ptr + c0 + c, mask=c0 + c < C, other=0.0)
    out = behind_ptr + (cb.to(tl.int64) * (SIDE * SIDE) + p) * RUNS + first
    for i in range(0, runs):
        run = runs - 1 - i
        tl.store(out + run, behind, mask=pmask)
        for jj in tl.static_range(4):
            rp = table_ptr + row0 + 4 * run + (3 - jj)
            u = x * tl.load(rp) + tl.load(rp + R64)
            v = y * tl.load(rp + 2 * R64) + (x * tl.load(rp + 3 * R64) + tl.load(rp + 4 * R64))
            _, _, alpha = _alpha(u, v, tl.load(rp + 5 * R64), alpha_max, alpha_min, HAS_OPACITY, CLAMP, CUT_MIN, FREE)
            beta = tl.zeros((BLOCK,), tl.float32)
            for c in tl.static_range(CB):
                beta += grads[c] * tl.load(rp + (6 + c0 + c) * R64, mask=c0 + c < C, other=0.0)
            behind = behind + alpha * (beta - behind)


@triton.jit
def _grad_kernel(
    table_ptr, unit_rows_ptr, src_ptr, unit_ptr, means_ptr, chol_ptr,
    gcan_ptr,  # [units, C, SIDE^2] upstream gradient of every canvas pixel ("normalized": / den)
    gamma_ptr,  # [units, SIDE^2] "normalized": g' . out
    tstart_ptr, behind_ptr,  # "alpha": from _state_kernel
    work_ptr,  # [programs, 2] int64 (unit, chunk) of every program (FREE only)
    d_geo_ptr,  # [channel blocks, 6, R] out: d mean x, d mean y, d l11, d l21, d l22, d opacity per row
    d_col_ptr,  # [C, R] out
    R, K, KP, C, TILES_X, TILES_Y, alpha_max, alpha_min,
    SIDE: tl.constexpr, OFFSET: tl.constexpr, CENTRE: tl.constexpr, TILE: tl.constexpr,
    FREE: tl.constexpr, MODE: tl.constexpr,
    HAS_OPACITY: tl.constexpr, CLAMP: tl.constexpr, CUT_MIN: tl.constexpr,
    CB: tl.constexpr, NT: tl.constexpr,
):  # fmt: skip
    """Program (unit, chunk of RUN * NT rows, channel block); with FREE the (unit, chunk)
    pairs come from a work list, since tiles hold different numbers of rows. Thread t owns
    rows 4t .. 4t + 3 of the chunk, in compositing order."""
    if FREE:
        n = tl.load(work_ptr + 2 * tl.program_id(0))
        chunk = tl.load(work_ptr + 2 * tl.program_id(0) + 1)
    else:
        n = tl.program_id(0).to(tl.int64)
        chunk = tl.program_id(1).to(tl.int64)
    cb = tl.program_id(2)
    c0 = cb * CB
    row0, count = _unit_rows(n, unit_rows_ptr, KP, FREE)
    R64 = R.to(tl.int64)
    RUNS = R64 // 4
    run = chunk * NT + tl.arange(0, NT)  # [NT] the thread's run within the unit
    live_run = 4 * run < count
    # the thread's 4 rows: fields and colors in registers for the whole pixel walk
    rows = ()
    fa = ()
    fb = ()
    fd = ()
    fe = ()
    ff = ()
    fo = ()
    cols = ()
    for j in tl.static_range(4):
        r = row0 + 4 * run + j
        rows = rows + (r,)
        fa = fa + (tl.load(table_ptr + r, mask=live_run, other=0.0),)
        fb = fb + (tl.load(table_ptr + R64 + r, mask=live_run, other=0.0),)
        fd = fd + (tl.load(table_ptr + 2 * R64 + r, mask=live_run, other=0.0),)
        fe = fe + (tl.load(table_ptr + 3 * R64 + r, mask=live_run, other=0.0),)
        ff = ff + (tl.load(table_ptr + 4 * R64 + r, mask=live_run, other=_NEVER),)
        fo = fo + (tl.load(table_ptr + 5 * R64 + r, mask=live_run, other=0.0),)
        cj = ()
        for c in tl.static_range(CB):
            cj = cj + (tl.load(table_ptr + (6 + c0 + c) * R64 + r, mask=live_run & (c0 + c < C), other=0.0),)
        cols = cols + (cj,)
    s_a = _zeros((NT,), 4)
    s_b = _zeros((NT,), 4)
    s_d = _zeros((NT,), 4)
    s_e = _zeros((NT,), 4)
    s_f = _zeros((NT,), 4)
    s_o = _zeros((NT,), 4)
    d_col = ()
    for _ in tl.static_range(4):
        d_col = d_col + (_zeros((NT,), CB),)
    gbase = gcan_ptr + (n * C + c0) * (SIDE * SIDE)
    for prow in range(0, SIDE):
        y = prow + (OFFSET + 0.0)  # an int loop counter, as float
        for pcol in range(0, SIDE):
            x = pcol + (OFFSET + 0.0)
            p = prow * SIDE + pcol
            g = ()
            for c in tl.static_range(CB):
                g = g + (tl.load(gbase + c * (SIDE * SIDE) + p, mask=c0 + c < C, other=0.0),)
            if MODE == 2:  # delta = sum over channel blocks of beta, less gamma once
                gamma = tl.load(gamma_ptr + n * (SIDE * SIDE) + p, mask=cb == 0, other=0.0)
            if MODE == 1:
                grun = row0 // 4 + run
                t_run = tl.load(tstart_ptr + p * RUNS + grun, mask=live_run, other=0.0)
                behind = tl.load(behind_ptr + (cb.to(tl.int64) * (SIDE * SIDE) + p) * RUNS + grun,
                                 mask=live_run, other=0.0)  # fmt: skip
            gs = ()
            alphas = ()
            betas = ()
            for j in tl.static_range(4):
                u = fa[j] * x + fb[j]
                v = fd[j] * y + (fe[j] * x + ff[j])
                gj, aj, alpha = _alpha(u, v, fo[j], alpha_max, alpha_min, HAS_OPACITY, CLAMP, CUT_MIN, FREE)
                beta = g[0] * cols[j][0]
                for c in tl.static_range(1, CB):
                    beta += g[c] * cols[j][c]
                gs = gs + ((u, v, gj, aj),)
                alphas = alphas + (alpha,)
                betas = betas + (beta,)
            if MODE == 1:
                # T before each row (front to back), then A behind each row (back to front)
                ts = ()
                for j in tl.static_range(4):
                    ts = ts + (t_run,)
                    t_run = t_run * (1.0 - alphas[j])
                deltas = ()
                for j in tl.static_range(3, -1, -1):
                    deltas = (ts[j] * (betas[j] - behind),) + deltas
                    behind = behind + alphas[j] * (betas[j] - behind)
            new_a = ()
            new_b = ()
            new_d = ()
            new_e = ()
            new_f = ()
            new_o = ()
            new_col = ()
            for j in tl.static_range(4):
                u, v, gj, aj = gs[j]
                if MODE == 0:
                    delta = betas[j]
                    weight = alphas[j]
                elif MODE == 2:
                    delta = betas[j] - gamma
                    weight = alphas[j]
                else:
                    delta = deltas[j]
                    weight = alphas[j] * ts[j]
                if CLAMP:
                    delta = tl.where(aj < alpha_max, delta, 0.0)
                if CUT_MIN:
                    delta = tl.where(aj >= alpha_min, delta, 0.0)
                w = delta * aj
                wu = w * u
                wv = w * v
                new_a = new_a + (s_a[j] + wu * x,)
                new_b = new_b + (s_b[j] + wu,)
                new_d = new_d + (s_d[j] + wv * y,)
                new_e = new_e + (s_e[j] + wv * x,)
                new_f = new_f + (s_f[j] + wv,)
                if HAS_OPACITY:
                    new_o = new_o + (s_o[j] + delta * gj,)
                else:
                    new_o = new_o + (s_o[j],)
                cj = ()
                for c in tl.static_range(CB):
                    cj = cj + (d_col[j][c] + weight * g[c],)
                new_col = new_col + (cj,)
            s_a = new_a
            s_b = new_b
            s_d = new_d
            s_e = new_e
            s_f = new_f
            s_o = new_o
            d_col = new_col
    # chain rule, once per row: (A, B, D, E, F) -> (means, cholesky)
    for j in tl.static_range(4):
        r = rows[j]
        src, valid, cx, cy = _row_sources(r, R, K, KP, src_ptr, unit_ptr, TILES_X, TILES_Y, CENTRE, TILE, FREE)
        valid = valid & live_run
        mx, my, l11, l21, l22, _ = _raw_rows(r, valid, src, cx, cy, means_ptr, chol_ptr, chol_ptr, False)
        k = -2.0 * _LN2  # d 2^-(u'^2 + v'^2) / d u' = -2 ln2 u' G
        g_a = k * s_a[j]
        g_b = k * s_b[j]
        g_d = k * s_d[j]
        g_e = k * s_e[j]
        g_f = k * s_f[j]
        a, _, d, e, _ = _linear_forms(mx, my, l11, l21, l22, valid)
        g_a2 = g_a - g_b * mx
        g_d2 = g_d - g_f * my
        g_e2 = g_e - g_f * mx
        out = d_geo_ptr + cb * 6 * R64 + r
        tl.store(out, -(g_b * a + g_f * e), mask=valid)
        tl.store(out + R64, -g_f * d, mask=valid)
        tl.store(out + 2 * R64, -(g_a2 * a + g_e2 * e) / l11, mask=valid)
        tl.store(out + 3 * R64, -g_e2 * _SCALE / (l11 * l22), mask=valid)
        tl.store(out + 4 * R64, -(g_d2 * d + g_e2 * e) / l22, mask=valid)
        tl.store(out + 5 * R64, s_o[j], mask=valid)
        for c in tl.static_range(CB):
            tl.store(d_col_ptr + (c0 + c) * R64 + r, d_col[j][c], mask=valid & (c0 + c < C))
