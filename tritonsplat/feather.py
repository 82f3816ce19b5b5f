"""Overlap feathering weights (docs/design.md section 3), as per-axis tables.

A patch's canvas pixel with patch-frame coordinate t (the core spans t in (0, P)) gets
weight `phi(t_x) * phi(t_y)`. The pixel's value is the weighted mean over the canvases
that cover it. Because the patches form a grid, the set of canvases covering a pixel is
a product of a set of columns and a set of rows, so the normaliser is separable too:
`sum w = (sum_v phi(t_x^v)) * (sum_u phi(t_y^u))`. One 1-D table per axis, already
divided by its normaliser and zero where the canvas leaves the image, is therefore the
whole feathering: `w_hat(u, v, r, s) = table_y[u, r] * table_x[v, s]`.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor


def window_profile(t: Tensor, patch_size: int, overlap: int, window: str) -> Tensor:
    """phi(t) on the canvas, t in (-o, P + o); 0 off the canvas."""
    p, o = patch_size, overlap
    on_canvas = (t > -o) & (t < p + o)
    if window == "box" or o == 0:
        ramp = torch.ones_like(t)
    else:
        ramp = ((t + o) / (2 * o)).clamp(0, 1) * ((p + o - t) / (2 * o)).clamp(0, 1)
        if window == "cosine":
            ramp = 0.5 - 0.5 * torch.cos(math.pi * ramp)
    return torch.where(on_canvas, ramp, torch.zeros_like(t))


def _axis_table(n_patches: int, patch_size: int, overlap: int, window: str) -> Tensor:
    """[n_patches, P + 2o] float64: normalised weight of each canvas line, 0 off-image."""
    p, o = patch_size, overlap
    s = p + 2 * o
    t = torch.arange(s, dtype=torch.float64) - o + 0.5  # canvas line -> patch-frame centre
    phi = window_profile(t, p, o, window)  # [S], the same for every patch
    coord = torch.arange(n_patches)[:, None] * p + t[None, :]  # [n, S] image coordinate
    inside = (coord > 0) & (coord < n_patches * p)
    weight = torch.where(inside, phi.expand(n_patches, s), torch.zeros(()))
    # normaliser: the weights of every canvas line that lands on the same image line
    line = (coord - 0.5).round().long().clamp(0, n_patches * p - 1)
    total = torch.zeros(n_patches * p, dtype=torch.float64).index_add_(0, line[inside], weight[inside])
    return torch.where(inside, weight / total[line].clamp_min(1e-300), torch.zeros(()))


@functools.lru_cache(maxsize=64)
def feather_tables(
    hp: int, wp: int, patch_size: int, overlap: int, window: str, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """(table_y [Hp, S], table_x [Wp, S]) on `device` in `dtype`; cached, so a training
    loop builds them once. Treat them as read-only."""
    ty = _axis_table(hp, patch_size, overlap, window)
    tx = _axis_table(wp, patch_size, overlap, window)
    return ty.to(device=device, dtype=dtype), tx.to(device=device, dtype=dtype)


def fold_canvases(cols: Tensor, hp: int, wp: int, patch_size: int, overlap: int) -> Tensor:
    """cols: [B, C * S * S, Hp * Wp] feathered canvases -> image [B, C, Hp*P, Wp*P].

    Summing the overlapping canvases is a fold (col2im); it gathers per output pixel, so
    it is deterministic, unlike a scatter with atomics."""
    s = patch_size + 2 * overlap
    size = (hp * patch_size, wp * patch_size)
    return torch.nn.functional.fold(cols, size, kernel_size=s, stride=patch_size, padding=overlap)


def unfold_image(image: Tensor, patch_size: int, overlap: int) -> Tensor:
    """The adjoint of `fold_canvases`: image [B, C, H, W] -> [B, C * S * S, Hp * Wp],
    zero where a canvas leaves the image."""
    s = patch_size + 2 * overlap
    return torch.nn.functional.unfold(image, kernel_size=s, stride=patch_size, padding=overlap)
