"""The torch path of `rasterize_patches`: the CPU path, and the specification the Triton
kernels are tested against (it is itself tested against `dense.py` and by float64
gradcheck).

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

import math
import threading

import torch
from torch import Tensor

from ..feather import feather_tables, fold_canvases, unfold_image
from .dense import composite

# G = exp(-q/2) = 2^-(u'^2 + v'^2) with u' = u sqrt(log2(e) / 2): torch.exp2 runs 2.1x
# faster than torch.exp on these CPUs (7.3 ms against 15.5 ms for 27M floats, 2 cores).
_SCALE = math.sqrt(0.5 * math.log2(math.e))
# exp2() of arguments below the smallest normal float returns denormals and, far below,
# is 6x slower; clamping there changes alpha by < 1.2e-38 (2.3e-308 in float64).
_LOG2_TINY = {torch.float32: 126.0, torch.float64: 1022.0}
_LN2 = math.log(2.0)
# Elements of [patches, K, pixels] per chunk: 2^20 floats = 4 MiB, inside a 32 MiB L3
# (2^18 to 2^20 measured equal on the paper's configuration, 2^22 15% slower).
CHUNK_ELEMENTS = 1 << 20


def pixel_features(patch_size: int, overlap: int, device, dtype) -> tuple[Tensor, Tensor]:
    """([2, S*S] rows (x, 1), [3, S*S] rows (x, y, 1)): canvas pixel centres in the patch
    frame, centred on the patch to keep the products' magnitudes small."""
    s = patch_size + 2 * overlap
    t = torch.arange(s, device=device, dtype=dtype) - overlap + 0.5 - 0.5 * patch_size
    y, x = (v.reshape(-1) for v in torch.meshgrid(t, t, indexing="ij"))
    one = torch.ones_like(x)
    return torch.stack((x, one)), torch.stack((x, y, one))


def _centred(means: Tensor, cholesky: Tensor, patch_size: int):
    l11, l21, l22 = cholesky.unbind(-1)
    return means[..., 0] - 0.5 * patch_size, means[..., 1] - 0.5 * patch_size, 1.0 / l11, l21, 1.0 / l22


def linear_coefficients(means: Tensor, cholesky: Tensor, patch_size: int) -> tuple[Tensor, Tensor]:
    """[..., K, 2], [..., K, 3] -> ([..., K, 2], [..., K, 3]) such that, with the pixel
    features, u' = coef_u @ (x, 1) and v' = coef_v @ (x, y, 1)."""
    mx, my, i11, l21, i22 = _centred(means, cholesky, patch_size)
    k = l21 * i11 * i22
    coef_u = torch.stack((i11, -mx * i11), dim=-1)
    coef_v = torch.stack((-k, i22, k * mx - my * i22), dim=-1)
    return coef_u * _SCALE, coef_v * _SCALE


def coefficients_backward(
    means: Tensor, cholesky: Tensor, d_u: Tensor, d_v: Tensor, patch_size: int
) -> tuple[Tensor, Tensor]:  # -> ([..., K, 2], [..., K, 3])
    """Adjoint of `linear_coefficients`, by hand: the custom op runs below autograd."""
    mx, my, i11, l21, i22 = _centred(means, cholesky, patch_size)
    a0, a1 = (d_u * _SCALE).unbind(-1)
    b0, b1, b2 = (d_v * _SCALE).unbind(-1)
    k = l21 * i11 * i22
    d_k = -b0 + b2 * mx  # coef_v = (-k, i22, k mx - my i22)
    d_mx = -a1 * i11 + b2 * k
    d_my = -b2 * i22
    d_i11 = a0 - a1 * mx + d_k * l21 * i22
    d_i22 = b1 - b2 * my + d_k * l21 * i11
    d_l21 = d_k * i11 * i22
    return (
        torch.stack((d_mx, d_my), dim=-1),
        torch.stack((-i11 * i11 * d_i11, d_l21, -i22 * i22 * d_i22), dim=-1),
    )


def _gaussian_values(coef_u, coef_v, feats, work, keep_uv=False):
    """G for a chunk, [n, K, N]; with keep_uv also the scaled u' and v' (for the backward).
    Results live in the call's workspace buffers."""
    shape = (coef_u.shape[0], coef_u.shape[1], feats[0].shape[1])
    u = torch.matmul(coef_u, feats[0], out=work.buffer("u", shape))
    v = torch.matmul(coef_v, feats[1], out=work.buffer("v", shape))
    q = torch.mul(u, u, out=work.buffer("q", shape)) if keep_uv else u.mul_(u)
    g = q.addcmul_(v, v).clamp_(max=_LOG2_TINY[q.dtype]).neg_().exp2_()
    return (g, u, v) if keep_uv else g


def _alpha(g: Tensor, opacity: Tensor | None, alpha_max: float, alpha_min: float) -> Tensor:
    if opacity is None and alpha_max >= 1.0 and alpha_min <= 0.0:
        return g  # G <= 1: the clamp and the cut-off cannot fire
    a = g if opacity is None else g * opacity[..., None]
    alpha = a.clamp(max=alpha_max)
    return torch.where(alpha < alpha_min, torch.zeros_like(alpha), alpha) if alpha_min > 0 else alpha


_WORKSPACE = threading.local()


