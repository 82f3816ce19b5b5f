"""The specification: the literal maths of both rasterizers (docs/design.md sections 1-4),
every pixel-Gaussian weight materialised.

Slow and memory-hungry on purpose. It is written to be read against the contract, it is
the oracle both backends are tested against, and it is the benchmarks' "spec" baseline.
It shares no code with either backend (its conic, window and compositing are its own few
lines), so that a mistake in a backend cannot hide in the oracle too; only the contract's
constants come from `constants.py`. Differentiable by plain autograd. Named after the
operations it specifies, as gsplat names its `_torch_impl` references after their
kernels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .constants import CUT_Q, NORMALIZED_EPS


def _conic(cholesky: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(a, b, c) of Sigma^-1 = [[a, b], [b, c]] for Sigma = L L^T, from the inverse of L."""
    l11, l21, l22 = cholesky.unbind(-1)
    m11, m22 = 1.0 / l11, 1.0 / l22
    m21 = -l21 / (l11 * l22)
    return m11 * m11 + m21 * m21, m21 * m22, m22 * m22


def _window(t: Tensor, patch_size: int, overlap: int, window: str) -> Tensor:
    """phi(t) of the contract, t the pixel centre in the patch frame (core in (0, P))."""
    p, o = patch_size, overlap
    if window == "box" or o == 0:
        return torch.ones_like(t)
    ramp = ((t + o) / (2 * o)).clamp(0, 1) * ((p + o - t) / (2 * o)).clamp(0, 1)
    return 0.5 - 0.5 * torch.cos(math.pi * ramp) if window == "cosine" else ramp


def composite(alpha: Tensor, colors: Tensor, mode: str, background: Tensor | None) -> Tensor:
    """alpha: [..., K, N] per Gaussian and pixel; colors: [..., K, C] -> [..., C, N],
    out = sum_k c_k w_k with w_k the mode's weight of Gaussian k."""
    cols_t = colors.transpose(-1, -2)
    if mode == "sum":
        return cols_t @ alpha
    if mode == "normalized":
        return (cols_t @ alpha) / (alpha.sum(-2)[..., None, :] + NORMALIZED_EPS)
    # "alpha": front to back in index order, T_k = prod_{j<k} (1 - alpha_j)
    keep = 1.0 - alpha
    before = torch.cat((torch.ones_like(keep[..., :1, :]), torch.cumprod(keep, dim=-2)[..., :-1, :]), dim=-2)
    out = cols_t @ (alpha * before)
    if background is not None:
        out = out + keep.prod(-2)[..., None, :] * background[:, None]
    return out


def gaussian_alpha(
    dx: Tensor,  # [..., K, N] pixel minus mean
    dy: Tensor,
    cholesky: Tensor,  # [..., K, 3]
    opacity: Tensor | None,  # [..., K]
    alpha_max: float,
    alpha_min: float,
    cut: float | None = None,
) -> Tensor:  # [..., K, N]
    """alpha = min(alpha_max, o exp(-q/2)), 0 below alpha_min; with `cut`, also 0 where
    q > cut (the free rasterizer's 3-sigma ellipse, cut = 9)."""
    a, b, c = (t[..., None] for t in _conic(cholesky))
    q = a * dx * dx + 2.0 * b * dx * dy + c * dy * dy
    g = torch.exp(-0.5 * q)
    if cut is not None:
        g = torch.where(q <= cut, g, torch.zeros_like(g))
    alpha = g if opacity is None else opacity[..., None] * g
    alpha = alpha.clamp(max=alpha_max)
    return torch.where(alpha < alpha_min, torch.zeros_like(alpha), alpha)


def rasterize_patches_spec(
    means: Tensor,  # [B, Hp, Wp, K, 2] patch-local (x, y)
    cholesky: Tensor,  # [B, Hp, Wp, K, 3]
    colors: Tensor,  # [B, Hp, Wp, K, C]
    opacity: Tensor | None = None,  # [B, Hp, Wp, K]
    *,
    patch_size: int,
    overlap: int = 0,
    mode: str = "sum",
    window: str = "linear",
    alpha_max: float = 1.0,
    alpha_min: float = 0.0,
    background: Tensor | None = None,  # [C]
) -> Tensor:  # [B, C, Hp*P, Wp*P]
    """Each patch rendered on its whole canvas, weighted by phi(t_x) phi(t_y), the
    canvases summed into the image and divided by the summed weights."""
    bsz, hp, wp, _, nch = colors.shape
    p, o = patch_size, overlap
    s = p + 2 * o
    t = torch.arange(s, device=means.device, dtype=means.dtype) - o + 0.5  # canvas -> patch frame
    ty, tx = torch.meshgrid(t, t, indexing="ij")
    dx = tx.reshape(1, 1, 1, 1, -1) - means[..., 0:1]  # [B, Hp, Wp, K, S*S]
    dy = ty.reshape(1, 1, 1, 1, -1) - means[..., 1:2]
    canvas = composite(gaussian_alpha(dx, dy, cholesky, opacity, alpha_max, alpha_min), colors, mode, background)
    phi = _window(t, p, o, window)
    weight = (phi[:, None] * phi[None, :]).reshape(-1)  # [S*S]
    cols = (canvas * weight).permute(0, 3, 4, 1, 2).reshape(bsz, nch * s * s, hp * wp)
    size = (hp * p, wp * p)
    num = F.fold(cols, size, kernel_size=s, stride=p, padding=o)  # canvas pixels off the image drop out
    den = F.fold(weight.reshape(1, s * s, 1).expand(1, s * s, hp * wp), size, kernel_size=s, stride=p, padding=o)
    return num / den


def rasterize_spec(
    means: Tensor,  # [B, N, 2] image pixels
    cholesky: Tensor,  # [B, N, 3]
    colors: Tensor,  # [B, N, C]
    opacity: Tensor | None = None,  # [B, N]
    *,
    height: int,
    width: int,
    mode: str = "sum",
    alpha_max: float = 1.0,
    alpha_min: float = 0.0,
    background: Tensor | None = None,
) -> Tensor:  # [B, C, H, W]
    """Every pixel against every Gaussian, with the 3-sigma cut."""
    ys = torch.arange(height, device=means.device, dtype=means.dtype) + 0.5
    xs = torch.arange(width, device=means.device, dtype=means.dtype) + 0.5
    py, px = (t.reshape(-1) for t in torch.meshgrid(ys, xs, indexing="ij"))
    dx = px - means[..., 0:1]  # [B, N, H*W]
    dy = py - means[..., 1:2]
    alpha = gaussian_alpha(dx, dy, cholesky, opacity, alpha_max, alpha_min, cut=CUT_Q)
    out = composite(alpha, colors, mode, background)  # [B, C, H*W]
    return out.reshape(means.shape[0], colors.shape[-1], height, width)
