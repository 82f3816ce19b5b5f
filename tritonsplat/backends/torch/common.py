"""What the torch paths of both rasterizers share: the u, v linear forms of the exponent,
their chunked evaluation in a reused workspace, and the hand-written adjoint of one chunk
(see `backends/torch/rasterize_patches.py` for why it is fast and why it is written this way)."""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor

from ...constants import CUT_Q, NORMALIZED_EPS

# G = exp(-q/2) = 2^-(u'^2 + v'^2) with u' = u sqrt(log2(e) / 2): torch.exp2 runs 2.1x
# faster than torch.exp on these CPUs (7.3 ms against 15.5 ms for 27M floats, 2 cores).
_SCALE = math.sqrt(0.5 * math.log2(math.e))
# exp2() of arguments below the smallest normal float returns denormals and, far below,
# is 6x slower; clamping there changes alpha by < 1.2e-38 (2.3e-308 in float64).
_LOG2_TINY = {torch.float32: 126.0, torch.float64: 1022.0}
_LN2 = math.log(2.0)
_G_CUT = math.exp(-0.5 * CUT_Q) * (1 - 1e-7)  # G at q = 9 (kept), less a rounding's worth
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


def composite(alpha: Tensor, colors: Tensor, mode: str, background: Tensor | None) -> Tensor:
    """alpha: [..., K, N] per Gaussian and pixel; colors: [..., K, C] -> [..., C, N].

    The products are written colors^T @ alpha: with C small, a GEMM whose short side is
    the output's rows runs 4x faster on the CPU than alpha^T @ colors (measured, 2 cores)."""
    cols_t = colors.transpose(-1, -2)
    if mode == "sum":
        return torch.matmul(cols_t, alpha)
    if mode == "normalized":
        return torch.matmul(cols_t, alpha) / (alpha.sum(-2)[..., None, :] + NORMALIZED_EPS)
    # "alpha": front to back in index order; T_k = prod_{j<k} (1 - alpha_j)
    trans = torch.cumprod(1.0 - alpha, dim=-2)
    before = torch.cat((torch.ones_like(trans[..., :1, :]), trans[..., :-1, :]), dim=-2)
    out = torch.matmul(cols_t, alpha * before)
    if background is not None:
        out = out + trans[..., -1:, :] * background[:, None]
    return out


def gaussian_values(coef_u, coef_v, feats, work, keep_uv=False, cut=False):
    """G for a chunk, [n, K, N]; with keep_uv also the scaled u' and v' (for the backward);
    with cut, G = 0 outside the 3-sigma ellipse (q > 9 <=> G < e^-4.5, one in-place pass).
    Results live in the workspace buffers."""
    shape = (coef_u.shape[0], coef_u.shape[1], feats[0].shape[1])
    u = torch.matmul(coef_u, feats[0], out=work.buffer("u", shape))
    v = torch.matmul(coef_v, feats[1], out=work.buffer("v", shape))
    q = torch.mul(u, u, out=work.buffer("q", shape)) if keep_uv else u.mul_(u)
    g = q.addcmul_(v, v).clamp_(max=_LOG2_TINY[q.dtype]).neg_().exp2_()
    if cut:
        torch.nn.functional.threshold_(g, _G_CUT, 0.0)
    return (g, u, v) if keep_uv else g


def alpha_of(g: Tensor, opacity: Tensor | None, alpha_max: float, alpha_min: float) -> Tensor:
    if opacity is None and alpha_max >= 1.0 and alpha_min <= 0.0:
        return g  # G <= 1: the clamp and the cut-off cannot fire
    a = g if opacity is None else g * opacity[..., None]
    alpha = a.clamp(max=alpha_max)
    return torch.where(alpha < alpha_min, torch.zeros_like(alpha), alpha) if alpha_min > 0 else alpha


_WORKSPACE = threading.local()


def release_workspace() -> None:
    """Free this thread's scratch buffers (about 5 x 4 MiB once the torch path has run)."""
    _WORKSPACE.__dict__.pop("buffers", None)


class Workspace:
    """Chunk-sized scratch tensors, reused across chunks and calls (one set per thread and
    device/dtype). Allocating 4 MiB per chunk made the kernel map and fault in fresh pages
    every time: half the run time was system time (measured)."""

    def __init__(self, like: Tensor):
        self._like = like

    def buffer(self, name: str, shape: tuple[int, ...]) -> Tensor:
        numel = shape[0] * shape[1] * shape[2]
        cache = _WORKSPACE.__dict__.setdefault("buffers", {})
        key = (name, self._like.device, self._like.dtype)
        buf = cache.get(key)
        if buf is None or buf.numel() < numel:
            buf = self._like.new_empty(max(numel, CHUNK_ELEMENTS))
            cache[key] = buf
        return buf[:numel].view(shape)


def chunk_grads(coef_u, coef_v, feats, col, op, background, grad_canvas, mode, alpha_max, alpha_min, work, cut=False):
    """Adjoint of one chunk: canvas = composite(alpha, col), alpha = cut(clamp(op G)),
    G = 2^-(u'^2 + v'^2), u' = coef_u feats_u, v' = coef_v feats_v.

    Every product keeps its short side (C, 2 or 3) as the rows of its output: the fast
    orientation on the CPU (4-5 ms against 19 ms per 27M pairs)."""
    g, u, v = gaussian_values(coef_u, coef_v, feats, work, keep_uv=True, cut=cut)  # [n, K, N] each
    alpha = alpha_of(g, op, alpha_max, alpha_min)
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
    den = alpha.sum(1, keepdim=True) + NORMALIZED_EPS  # [n, 1, N]
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
