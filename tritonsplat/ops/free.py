"""`tritonsplat::rasterize` (free, tile-binned Gaussians) and its backward as
torch.library custom ops. Inputs arrive checked and contiguous from `tritonsplat.api`."""

from __future__ import annotations

import torch
from torch import Tensor

from . import empty_for_none, fake_grads, register_autograd, run_backend


@torch.library.custom_op("tritonsplat::rasterize", mutates_args=())
def rasterize_op(
    means: Tensor,  # [B, N, 2]
    cholesky: Tensor,  # [B, N, 3]
    colors: Tensor,  # [B, N, C]
    opacity: Tensor | None,  # [B, N]
    background: Tensor | None,  # [C]
    height: int,
    width: int,
    mode: str,
    tile_size: int,
    alpha_max: float,
    alpha_min: float,
    backend: str,
) -> Tensor:  # [B, C, H, W]
    return run_backend(
        backend, "free", "free_forward",
        means, cholesky, colors, opacity, background, height, width, mode, tile_size, alpha_max, alpha_min
    )


@rasterize_op.register_fake
def _(means, cholesky, colors, opacity, background, height, width, mode, tile_size, alpha_max, alpha_min, backend):
    return colors.new_empty(colors.shape[0], colors.shape[-1], height, width)


@torch.library.custom_op("tritonsplat::rasterize_backward", mutates_args=())
def rasterize_backward_op(
    grad_image: Tensor,
    means: Tensor,
    cholesky: Tensor,
    colors: Tensor,
    opacity: Tensor | None,
    background: Tensor | None,
    height: int,
    width: int,
    mode: str,
    tile_size: int,
    alpha_max: float,
    alpha_min: float,
    backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    grads = run_backend(
        backend, "free", "free_backward",
        grad_image.contiguous(), means, cholesky, colors, opacity, background,
        height, width, mode, tile_size, alpha_max, alpha_min,
    )  # fmt: skip
    return empty_for_none(grads, means)


@rasterize_backward_op.register_fake
def _(grad_image, means, cholesky, colors, opacity, background, *config):
    return fake_grads(means, cholesky, colors, opacity, background)


register_autograd(rasterize_op, rasterize_backward_op)
