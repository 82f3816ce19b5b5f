"""`tritonsplat::rasterize_patches` and its backward as torch.library custom ops.

Registered custom ops are opaque to torch.compile: a compiled model traces through them
(with the fake implementations below giving output shapes) without a graph break, and the
real implementation runs eagerly at run time. Inputs arrive checked and contiguous from
`tritonsplat.api`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..reference import patches as torch_impl


def _backend(name: str):
    if name == "triton":
        from ..kernels import patches as triton_impl  # imported lazily: triton is optional at import

        return triton_impl
    return torch_impl


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
    return _backend(backend).patches_forward(
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
    grads = _backend(backend).patches_backward(
        grad_image.contiguous(),
        means,
        cholesky,
        colors,
        opacity,
        background,
        patch_size,
        overlap,
        mode,
        window,
        alpha_max,
        alpha_min,
    )
    # a custom op cannot return None: absent gradients travel as (distinct) empty tensors
    return tuple(means.new_empty(0) if g is None else g for g in grads)


@rasterize_patches_backward_op.register_fake
def _(grad_image, means, cholesky, colors, opacity, background, *args):
    empty = means.new_empty(0)
    return (
        torch.empty_like(means),
        torch.empty_like(cholesky),
        torch.empty_like(colors),
        empty if opacity is None else torch.empty_like(opacity),
        empty if background is None else torch.empty_like(background),
    )


_CONFIG = ("patch_size", "overlap", "mode", "window", "alpha_max", "alpha_min", "backend")


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:5])
    ctx.config = inputs[5:]


def _backward(ctx, grad_image):
    means, cholesky, colors, opacity, background = ctx.saved_tensors
    grads = rasterize_patches_backward_op(grad_image, means, cholesky, colors, opacity, background, *ctx.config)
    d_op = None if opacity is None else grads[3]
    d_bg = None if background is None else grads[4]
    return (grads[0], grads[1], grads[2], d_op, d_bg) + (None,) * len(_CONFIG)


rasterize_patches_op.register_autograd(_backward, setup_context=_setup_context)
