"""Residual blocks with AdaLN conditioning (docs/design.md, section 6): a Linear of the
conditioning vector gives per-channel scale, shift and a gate; the gate starts at zero,
so every block starts as the identity and the conditioning is learnt in gently
(the adaLN-Zero initialisation of diffusion transformers, Peebles and Xie 2023)."""

from __future__ import annotations

import torch
from torch import nn


class AdaLNBlock(nn.Module):
    """x + gate(c) * conv(conv(norm(x) * (1 + scale(c)) + shift(c))); `cond_dim` 0 makes a
    plain residual block (the ablation "without AdaLN")."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, channels, affine=cond_dim == 0)  # LayerNorm over (C, H, W)
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.cond = None
        if cond_dim:
            self.cond = nn.Linear(cond_dim, 3 * channels)
            nn.init.zeros_(self.cond.weight)
            nn.init.zeros_(self.cond.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(x)
        if self.cond is None:
            return x + self.body(h)
        scale, shift, gate = self.cond(c)[:, :, None, None].chunk(3, dim=1)
        return x + gate * self.body(h * (1 + scale) + shift)


class Bottleneck(nn.Module):
    def __init__(self, channels: int, cond_dim: int, blocks: int):
        super().__init__()
        self.blocks = nn.ModuleList(AdaLNBlock(channels, cond_dim) for _ in range(blocks))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, c)
        return x
