"""`rasterize_patches` on the Triton kernels: canvases in, image out (see `kernels.py`).

A patch is a unit: its K Gaussians are rows n * KP + k of the row table (KP = K rounded
up to 4), its canvas the S x S pixels of its core plus `overlap` on every side, in
coordinates centred on the core (|x| <= P/2 + o keeps the linear forms' products small).
Where canvases overlap, the forward writes feathered canvases to a [B, C, S, S, Hp, Wp]
buffer that `fold` (a per-pixel gather: deterministic, unlike atomic adds) sums into the
image; with overlap 0 it writes the image directly. The backward reads the feathered
canvas gradient that `unfold` gives (the adjoint of the fold)."""

from __future__ import annotations

import triton
from torch import Tensor

from ...feather import feather_tables, fold_canvases, unfold_image
from ...settings import RasterizePatchesSettings
from .launch import RUN, Units, gradients, on_device, padded_rows, prepare, render


def patch_units(b: int, hp: int, wp: int, k: int, patch_size: int, overlap: int) -> Units:
    kp = triton.cdiv(k, RUN) * RUN
    n = b * hp * wp
    return Units(
        count=n, side=patch_size + 2 * overlap, offset=0.5 - overlap - 0.5 * patch_size, rows=padded_rows(n * kp),
        grid_h=hp, grid_w=wp, free=False, k=k, kp=kp, centre=0.5 * patch_size,
    )  # fmt: skip


def _patched(means, cholesky, colors, opacity, cfg: RasterizePatchesSettings):
    """What both passes start from: the units, the Gaussians flattened to rows of
    (means, cholesky, opacity), and the row table."""
    b, hp, wp, k, c = colors.shape
    units = patch_units(b, hp, wp, k, cfg.patch_size, cfg.overlap)
    g = b * hp * wp * k
    flat = (means.reshape(g, 2), cholesky.reshape(g, 3), None if opacity is None else opacity.reshape(g))
    return units, flat, prepare(units, flat[0], flat[1], flat[2], colors.reshape(g, c))


def forward(
    means: Tensor,  # [B, Hp, Wp, K, 2]
    cholesky: Tensor,  # [B, Hp, Wp, K, 3]
    colors: Tensor,  # [B, Hp, Wp, K, C]
    opacity: Tensor | None,  # [B, Hp, Wp, K]
    background: Tensor | None,  # [C]
    cfg: RasterizePatchesSettings,
) -> Tensor:  # [B, C, Hp*P, Wp*P]
    b, hp, wp, k, c = colors.shape
    with on_device(colors):
        units, _, table = _patched(means, cholesky, colors, opacity, cfg)
        s, h, w = units.side, hp * cfg.patch_size, wp * cfg.patch_size
        weights = feather_tables(hp, wp, cfg.patch_size, cfg.overlap, cfg.window, colors.device, colors.dtype)
        if cfg.overlap == 0:  # canvases tile the image: write it directly
            out = colors.new_empty(b, c, h, w)
            strides = (c * h * w, h * w, w, 1, cfg.patch_size * w, cfg.patch_size)
        else:  # [B, C, S, S, Hp, Wp] = fold's column layout
            out = colors.new_empty(b, c, s, s, hp, wp)
            strides = out.stride()
        render(units, table, out, strides, cfg, opacity, background, weights=weights)
    if cfg.overlap == 0:
        return out
    return fold_canvases(out.reshape(b, c * s * s, hp * wp), hp, wp, cfg.patch_size, cfg.overlap)


def canvas_gradient(grad_image: Tensor, hp: int, wp: int, patch_size: int, overlap: int, window: str) -> Tensor:
    """[B, C, H, W] -> the feathered gradient of every canvas pixel, [B * Hp * Wp, C, S^2]."""
    b, c = grad_image.shape[:2]
    s = patch_size + 2 * overlap
    wy, wx = feather_tables(hp, wp, patch_size, overlap, window, grad_image.device, grad_image.dtype)
    cols = unfold_image(grad_image, patch_size, overlap).reshape(b, c, s, s, hp, wp)
    cols = cols * wy.t()[None, None, :, None, :, None] * wx.t()[None, None, None, :, None, :]
    return cols.permute(0, 4, 5, 1, 2, 3).reshape(b * hp * wp, c, s * s).contiguous()


def backward(
    grad_image: Tensor,  # [B, C, Hp*P, Wp*P]
    means: Tensor,
    cholesky: Tensor,
    colors: Tensor,
    opacity: Tensor | None,
    background: Tensor | None,
    cfg: RasterizePatchesSettings,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    b, hp, wp, k, c = colors.shape
    with on_device(colors):
        units, (flat_means, flat_chol, flat_op), table = _patched(means, cholesky, colors, opacity, cfg)
        gcan = canvas_gradient(grad_image, hp, wp, cfg.patch_size, cfg.overlap, cfg.window)
        d_geo, d_col, d_bg = gradients(units, table, flat_means, flat_chol, gcan, cfg, flat_op, background)
    n, kp = units.count, units.kp

    def per_gaussian(rows: Tensor) -> Tensor:  # [F, R] -> [B, Hp, Wp, K, F]
        f = rows.shape[0]
        return rows[:, : n * kp].reshape(f, n, kp)[:, :, :k].permute(1, 2, 0).reshape(b, hp, wp, k, f)

    geo = per_gaussian(d_geo)
    return (
        geo[..., 0:2].contiguous(),
        geo[..., 2:5].contiguous(),
        per_gaussian(d_col).contiguous(),
        None if opacity is None else geo[..., 5].contiguous(),
        d_bg,
    )
