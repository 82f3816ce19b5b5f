"""`tritonsplat::rasterize_patches` and its backward as torch.library custom ops. Inputs
arrive checked and contiguous from `tritonsplat.api`."""

from __future__ import annotations

import torch
from torch import Tensor

from . import empty_for_none, fake_grads, register_autograd, run_backend


@torch.library.custom_op("tritonsplat::rasterize_patches", mutates_args=())
def rasterize_patches_op(
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
    backend: str,
) -> Tensor:  # [B, C, Hp*P, Wp*P]
    return run_backend(
        backend, "patches", "patches_forward",
        means, cholesky, colors, opacity, background, patch_size, overlap, mode, window, alpha_max, alpha_min
    )


@rasterize_patches_op.register_fake
def _(means, cholesky, colors, opacity, background, patch_size, overlap, mode, window, alpha_max, alpha_min, backend):
    b, hp, wp, _, c = colors.shape
    return colors.new_empty(b, c, hp * patch_size, wp * patch_size)


@torch.library.custom_op("tritonsplat::rasterize_patches_backward", mutates_args=())
def rasterize_patches_backward_op(
    grad_image: Tensor,
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
    backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    grads = run_backend(
        backend, "patches", "patches_backward",
        grad_image.contiguous(), means, cholesky, colors, opacity, background,
        patch_size, overlap, mode, window, alpha_max, alpha_min,
    )  # fmt: skip
    return empty_for_none(grads, means)


@rasterize_patches_backward_op.register_fake
def _(grad_image, means, cholesky, colors, opacity, background, *config):
    return fake_grads(means, cholesky, colors, opacity, background)


register_autograd(rasterize_patches_op, rasterize_patches_backward_op)
