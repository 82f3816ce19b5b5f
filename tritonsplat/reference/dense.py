"""The literal maths of DESIGN.md sections 1-3, every pixel-Gaussian weight materialised.

Slow and memory-hungry on purpose: it is written to be read against DESIGN.md, serves as
the independent oracle the fast torch path is tested against, and is the baseline of the
benchmarks ("dense"). Differentiable by plain autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..feather import window_profile
from ..params import conic_from_cholesky


def composite(alpha: Tensor, colors: Tensor, mode: str, background: Tensor | None) -> Tensor:
    """alpha: [..., K, N] per Gaussian and pixel; colors: [..., K, C] -> [..., C, N].

    The products are written colors^T @ alpha: with C small, a GEMM whose short side is
    the output's rows runs 4x faster on the CPU than alpha^T @ colors (measured, 2 cores)."""
    cols_t = colors.transpose(-1, -2)
    if mode == "sum":
        return torch.matmul(cols_t, alpha)
    if mode == "normalized":
        return torch.matmul(cols_t, alpha) / (alpha.sum(-2)[..., None, :] + 1e-6)
    # "alpha": front to back in index order; T_k = prod_{j<k} (1 - alpha_j)
    trans = torch.cumprod(1.0 - alpha, dim=-2)
    before = torch.cat((torch.ones_like(trans[..., :1, :]), trans[..., :-1, :]), dim=-2)
    out = torch.matmul(cols_t, alpha * before)
    if background is not None:
        out = out + trans[..., -1:, :] * background[:, None]
    return out


def gaussian_alpha(
    dx: Tensor,
    dy: Tensor,
    cholesky: Tensor,
    opacity: Tensor | None,
    alpha_max: float,
    alpha_min: float,
    cut: float | None = None,
) -> Tensor:
    """dx, dy: [..., K, N] pixel minus mean; cholesky: [..., K, 3]; opacity: [..., K].
    With `cut`, alpha = 0 where q > cut (the free rasterizer's 3-sigma ellipse, cut = 9)."""
    a, b, c = conic_from_cholesky(cholesky)[..., None, :].unbind(-1)  # each [..., K, 1]
    q = a * dx * dx + 2.0 * b * dx * dy + c * dy * dy
    g = torch.exp(-0.5 * q)
    if cut is not None:
        g = torch.where(q <= cut, g, torch.zeros_like(g))
    alpha = g if opacity is None else opacity[..., None] * g
    alpha = alpha.clamp(max=alpha_max)
    return torch.where(alpha < alpha_min, torch.zeros_like(alpha), alpha)


def rasterize_patches_dense(
    means: Tensor,  # [B, Hp, Wp, K, 2]
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
    bsz, hp, wp, _, nch = colors.shape
    p, o = patch_size, overlap
    s = p + 2 * o
    t = torch.arange(s, device=means.device, dtype=means.dtype) - o + 0.5  # canvas -> patch frame
    ty, tx = torch.meshgrid(t, t, indexing="ij")
    dx = tx.reshape(1, 1, 1, 1, -1) - means[..., 0:1]  # [B, Hp, Wp, K, S*S]
    dy = ty.reshape(1, 1, 1, 1, -1) - means[..., 1:2]
    alpha = gaussian_alpha(dx, dy, cholesky, opacity, alpha_max, alpha_min)
    canvas = composite(alpha, colors, mode, background)  # [B, Hp, Wp, C, S*S]
    phi = window_profile(t, p, o, window)
    weight = (phi[:, None] * phi[None, :]).reshape(-1)  # [S*S]
    canvas = canvas * weight
    # fold the overlapping canvases together, and the weights with them, then divide
    cols = canvas.permute(0, 3, 4, 1, 2).reshape(bsz, nch * s * s, hp * wp)
    size = (hp * p, wp * p)
    num = F.fold(cols, size, kernel_size=s, stride=p, padding=o)
    wcols = weight.reshape(1, s * s, 1).expand(1, s * s, hp * wp)
    den = F.fold(wcols, size, kernel_size=s, stride=p, padding=o)
    return num / den


def rasterize_dense(
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
    """DESIGN.md section 4 literally: every pixel against every Gaussian, 3-sigma cut."""
    ys = torch.arange(height, device=means.device, dtype=means.dtype) + 0.5
    xs = torch.arange(width, device=means.device, dtype=means.dtype) + 0.5
    py, px = (t.reshape(-1) for t in torch.meshgrid(ys, xs, indexing="ij"))
    dx = px - means[..., 0:1]  # [B, N, H*W]
    dy = py - means[..., 1:2]
    alpha = gaussian_alpha(dx, dy, cholesky, opacity, alpha_max, alpha_min, cut=9.0)
    out = composite(alpha, colors, mode, background)  # [B, C, H*W]
    return out.reshape(means.shape[0], colors.shape[-1], height, width)
