"""The torch path of `rasterize_patches`: the CPU path, and what the Triton kernels are
compared with in the tests (it is itself tested against the specification,
`tritonsplat/spec.py`, and by float64 gradcheck).

Why it is fast. With M = L^-1 the exponent is q = |M (p - mu)|^2 = u^2 + v^2, where

    u = (x - mx) / l11                      linear in (x, 1)
    v = (y - my - l21 u) / l22              linear in (x, y, 1)

so, per patch, u and v of every pixel-Gaussian pair are small matrix products of a
per-Gaussian coefficient row and a per-pixel feature column, and every patch shares
the same canvas pixels: two GEMMs (inner dimensions 2 and 3), then u^2 + v^2 and one
in-place `exp2` (the scale is folded into the coefficients), then the compositing is a
batched matrix product with the colors. Work goes in chunks of patches small enough to
stay in the CPU's L3 cache, so the [patches, K, pixels] tensor is never materialised
whole: peak memory is a few chunks, not the image's worth of pairs.

Expanding q itself into one GEMM against [x^2, xy, y^2, x, y, 1] is 1.5x faster for the
exponent stage but cancels catastrophically in float32 (measured: 2.8e-5 absolute error
in G against 1.4e-6 for u, v on the paper's configuration), so the specification does
not do it: u and v are the same arithmetic as the kernels'.

The backward recomputes the chunk's alphas (cheaper than holding 4 bytes per pair) and
applies the hand-derived adjoint of the same products; it cannot lean on autograd, since
a custom op's implementation runs below the autograd dispatch key. Mode "alpha" takes
its gradient from a back-to-front recurrence, exact with no division by 1 - alpha.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...feather import feather_tables, fold_canvases, unfold_image
from ...settings import RasterizePatchesSettings
from .common import (
    CHUNK_ELEMENTS,
    Workspace,
    alpha_of,
    chunk_grads,
    coefficients_backward,
    composite,
    gaussian_values,
    linear_coefficients,
    pixel_features,
    release_workspace,
)

__all__ = ["forward", "backward", "release_workspace"]


class _Layout(Workspace):
    """Shapes and the feathering of one call: canvases are [B*Hp*Wp, C, S*S] here."""

    def __init__(self, colors: Tensor, patch_size: int, overlap: int, window: str):
        super().__init__(colors)
        self.b, self.hp, self.wp, self.k, self.c = colors.shape
        self.p, self.o = patch_size, overlap
        self.s = patch_size + 2 * overlap
        self.n = self.b * self.hp * self.wp
        ty, tx = feather_tables(self.hp, self.wp, patch_size, overlap, window, colors.device, colors.dtype)
        w = ty[:, None, :, None] * tx[None, :, None, :]  # [Hp, Wp, S, S]
        self.weight = w.reshape(1, self.hp * self.wp, 1, self.s * self.s)
        self.chunk = max(1, CHUNK_ELEMENTS // max(1, self.k * self.s * self.s))

    def to_image(self, canvas: Tensor) -> Tensor:  # [n, C, S*S] -> [B, C, H, W]
        cols = (canvas.reshape(self.b, -1, self.c, self.s * self.s) * self.weight).permute(0, 2, 3, 1)
        return fold_canvases(cols.reshape(self.b, -1, self.hp * self.wp), self.hp, self.wp, self.p, self.o)

    def from_image(self, image: Tensor) -> Tensor:  # [B, C, H, W] -> [n, C, S*S], feathered
        cols = unfold_image(image, self.p, self.o).reshape(self.b, self.c, self.s * self.s, -1)
        return (cols.permute(0, 3, 1, 2) * self.weight).reshape(self.n, self.c, self.s * self.s)

    def chunks(self):
        return ((i, min(i + self.chunk, self.n)) for i in range(0, self.n, self.chunk))


def _flat(t: Tensor | None, n: int) -> Tensor | None:
    return None if t is None else t.reshape(n, *t.shape[3:])


def forward(
    means: Tensor,  # [B, Hp, Wp, K, 2]
    cholesky: Tensor,  # [B, Hp, Wp, K, 3]
    colors: Tensor,  # [B, Hp, Wp, K, C]
    opacity: Tensor | None,  # [B, Hp, Wp, K]
    background: Tensor | None,  # [C]
    cfg: RasterizePatchesSettings,
) -> Tensor:  # [B, C, Hp*P, Wp*P]
    lay = _Layout(colors, cfg.patch_size, cfg.overlap, cfg.window)
    feats = pixel_features(cfg.patch_size, cfg.overlap, colors.device, colors.dtype)
    coef_u, coef_v = (c.reshape(lay.n, lay.k, -1) for c in linear_coefficients(means, cholesky, cfg.patch_size))
    col, op = _flat(colors, lay.n), _flat(opacity, lay.n)
    canvas = colors.new_empty(lay.n, lay.c, lay.s * lay.s)
    for i, j in lay.chunks():
        g = gaussian_values(coef_u[i:j], coef_v[i:j], feats, lay)
        alpha = alpha_of(g, None if op is None else op[i:j], cfg.alpha_max, cfg.alpha_min)
        canvas[i:j] = composite(alpha, col[i:j], cfg.mode, background)
    return lay.to_image(canvas)


def backward(
    grad_image: Tensor,  # [B, C, Hp*P, Wp*P]
    means: Tensor,
    cholesky: Tensor,
    colors: Tensor,
    opacity: Tensor | None,
    background: Tensor | None,
    cfg: RasterizePatchesSettings,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """Gradients (means, cholesky, colors, opacity, background) of <grad_image, forward>."""
    lay = _Layout(colors, cfg.patch_size, cfg.overlap, cfg.window)
    feats = pixel_features(cfg.patch_size, cfg.overlap, colors.device, colors.dtype)
    grad_canvas = lay.from_image(grad_image)
    coef_u, coef_v = (c.reshape(lay.n, lay.k, -1) for c in linear_coefficients(means, cholesky, cfg.patch_size))
    col, op = _flat(colors, lay.n), _flat(opacity, lay.n)
    d_u, d_v, d_col = torch.empty_like(coef_u), torch.empty_like(coef_v), torch.empty_like(col)
    d_op = None if op is None else torch.empty_like(op)
    d_bg = None if background is None else torch.zeros_like(background)
    for i, j in lay.chunks():
        grads = chunk_grads(
            coef_u[i:j], coef_v[i:j], feats, col[i:j], None if op is None else op[i:j], background,
            grad_canvas[i:j], cfg.mode, cfg.alpha_max, cfg.alpha_min, lay,
        )  # fmt: skip
        d_u[i:j], d_v[i:j], d_col[i:j] = grads[:3]
        if d_op is not None:
            d_op[i:j] = grads[3]
        if d_bg is not None:
            d_bg += grads[4]
    shape = means.shape[:-1]
    d_means, d_chol = coefficients_backward(
        means, cholesky, d_u.reshape(*shape, 2), d_v.reshape(*shape, 3), cfg.patch_size
    )
    d_op = None if d_op is None else d_op.reshape(opacity.shape)
    return d_means, d_chol, d_col.reshape(colors.shape), d_op, d_bg
