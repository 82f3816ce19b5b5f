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

# modes, as the kernels' MODE constexpr
MODE_SUM: tl.constexpr = tl.constexpr(0)
MODE_ALPHA: tl.constexpr = tl.constexpr(1)
MODE_NORMALIZED: tl.constexpr = tl.constexpr(2)
MODE_IDS = {"sum": MODE_SUM.value, "alpha": MODE_ALPHA.value, "normalized": MODE_NORMALIZED.value}
# the row table's fields: row r of field F is table[F * R + r]
FIELD_A: tl.constexpr = tl.constexpr(0)  # u' = A x + B
FIELD_B: tl.constexpr = tl.constexpr(1)
FIELD_D: tl.constexpr = tl.constexpr(2)  # v' = D y + E x + F
FIELD_E: tl.constexpr = tl.constexpr(3)
FIELD_F: tl.constexpr = tl.constexpr(4)
FIELD_OPACITY: tl.constexpr = tl.constexpr(5)
FIELD_COLOR: tl.constexpr = tl.constexpr(6)  # channel c is field FIELD_COLOR + c
SCALE = math.sqrt(0.5 * math.log2(math.e))  # G = exp(-q/2) = 2^-(q s^2)
LN2 = math.log(2.0)
CUT_Q_SCALED = CUT_Q * SCALE * SCALE  # the same cut on u'^2 + v'^2
FIELDS = FIELD_COLOR.value  # A, B, D, E, F, opacity; the colors follow in the table
RUN = 4  # rows a thread loads at once (forward) and owns (backward); `_rows4` splits them
NEVER = 1.0e4  # F of a padding row: v' = 1e4, G = 2^-1e8 = 0
ROW_ALIGN = 16  # the table's row count is a multiple of this (16-byte aligned fields)
_SCALE: tl.constexpr = tl.constexpr(SCALE)
_CUT: tl.constexpr = tl.constexpr(CUT_Q_SCALED)
_EPS: tl.constexpr = tl.constexpr(NORMALIZED_EPS)
_LN2: tl.constexpr = tl.constexpr(LN2)
_NEVER: tl.constexpr = tl.constexpr(NEVER)
_RUN: tl.constexpr = tl.constexpr(RUN)


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
           CUT_3SIGMA: tl.constexpr):  # fmt: skip
    """(G, a = o G, alpha) of a tile of pairs. CLAMP: alpha_max can fire (opacity given or
    alpha_max < 1; G <= 1 otherwise). CUT_MIN: alpha_min > 0. CUT_3SIGMA: G = 0 past the
    3-sigma ellipse (q > 9), the free rasterizer's contract."""
    q = u * u + v * v
    g = tl.exp2(-q)
    if CUT_3SIGMA:
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
def _uv(x, y, a, b, d, e, f):
    """The linear forms u' = A x + B and v' = D y + (E x + F) at pixel centre (x, y)."""
    return x * a + b, y * d + (x * e + f)


@triton.jit
def _table_uv(rows, x, y, R64):
    """u' and v' of the table rows at pointers `rows`, at (x, y)."""
    u = x * tl.load(rows + FIELD_A * R64) + tl.load(rows + FIELD_B * R64)
    v = y * tl.load(rows + FIELD_D * R64) + (x * tl.load(rows + FIELD_E * R64) + tl.load(rows + FIELD_F * R64))
    return u, v  # `_uv`'s forms, each field loaded where it is used