def release_workspace() -> None:
    """Free this thread's scratch buffers (about 5 x 4 MiB once the torch path has run)."""
    _WORKSPACE.__dict__.pop("buffers", None)


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
        self._like = colors

    def buffer(self, name: str, shape: tuple[int, ...]) -> Tensor:
        """A chunk-sized scratch tensor, reused across chunks and calls (one set per thread
        and device/dtype). Allocating 4 MiB per chunk made the kernel map and fault in
        fresh pages every time: half the run time was system time (measured)."""
        numel = shape[0] * shape[1] * shape[2]
        cache = _WORKSPACE.__dict__.setdefault("buffers", {})
        key = (name, self._like.device, self._like.dtype)
        buf = cache.get(key)
        if buf is None or buf.numel() < numel:
            buf = self._like.new_empty(max(numel, CHUNK_ELEMENTS))
            cache[key] = buf
        return buf[:numel].view(shape)

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
    coef_u, coef_v = (c.reshape(lay.n, lay.k, -1) for c in linear_coefficients(means, cholesky, patch_size))
    col, op = _flat(colors, lay.n), _flat(opacity, lay.n)
    canvas = colors.new_empty(lay.n, lay.c, lay.s * lay.s)
    for i, j in lay.chunks():
        g = _gaussian_values(coef_u[i:j], coef_v[i:j], feats, lay)
        alpha = _alpha(g, None if op is None else op[i:j], alpha_max, alpha_min)
        canvas[i:j] = composite(alpha, col[i:j], mode, background)
    return lay.to_image(canvas)


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
    coef_u, coef_v = (c.reshape(lay.n, lay.k, -1) for c in linear_coefficients(means, cholesky, patch_size))
    col, op = _flat(colors, lay.n), _flat(opacity, lay.n)
    d_u, d_v, d_col = torch.empty_like(coef_u), torch.empty_like(coef_v), torch.empty_like(col)
    d_op = None if op is None else torch.empty_like(op)
    d_bg = None if background is None else torch.zeros_like(background)
    for i, j in lay.chunks():
        grads = _chunk_grads(
            coef_u[i:j], coef_v[i:j], feats, col[i:j], None if op is None else op[i:j], background,
            grad_canvas[i:j], mode, alpha_max, alpha_min, lay,
        )  # fmt: skip
        d_u[i:j], d_v[i:j], d_col[i:j] = grads[:3]
        if d_op is not None:
            d_op[i:j] = grads[3]
        if d_bg is not None:
            d_bg += grads[4]
    shape = means.shape[:-1]
    d_means, d_chol = coefficients_backward(means, cholesky, d_u.reshape(*shape, 2), d_v.reshape(*shape, 3), patch_size)
    d_op = None if d_op is None else d_op.reshape(opacity.shape)
    return d_means, d_chol, d_col.reshape(colors.shape), d_op, d_bg


def _chunk_grads(coef_u, coef_v, feats, col, op, background, grad_canvas, mode, alpha_max, alpha_min, work):
    """Adjoint of one chunk: canvas = composite(alpha, col), alpha = cut(clamp(op G)),
    G = 2^-(u'^2 + v'^2), u' = coef_u feats_u, v' = coef_v feats_v.

    Every product keeps its short side (C, 2 or 3) as the rows of its output: the fast
    orientation on the CPU (4-5 ms against 19 ms per 27M pairs)."""
    g, u, v = _gaussian_values(coef_u, coef_v, feats, work, keep_uv=True)  # [n, K, N] each
    alpha = _alpha(g, op, alpha_max, alpha_min)
    d_alpha, d_col, d_bg = _COMPOSITE_GRADS[mode](alpha, col, background, grad_canvas, work)
    d_op = None
    if alpha is g:
        d_e = d_alpha.mul_(alpha)  # dL/dG * G
    else:
        a = g if op is None else g * op[..., None]
        live = (a < alpha_max) & (a >= alpha_min)  # where neither clamp nor cut-off fired
        d_a = d_alpha.mul_(live)
        if op is not None:
            d_op = (d_a * g).sum(-1)
        d_e = d_a.mul_(a)  # dL/d(oG) * oG
    # d G / d u' = -2 ln2 u' G (and likewise v'); d_e already carries the factor G
    d_e.mul_(-2.0 * _LN2)
    d_coef_u = torch.matmul(feats[0], u.mul_(d_e).transpose(1, 2)).transpose(1, 2)  # [n, K, 2]
    d_coef_v = torch.matmul(feats[1], v.mul_(d_e).transpose(1, 2)).transpose(1, 2)  # [n, K, 3]
    return d_coef_u, d_coef_v, d_col, d_op, d_bg


def _sum_grads(alpha, col, background, grad_canvas, work):  # canvas = col^T alpha
    d_col = torch.bmm(grad_canvas, alpha.transpose(1, 2)).transpose(1, 2)  # [n, K, C]
    return torch.bmm(col, grad_canvas, out=work.buffer("d_alpha", alpha.shape)), d_col, None


def _normalized_grads(alpha, col, background, grad_canvas, work):  # canvas = col^T alpha / (sum alpha + eps)
    den = alpha.sum(1, keepdim=True) + 1e-6  # [n, 1, N]
    out = torch.bmm(col.transpose(1, 2), alpha) / den  # [n, C, N]
    d_num = grad_canvas / den
    d_den = -(d_num * out).sum(1, keepdim=True)  # [n, 1, N]
    d_col = torch.bmm(d_num, alpha.transpose(1, 2)).transpose(1, 2)
    return torch.bmm(col, d_num).add_(d_den), d_col, None


def _alpha_grads(alpha, col, background, grad_canvas, work):
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
