"""The torch path of `rasterize_patches`: the CPU path, and the specification the Triton
kernels are tested against (it is itself tested against `dense.py` and by float64
gradcheck).

Why it is fast. Per patch, the exponent of every pixel-Gaussian pair is a quadratic form
in the pixel coordinates, so it factors into a product of a per-pixel feature row
`[x^2, xy, y^2, x, y, 1]` and a per-Gaussian coefficient column:

    log2 G = -q/2 log2(e) = f(pixel) . h(Gaussian)      (a GEMM with inner dimension 6)

Every patch shares the same canvas pixels, so the whole exponent is one matrix product,
then one in-place `exp2`, then the compositing is a batched matrix product with the
colors. Coordinates are centred on the patch, which keeps the cancellation of the
expanded form small (|x| <= P/2 + o). Work goes in chunks of patches small enough to stay
in the CPU's L3 cache, so the full [patches, K, pixels] tensor is never materialised:
peak memory is one chunk, not the image's worth of pairs.

The backward recomputes the chunk's alphas (cheaper than holding 4 bytes per pair) and
applies the hand-derived adjoint of the same products; it cannot lean on autograd, since
a custom op's implementation runs below the autograd dispatch key. Mode "alpha" takes
its gradient from a back-to-front recurrence, exact with no division by 1 - alpha.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..feather import feather_tables, fold_canvases, unfold_image
from ..params import conic_from_cholesky
from .dense import composite

# The exponent is kept in base 2 (coefficients scaled by log2(e)): torch.exp2 runs 2.1x
# faster than torch.exp on these CPUs (7.3 ms against 15.5 ms for 27M floats, 2 cores).
# exp2() of arguments below the smallest normal float returns denormals and, far below,
# is 6x slower; clamping the exponent there changes alpha by < 1.2e-38 (2.3e-308 in f64).
_LOG2_TINY = {torch.float32: -126.0, torch.float64: -1022.0}
_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
# Elements of [patches, K, pixels] per chunk: 2^20 floats = 4 MiB, inside a 32 MiB L3
# (2^18 to 2^20 measured equal on the paper's configuration, 2^22 15% slower).
CHUNK_ELEMENTS = 1 << 20


def pixel_features(patch_size: int, overlap: int, device, dtype) -> Tensor:  # [6, S*S]
    s = patch_size + 2 * overlap
    t = torch.arange(s, device=device, dtype=dtype) - overlap + 0.5 - 0.5 * patch_size
    y, x = (v.reshape(-1) for v in torch.meshgrid(t, t, indexing="ij"))
    return torch.stack((x * x, x * y, y * y, x, y, torch.ones_like(x)), dim=0)


def exponent_coefficients(means: Tensor, cholesky: Tensor, patch_size: int) -> Tensor:
    """[..., K, 2], [..., K, 3] -> [..., K, 6] with log2(G) = coefficients @ pixel_features.

    -q/2 expanded around the patch centre, times log2(e)."""
    a, b, c = conic_from_cholesky(cholesky).unbind(-1)
    mx = means[..., 0] - 0.5 * patch_size
    my = means[..., 1] - 0.5 * patch_size
    bx, by = a * mx + b * my, b * mx + c * my
    coef = torch.stack((-0.5 * a, -b, -0.5 * c, bx, by, -0.5 * (mx * bx + my * by)), dim=-1)
    return coef * _LOG2E


def _gaussian_values(coef: Tensor, feats: Tensor) -> Tensor:  # [n, K, 6], [6, N] -> [n, K, N]
    e = torch.matmul(coef, feats)
    return e.clamp_(min=_LOG2_TINY[e.dtype]).exp2_()


def _alpha(g: Tensor, opacity: Tensor | None, alpha_max: float, alpha_min: float) -> Tensor:
    if opacity is None and alpha_max >= 1.0 and alpha_min <= 0.0:
        return g  # G <= 1: the clamp and the cut-off cannot fire
    a = g if opacity is None else g * opacity[..., None]
    alpha = a.clamp(max=alpha_max)
    return torch.where(alpha < alpha_min, torch.zeros_like(alpha), alpha) if alpha_min > 0 else alpha


class _Layout:
    """Shapes and the feathering of one call: canvases are [B*Hp*Wp, C, S*S] here."""

    def __init__(self, colors: Tensor, patch_size: int, overlap: int, window: str):
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
    lay = _Layout(colors, patch_size, overlap, window)
    feats = pixel_features(patch_size, overlap, colors.device, colors.dtype)
    coef = exponent_coefficients(means, cholesky, patch_size).reshape(lay.n, lay.k, 6)
    col, op = _flat(colors, lay.n), _flat(opacity, lay.n)
    canvas = colors.new_empty(lay.n, lay.c, lay.s * lay.s)
    for i, j in lay.chunks():
        alpha = _alpha(_gaussian_values(coef[i:j], feats), None if op is None else op[i:j], alpha_max, alpha_min)
        canvas[i:j] = composite(alpha, col[i:j], mode, background)
    return lay.to_image(canvas)


def coefficients_backward(
    means: Tensor, cholesky: Tensor, d_coef: Tensor, patch_size: int
) -> tuple[Tensor, Tensor]:  # [..., K, 2], [..., K, 3], [..., K, 6] -> (d_means, d_cholesky)
    """Adjoint of `exponent_coefficients`, by hand: the custom op runs below autograd."""
    d0, d1, d2, d3, d4, d5 = (d_coef * _LOG2E).unbind(-1)
    l11, l21, l22 = cholesky.unbind(-1)
    m11, m22 = 1.0 / l11, 1.0 / l22
    m21 = -l21 * m11 * m22
    a, b, c = m11 * m11 + m21 * m21, m21 * m22, m22 * m22
    mx = means[..., 0] - 0.5 * patch_size
    my = means[..., 1] - 0.5 * patch_size
    bx, by = a * mx + b * my, b * mx + c * my
    d_mx = d3 * a + d4 * b - d5 * bx
    d_my = d3 * b + d4 * c - d5 * by
    d_a = -0.5 * d0 + d3 * mx - 0.5 * d5 * mx * mx
    d_b = -d1 + d3 * my + d4 * mx - d5 * mx * my
    d_c = -0.5 * d2 + d4 * my - 0.5 * d5 * my * my
    # a = m11^2 + m21^2, b = m21 m22, c = m22^2, with m = L^-1
    d_m11 = 2.0 * m11 * d_a
    d_m21 = 2.0 * m21 * d_a + m22 * d_b
    d_m22 = m21 * d_b + 2.0 * m22 * d_c
    # m11 = 1/l11, m22 = 1/l22, m21 = -l21 m11 m22
    d_l21 = -m11 * m22 * d_m21
    d_l11 = -m11 * m11 * (d_m11 - l21 * m22 * d_m21)
    d_l22 = -m22 * m22 * (d_m22 - l21 * m11 * d_m21)
    return torch.stack((d_mx, d_my), dim=-1), torch.stack((d_l11, d_l21, d_l22), dim=-1)


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
    """Gradients (means, cholesky, colors, opacity, background) of <grad_image, forward>."""
    lay = _Layout(colors, patch_size, overlap, window)
    feats = pixel_features(patch_size, overlap, colors.device, colors.dtype)
    grad_canvas = lay.from_image(grad_image)
    coef = exponent_coefficients(means, cholesky, patch_size).reshape(lay.n, lay.k, 6)
    col, op = _flat(colors, lay.n), _flat(opacity, lay.n)
    d_coef, d_col = torch.empty_like(coef), torch.empty_like(col)
    d_op = None if op is None else torch.empty_like(op)
    d_bg = None if background is None else torch.zeros_like(background)
    for i, j in lay.chunks():
        grads = _chunk_grads(
            coef[i:j],
            feats,
            col[i:j],
            None if op is None else op[i:j],
            background,
            grad_canvas[i:j],
            mode,
            alpha_max,
            alpha_min,
        )
        d_coef[i:j], d_col[i:j] = grads[0], grads[1]
        if d_op is not None:
            d_op[i:j] = grads[2]
        if d_bg is not None:
            d_bg += grads[3]
    d_means, d_chol = coefficients_backward(means, cholesky, d_coef.reshape(*means.shape[:-1], 6), patch_size)
    d_op = None if d_op is None else d_op.reshape(opacity.shape)
    return d_means, d_chol, d_col.reshape(colors.shape), d_op, d_bg


def _chunk_grads(coef, feats, col, op, background, grad_canvas, mode, alpha_max, alpha_min):
    """Adjoint of one chunk: canvas = composite(alpha, col), alpha = cut(clamp(op 2^(coef feats))).

    Every product keeps its short side (C or 6) as the rows of its output: the fast
    orientation on the CPU (4-5 ms against 19 ms per 27M pairs)."""
    g = _gaussian_values(coef, feats)  # [n, K, N]
    alpha = _alpha(g, op, alpha_max, alpha_min)
    d_alpha, d_col, d_bg = _COMPOSITE_GRADS[mode](alpha, col, background, grad_canvas)
    d_op = None
    if alpha is g:  # alpha = G = 2^e: d alpha / d e = alpha ln 2
        d_e = d_alpha.mul_(alpha)
    else:
        a = g if op is None else g * op[..., None]
        live = (a < alpha_max) & (a >= alpha_min)  # where neither clamp nor cut-off fired
        d_a = d_alpha.mul_(live)
        if op is not None:
            d_op = (d_a * g).sum(-1)
        d_e = d_a.mul_(a)  # d a / d e = op G ln 2 = a ln 2
    d_coef = torch.matmul(feats, d_e.transpose(1, 2)).transpose(1, 2)  # [n, K, 6]
    return d_coef.mul_(_LN2), d_col, d_op, d_bg


def _sum_grads(alpha, col, background, grad_canvas):  # canvas = col^T alpha
    d_col = torch.bmm(grad_canvas, alpha.transpose(1, 2)).transpose(1, 2)  # [n, K, C]
    return torch.bmm(col, grad_canvas), d_col, None


def _normalized_grads(alpha, col, background, grad_canvas):  # canvas = col^T alpha / (sum alpha + eps)
    den = alpha.sum(1, keepdim=True) + 1e-6  # [n, 1, N]
    out = torch.bmm(col.transpose(1, 2), alpha) / den  # [n, C, N]
    d_num = grad_canvas / den
    d_den = -(d_num * out).sum(1, keepdim=True)  # [n, 1, N]
    d_col = torch.bmm(d_num, alpha.transpose(1, 2)).transpose(1, 2)
    return torch.bmm(col, d_num).add_(d_den), d_col, None


def _alpha_grads(alpha, col, background, grad_canvas):
    """Front-to-back compositing. d out / d alpha_k = T_k (c_k - A_k) with A_k the composite
    of everything behind k (background included). A_k comes from the back-to-front
    recurrence A_{k-1} = alpha_k c_k + (1 - alpha_k) A_k, dotted with the upstream
    gradient: exact with no division by 1 - alpha, so alpha = 1 is fine."""
    trans = torch.cumprod(1.0 - alpha, dim=1)  # inclusive, [n, K, N]
    before = torch.cat((torch.ones_like(trans[:, :1]), trans[:, :-1]), dim=1)
    d_col = torch.bmm(grad_canvas, (alpha * before).transpose(1, 2)).transpose(1, 2)
    beta = torch.bmm(col, grad_canvas)  # c_k . g, [n, K, N]
    if background is None:
        behind, d_bg = torch.zeros_like(trans[:, 0]), None
    else:
        behind = torch.einsum("c,ncp->np", background, grad_canvas)
        d_bg = torch.einsum("np,ncp->c", trans[:, -1], grad_canvas)
    d_alpha = torch.empty_like(alpha)
    for k in range(alpha.shape[1] - 1, -1, -1):
        diff = beta[:, k] - behind
        torch.mul(before[:, k], diff, out=d_alpha[:, k])
        behind = behind.addcmul_(alpha[:, k], diff)
    return d_alpha, d_col, d_bg


_COMPOSITE_GRADS = {"sum": _sum_grads, "normalized": _normalized_grads, "alpha": _alpha_grads}