@triton.jit
def _unit_rows(n, unit_rows_ptr, KP, FREE: tl.constexpr):
    """First row and row count of unit n (both multiples of RUN)."""
    if FREE:
        row0 = tl.load(unit_rows_ptr + n)
        count = tl.load(unit_rows_ptr + n + 1) - row0
    else:
        row0 = n * KP
        count = KP.to(tl.int64) + 0 * n
    return tl.multiple_of(row0, _RUN), count


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
    tl.store(table_ptr + FIELD_A * R64 + r, a, mask=inb)
    tl.store(table_ptr + FIELD_B * R64 + r, b, mask=inb)
    tl.store(table_ptr + FIELD_D * R64 + r, d, mask=inb)
    tl.store(table_ptr + FIELD_E * R64 + r, e, mask=inb)
    tl.store(table_ptr + FIELD_F * R64 + r, f, mask=inb)
    tl.store(table_ptr + FIELD_OPACITY * R64 + r, op, mask=inb)
    for c in range(0, C):
        col = tl.load(colors_ptr + src * C + c, mask=valid, other=0.0)
        tl.store(table_ptr + (FIELD_COLOR + c) * R64 + r, col, mask=inb)


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
    CUT_3SIGMA: tl.constexpr, CB: tl.constexpr, PPT: tl.constexpr, NT: tl.constexpr, DEFER: tl.constexpr,
):  # fmt: skip
    """Program (unit, pixel chunk, channel block). RAW writes unfeathered canvases
    [units, C, SIDE^2] (and the normaliser), for the backward of "normalized"."""
    n = tl.program_id(0).to(tl.int64)
    c0 = tl.program_id(2) * CB
    p, row, col, x, y, pmask = _pixel_slots(tl.program_id(1), SIDE, OFFSET, PPT, NT)
    x = x[None, :, :]  # [1, PPT, NT]: broadcast against the RUN rows of a block
    y = y[None, :, :]
    row0, count = _unit_rows(n, unit_rows_ptr, KP, FREE)
    R64 = R.to(tl.int64)
    kk = tl.arange(0, _RUN)[:, None, None] + tl.zeros((1, 1, NT), tl.int64)  # [RUN, 1, NT], constant along NT
    if DEFER and MODE != MODE_ALPHA:  # per-row partial sums, reduced once after the loop (1 FMA per pair and channel)
        acc = _zeros((_RUN, PPT, NT), CB)
    else:  # reduced every block (fewer registers for many channels)
        acc = _zeros((PPT, NT), CB)
    den = tl.zeros((_RUN, PPT, NT), tl.float32)
    trans = tl.full((PPT, NT), 1.0, tl.float32)
    for k0 in range(row0, row0 + count, _RUN):
        rows = table_ptr + k0 + kk
        u, v = _table_uv(rows, x, y, R64)
        op = tl.load(rows + FIELD_OPACITY * R64)
        _, _, alpha = _alpha(u, v, op, alpha_max, alpha_min, HAS_OPACITY, CLAMP, CUT_MIN, CUT_3SIGMA)
        if MODE == MODE_ALPHA:
            # front to back through the RUN = 4 rows, T in registers: w = alpha T, T -= w
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
                color = tl.load(rows + (FIELD_COLOR + c0 + c) * R64, mask=c0 + c < C, other=0.0)
                c0_, c1_, c2_, c3_ = _rows4(color)
                new = new + (acc[c] + w0 * c0_ + w1 * c1_ + w2 * c2_ + w3 * c3_,)
            acc = new
        else:
            if MODE == MODE_NORMALIZED:
                den += alpha
            new = ()
            for c in tl.static_range(CB):
                col_c = tl.load(rows + (FIELD_COLOR + c0 + c) * R64, mask=c0 + c < C, other=0.0)
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
        if MODE == MODE_NORMALIZED:
            tl.store(den_ptr + n * (SIDE * SIDE) + p, den_p, mask=pmask & (c0 == 0))
        scale = tl.full((PPT, NT), 1.0, tl.float32)
    elif MODE == MODE_NORMALIZED:
        scale = 1.0 / (den_p + _EPS)
    else:
        scale = tl.full((PPT, NT), 1.0, tl.float32)
    if not FREE and not RAW:  # feathering: the weight of this canvas pixel in the image
        scale = scale * tl.load(wy_ptr + pu * SIDE + row, mask=pmask, other=0.0)
        scale = scale * tl.load(wx_ptr + pv * SIDE + col, mask=pmask, other=0.0)
    offs = _out_offsets(b, pu, pv, row, col, s_ob, s_or, s_os, s_ou, s_ov)
    for c in tl.static_range(CB):
        if DEFER and MODE != MODE_ALPHA:
            value = tl.sum(acc[c], 0)
        else:
            value = acc[c]
        if MODE == MODE_ALPHA:
            if HAS_BG:
                value = value + trans * tl.load(bg_ptr + c0 + c, mask=c0 + c < C, other=0.0)
        tl.store(out_ptr + offs + (c0 + c).to(tl.int64) * s_oc, value * scale, mask=pmask & (c0 + c < C))  # int64


