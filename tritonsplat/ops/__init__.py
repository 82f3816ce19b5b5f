"""torch.library custom ops with autograd, one per operation, each defined once by
`define_op` from its settings type and its two backend modules.

An operation takes (means, cholesky, colors, opacity, background, *settings fields,
backend) and returns an image; its backward op takes the image's gradient first and
returns the five gradients. Registered custom ops are opaque to torch.compile: a compiled
model traces through them (the fake implementations give the shapes) without a graph
break, and the real implementation runs eagerly at run time.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import torch

_TENSORS = "Tensor means, Tensor cholesky, Tensor colors, Tensor? opacity, Tensor? background"
_SCHEMA_TYPES = {"int": "int", "float": "float", "str": "str"}


@contextlib.contextmanager
def ieee_float32():
    """Full float32 matrix products inside the torch path: its exponent and compositing
    are matrix products, and `torch.set_float32_matmul_precision("high")` (TF32, common on
    Ampere and Hopper) would move G by 1-3% near the 3-sigma edge. Restored on exit."""
    previous = torch.get_float32_matmul_precision()
    if previous == "highest":
        yield
        return
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def define_op(name: str, settings_type: type, image_shape: Callable, backends: Callable[[str], object]):
    """Register `tritonsplat::<name>` and `tritonsplat::<name>_backward`, their fake
    implementations and the autograd formula. `backends(name)` returns the module
    ("torch" or "triton") with `forward(*tensors, settings)` and
    `backward(grad, *tensors, settings)`; `image_shape(colors, settings)` the output's."""
    fields = dataclasses.fields(settings_type)
    config = ", ".join(f"{_SCHEMA_TYPES[f.type]} {f.name}" for f in fields)

    def settings_and_backend(rest):
        return settings_type(*rest[: len(fields)]), rest[len(fields)]

    def run(backend: str, function: str, *args):
        fn = getattr(backends(backend), function)
        if backend == "torch":
            with ieee_float32():
                return fn(*args)
        return fn(*args)

    def forward(means, cholesky, colors, opacity, background, *rest):
        cfg, backend = settings_and_backend(rest)
        return run(backend, "forward", means, cholesky, colors, opacity, background, cfg)

    def forward_fake(means, cholesky, colors, opacity, background, *rest):
        cfg, _ = settings_and_backend(rest)
        return colors.new_empty(image_shape(colors, cfg))

    def backward(grad_image, means, cholesky, colors, opacity, background, *rest):
        cfg, backend = settings_and_backend(rest)
        grads = run(backend, "backward", grad_image.contiguous(), means, cholesky, colors, opacity, background, cfg)
        # a custom op cannot return None: absent gradients travel as (distinct) empty tensors
        return tuple(means.new_empty(0) if g is None else g for g in grads)

    def backward_fake(grad_image, means, cholesky, colors, opacity, background, *rest):
        return tuple(
            means.new_empty(0) if t is None else torch.empty_like(t)
            for t in (means, cholesky, colors, opacity, background)
        )

    op = torch.library.custom_op(
        f"tritonsplat::{name}", forward, mutates_args=(), schema=f"({_TENSORS}, {config}, str backend) -> Tensor"
    )
    op.register_fake(forward_fake)
    backward_op = torch.library.custom_op(
        f"tritonsplat::{name}_backward",
        backward,
        mutates_args=(),
        schema=f"(Tensor grad_image, {_TENSORS}, {config}, str backend) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
    )
    backward_op.register_fake(backward_fake)

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:5])
        ctx.config = inputs[5:]

    def autograd_backward(ctx, grad_image):
        means, cholesky, colors, opacity, background = ctx.saved_tensors
        grads = backward_op(grad_image, means, cholesky, colors, opacity, background, *ctx.config)
        d_op = None if opacity is None else grads[3]
        d_bg = None if background is None else grads[4]
        return (grads[0], grads[1], grads[2], d_op, d_bg) + (None,) * len(ctx.config)

    op.register_autograd(autograd_backward, setup_context=setup_context)
    return op
