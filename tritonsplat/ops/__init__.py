"""torch.library custom ops with autograd, one per operation, each defined once by
`define_op` from its settings type and its two backend modules.

An operation takes the five tensors (means, cholesky, colors, opacity, background) and,
keyword-only, the fields of its settings and the backend; it returns the image and, for
an operation with a `saved` record, the tensors its forward computed for the backward
(the free rasterizer's binning and row table), which the autograd context keeps by name.
The backward op takes the image's gradient, the five tensors and that record, and
returns the five gradients. Registered custom ops are opaque to torch.compile: a
compiled model traces through them (the fake implementations give the shapes) without a
graph break, and the real implementation runs eagerly at run time.
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


def _run(backends: Callable[[str], object], backend: str, function: str, *args, **kwargs):
    fn = getattr(backends(backend), function)
    if backend == "torch":
        with ieee_float32():
            return fn(*args, **kwargs)
    return fn(*args, **kwargs)


def define_op(
    name: str, settings_type: type, image_shape: Callable, backends: Callable[[str], object], saved: type | None = None
):
    """Register `tritonsplat::<name>` and `tritonsplat::<name>_backward`, their fake
    implementations and the autograd formula. `backends(name)` returns the module
    ("torch" or "triton") with `forward(*tensors, cfg)` and `backward(grad, *tensors, cfg)`;
    `image_shape(colors, cfg)` gives the image's shape. With `saved` (a NamedTuple type of
    tensors, with `saved.fake(colors, cfg)` for their fake values) the backend's forward
    returns `(image, saved)` and its backward takes `saved=` the same record."""
    fields = dataclasses.fields(settings_type)
    config = ", ".join(f"{_SCHEMA_TYPES[f.type]} {f.name}" for f in fields)
    saved_names = () if saved is None else saved._fields
    saved_schema = "".join(f", Tensor {n}" for n in saved_names)
    outputs = "Tensor" if saved is None else "(" + ", ".join(["Tensor"] * (1 + len(saved_names))) + ")"

    def forward(means, cholesky, colors, opacity, background, *, backend, **settings):
        cfg = settings_type(**settings)
        result = _run(backends, backend, "forward", means, cholesky, colors, opacity, background, cfg)
        if saved is None:
            return result
        image, record = result
        return (image, *record)

    def forward_fake(means, cholesky, colors, opacity, background, *, backend, **settings):
        cfg = settings_type(**settings)
        image = colors.new_empty(image_shape(colors, cfg))
        return image if saved is None else (image, *saved.fake(colors, cfg))

    def backward(grad_image, means, cholesky, colors, opacity, background, *record, backend, **settings):
        cfg = settings_type(**settings)
        tensors = (means, cholesky, colors, opacity, background)
        extra = {} if saved is None else {"saved": saved(*record)}
        grads = _run(backends, backend, "backward", grad_image.contiguous(), *tensors, cfg, **extra)
        # a custom op cannot return None: absent gradients travel as (distinct) empty tensors
        return tuple(means.new_empty(0) if g is None else g for g in grads)

    def backward_fake(grad_image, means, cholesky, colors, opacity, background, *record, backend, **settings):
        return tuple(
            means.new_empty(0) if t is None else torch.empty_like(t)
            for t in (means, cholesky, colors, opacity, background)
        )

    op = torch.library.custom_op(
        f"tritonsplat::{name}",
        forward,
        mutates_args=(),
        schema=f"({_TENSORS}, *, {config}, str backend) -> {outputs}",
    )
    op.register_fake(forward_fake)
    backward_op = torch.library.custom_op(
        f"tritonsplat::{name}_backward",
        backward,
        mutates_args=(),
        schema=f"(Tensor grad_image, {_TENSORS}{saved_schema}, *, {config}, str backend) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor)",
    )
    backward_op.register_fake(backward_fake)

    def setup_context(ctx, inputs, keyword_only_inputs, output):
        record = () if saved is None else output[1:]
        ctx.mark_non_differentiable(*record)
        ctx.save_for_backward(*inputs, *record)
        ctx.settings = keyword_only_inputs  # by name: {field: value, ..., "backend": ...}

    def autograd_backward(ctx, grad_image, *_grad_record):
        tensors = ctx.saved_tensors
        opacity, background = tensors[3], tensors[4]
        grads = backward_op(grad_image, *tensors, **ctx.settings)
        d_op = None if opacity is None else grads[3]
        d_bg = None if background is None else grads[4]
        return grads[0], grads[1], grads[2], d_op, d_bg

    op.register_autograd(autograd_backward, setup_context=setup_context)
    return op


def settings_of(cfg) -> dict:
    """The fields of a settings value by name, as the ops take them."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