@triton.jit
def _state_kernel(
    table_ptr, unit_rows_ptr, bg_ptr,
    gcan_ptr,  # [units, C, SIDE^2] upstream gradient of every canvas pixel (feathered)
    tstart_ptr,  # [SIDE^2, R / RUN] out: T at the start of every run of RUN rows (runs numbered row // RUN)
    tfinal_ptr,  # [units, SIDE^2] out: T behind the unit's last row, one value per pixel
    behind_ptr,  # [channel blocks, SIDE^2, R / RUN] out: A behind every run's last row
    R, KP, C, alpha_max, alpha_min,
    SIDE: tl.constexpr, OFFSET: tl.constexpr, FREE: tl.constexpr,
    HAS_OPACITY: tl.constexpr, HAS_BG: tl.constexpr, CLAMP: tl.constexpr, CUT_MIN: tl.constexpr,
    CUT_3SIGMA: tl.constexpr, CB: tl.constexpr, BLOCK: tl.constexpr,
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
    runs = count // _RUN
    RUNS = R64 // _RUN
    first = row0 // _RUN  # global number of the unit's first run
    trans = tl.full((BLOCK,), 1.0, tl.float32)
    for i in range(0, runs):
        tl.store(tstart_ptr + p * RUNS + first + i, trans, mask=pmask & (cb == 0))
        for j in tl.static_range(_RUN):
            rp = table_ptr + row0 + _RUN * i + j
            u, v = _table_uv(rp, x, y, R64)
            op = tl.load(rp + FIELD_OPACITY * R64)
            _, _, alpha = _alpha(u, v, op, alpha_max, alpha_min, HAS_OPACITY, CLAMP, CUT_MIN, CUT_3SIGMA)
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
        for jj in tl.static_range(_RUN):
            rp = table_ptr + row0 + _RUN * run + (_RUN - 1 - jj)  # back to front
            u, v = _table_uv(rp, x, y, R64)
            op = tl.load(rp + FIELD_OPACITY * R64)
            _, _, alpha = _alpha(u, v, op, alpha_max, alpha_min, HAS_OPACITY, CLAMP, CUT_MIN, CUT_3SIGMA)
            beta = tl.zeros((BLOCK,), tl.float32)
            for c in tl.static_range(CB):
                beta += grads[c] * tl.load(rp + (FIELD_COLOR + c0 + c) * R64, mask=c0 + c < C, other=0.0)
            behind = behind + alpha * (beta - behind)


@triton.jit
def _grad_program(work_ptr, FREE: tl.constexpr):
    """(unit, row chunk) of this backward program: from the work list for tiles (they hold
    different numbers of rows), from the grid for patches."""
    if FREE:
        n = tl.load(work_ptr + 2 * tl.program_id(0))
        chunk = tl.load(work_ptr + 2 * tl.program_id(0) + 1)
    else:
        n = tl.program_id(0).to(tl.int64)
        chunk = tl.program_id(1).to(tl.int64)
    return n, chunk


@triton.jit
def _row_fields(table_ptr, r, live, R64, c0, C, CB: tl.constexpr):
    """Row r's (A, B, D, E, F, opacity) and its CB colors from channel c0 (dead rows read
    as padding: F = NEVER, G = 0)."""
    fields = (
        tl.load(table_ptr + FIELD_A * R64 + r, mask=live, other=0.0),
        tl.load(table_ptr + FIELD_B * R64 + r, mask=live, other=0.0),
        tl.load(table_ptr + FIELD_D * R64 + r, mask=live, other=0.0),
        tl.load(table_ptr + FIELD_E * R64 + r, mask=live, other=0.0),
        tl.load(table_ptr + FIELD_F * R64 + r, mask=live, other=_NEVER),
        tl.load(table_ptr + FIELD_OPACITY * R64 + r, mask=live, other=0.0),
    )
    colors = ()
    for c in tl.static_range(CB):
        colors = colors + (tl.load(table_ptr + (FIELD_COLOR + c0 + c) * R64 + r, mask=live & (c0 + c < C), other=0.0),)
    return fields, colors


@triton.jit
def _pair(fields, colors, g, x, y, alpha_max, alpha_min, HAS_OPACITY: tl.constexpr, CLAMP: tl.constexpr,
          CUT_MIN: tl.constexpr, CUT_3SIGMA: tl.constexpr, CB: tl.constexpr):  # fmt: skip
    """One row at pixel (x, y): u', v', G, a = o G, alpha, and beta = c . g (the row's
    color against the pixel's upstream gradient g)."""
    a_, b_, d_, e_, f_, op = fields
    u, v = _uv(x, y, a_, b_, d_, e_, f_)
    g_val, a, alpha = _alpha(u, v, op, alpha_max, alpha_min, HAS_OPACITY, CLAMP, CUT_MIN, CUT_3SIGMA)
    beta = g[0] * colors[0]
    for c in tl.static_range(1, CB):
        beta += g[c] * colors[c]
    return u, v, g_val, a, alpha, beta


@triton.jit
def _over_deltas(t_run, behind, pairs):
    """Mode "alpha" over a thread's RUN rows: T before each row (front to back from the
    run's T) and dL/dalpha_j / 1 = T_j (beta_j - A_j), A_j the composite behind row j
    (back to front from the run's A): (Ts, deltas)."""
    ts = ()
    for j in tl.static_range(_RUN):
        ts = ts + (t_run,)
        t_run = t_run * (1.0 - pairs[j][4])
    deltas = ()
    for j in tl.static_range(_RUN - 1, -1, -1):
        alpha, beta = pairs[j][4], pairs[j][5]
        deltas = (ts[j] * (beta - behind),) + deltas
        behind = behind + alpha * (beta - behind)
    return ts, deltas


@triton.jit
def _accumulate(sums, d_col, pair, delta, weight, g, x, y, alpha_max, alpha_min, HAS_OPACITY: tl.constexpr,
                CLAMP: tl.constexpr, CUT_MIN: tl.constexpr, CB: tl.constexpr):  # fmt: skip
    """One pixel's share of a row's sums: with w = delta * a (zero where a clamp fired),
    the exponent's five (w u' x, w u', w v' y, w v' x, w v'), the opacity's (delta G) and
    the colors' (weight * g)."""
    u, v, g_val, a, _, _ = pair
    if CLAMP:
        delta = tl.where(a < alpha_max, delta, 0.0)
    if CUT_MIN:
        delta = tl.where(a >= alpha_min, delta, 0.0)
    w = delta * a
    wu = w * u
    wv = w * v
    s_a, s_b, s_d, s_e, s_f, s_o = sums
    new_sums = (s_a + wu * x, s_b + wu, s_d + wv * y, s_e + wv * x, s_f + wv)
    if HAS_OPACITY:
        new_sums = new_sums + (s_o + delta * g_val,)
    else:
        new_sums = new_sums + (s_o,)
    new_col = ()
    for c in tl.static_range(CB):
        new_col = new_col + (d_col[c] + weight * g[c],)
    return new_sums, new_col


@triton.jit
def _store_row_gradients(sums, d_col, r, live, cb, c0, R, K, KP, C, TILES_X, TILES_Y, src_ptr, unit_ptr, means_ptr,
                         chol_ptr, d_geo_ptr, d_col_ptr, CENTRE: tl.constexpr, TILE: tl.constexpr,
                         FREE: tl.constexpr, CB: tl.constexpr):  # fmt: skip
    """The chain rule, once per row: the exponent's sums through (A, B, D, E, F) to the
    mean and Cholesky factor; then the row's gradients and color gradients stored."""
    src, valid, cx, cy = _row_sources(r, R, K, KP, src_ptr, unit_ptr, TILES_X, TILES_Y, CENTRE, TILE, FREE)
    valid = valid & live
    mx, my, l11, l21, l22, _ = _raw_rows(r, valid, src, cx, cy, means_ptr, chol_ptr, chol_ptr, False)
    k = -2.0 * _LN2  # d 2^-(u'^2 + v'^2) / d u' = -2 ln2 u' G
    s_a, s_b, s_d, s_e, s_f, s_o = sums
    g_a = k * s_a
    g_b = k * s_b
    g_d = k * s_d
    g_e = k * s_e
    g_f = k * s_f
    a, _, d, e, _ = _linear_forms(mx, my, l11, l21, l22, valid)
    g_a2 = g_a - g_b * mx
    g_d2 = g_d - g_f * my
    g_e2 = g_e - g_f * mx
    R64 = R.to(tl.int64)
    out = d_geo_ptr + cb * 6 * R64 + r
    tl.store(out, -(g_b * a + g_f * e), mask=valid)
    tl.store(out + R64, -g_f * d, mask=valid)
    tl.store(out + 2 * R64, -(g_a2 * a + g_e2 * e) / l11, mask=valid)
    tl.store(out + 3 * R64, -g_e2 * _SCALE / (l11 * l22), mask=valid)
    tl.store(out + 4 * R64, -(g_d2 * d + g_e2 * e) / l22, mask=valid)
    tl.store(out + 5 * R64, s_o, mask=valid)
    for c in tl.static_range(CB):
        tl.store(d_col_ptr + (c0 + c) * R64 + r, d_col[c], mask=valid & (c0 + c < C))


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
    HAS_OPACITY: tl.constexpr, CLAMP: tl.constexpr, CUT_MIN: tl.constexpr, CUT_3SIGMA: tl.constexpr,
    CB: tl.constexpr, NT: tl.constexpr,
):  # fmt: skip
    """Program (unit, chunk of RUN * NT rows, channel block). Thread t owns the RUN rows
    of run t of the chunk, in compositing order, holds their fields and sums in registers
    while it walks every pixel of the unit, and writes their gradients at the end."""
    n, chunk = _grad_program(work_ptr, FREE)
    cb = tl.program_id(2)
    c0 = cb * CB
    row0, count = _unit_rows(n, unit_rows_ptr, KP, FREE)
    R64 = R.to(tl.int64)
    RUNS = R64 // _RUN
    run = chunk * NT + tl.arange(0, NT)  # [NT] the thread's run within the unit
    live = _RUN * run < count
    rows = ()
    fields = ()
    colors = ()
    sums = ()
    d_col = ()
    for j in tl.static_range(_RUN):
        r = row0 + _RUN * run + j
        f_j, c_j = _row_fields(table_ptr, r, live, R64, c0, C, CB)
        rows = rows + (r,)
        fields = fields + (f_j,)
        colors = colors + (c_j,)
        sums = sums + (_zeros((NT,), 6),)
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
            if MODE == MODE_NORMALIZED:  # delta = sum over channel blocks of beta, less gamma once
                gamma = tl.load(gamma_ptr + n * (SIDE * SIDE) + p, mask=cb == 0, other=0.0)
            if MODE == MODE_ALPHA:
                grun = row0 // _RUN + run
                t_run = tl.load(tstart_ptr + p * RUNS + grun, mask=live, other=0.0)
                behind = tl.load(behind_ptr + (cb.to(tl.int64) * (SIDE * SIDE) + p) * RUNS + grun,
                                 mask=live, other=0.0)  # fmt: skip
            pairs = ()
            for j in tl.static_range(_RUN):
                pair = _pair(fields[j], colors[j], g, x, y, alpha_max, alpha_min, HAS_OPACITY, CLAMP, CUT_MIN,
                             CUT_3SIGMA, CB)  # fmt: skip
                pairs = pairs + (pair,)
            if MODE == MODE_ALPHA:
                ts, over = _over_deltas(t_run, behind, pairs)
            new_sums = ()
            new_col = ()
            for j in tl.static_range(_RUN):
                alpha, beta = pairs[j][4], pairs[j][5]
                if MODE == MODE_SUM:
                    delta = beta
                    weight = alpha
                elif MODE == MODE_NORMALIZED:
                    delta = beta - gamma
                    weight = alpha
                else:
                    delta = over[j]
                    weight = alpha * ts[j]
                s_j, c_j = _accumulate(sums[j], d_col[j], pairs[j], delta, weight, g, x, y, alpha_max, alpha_min,
                                       HAS_OPACITY, CLAMP, CUT_MIN, CB)  # fmt: skip
                new_sums = new_sums + (s_j,)
                new_col = new_col + (c_j,)
            sums = new_sums
            d_col = new_col
    for j in tl.static_range(_RUN):
        _store_row_gradients(sums[j], d_col[j], rows[j], live, cb, c0, R, K, KP, C, TILES_X, TILES_Y, src_ptr,
                             unit_ptr, means_ptr, chol_ptr, d_geo_ptr, d_col_ptr, CENTRE, TILE, FREE, CB)  # fmt: skip
