"""torch.library custom ops with autograd: one per operation, each dispatching to exactly
one of `reference/` (torch) or `kernels/` (Triton).

Both rasterizers take (means, cholesky, colors, opacity, background, *config) and return
an image; their backward ops return the five gradients. Registered custom ops are opaque
to torch.compile: a compiled model traces through them (the fake implementations give the
shapes) without a graph break, and the real implementation runs eagerly at run time.
"""

from __future__ import annotations

import contextlib

import torch


def empty_for_none(grads, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A custom op cannot return None: absent gradients travel as (distinct) empty tensors."""
    return tuple(like.new_empty(0) if g is None else g for g in grads)


def fake_grads(means, cholesky, colors, opacity, background) -> tuple[torch.Tensor, ...]:
    return tuple(
        means.new_empty(0) if t is None else torch.empty_like(t) for t in (means, cholesky, colors, opacity, background)
    )


def register_autograd(forward_op, backward_op) -> None:
    """Saves the five tensors, calls `backward_op(grad, *tensors, *config)` and maps the
    empty placeholders back to None."""

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:5])
        ctx.config = inputs[5:]

    def backward(ctx, grad_image):
        means, cholesky, colors, opacity, background = ctx.saved_tensors
        grads = backward_op(grad_image, means, cholesky, colors, opacity, background, *ctx.config)
        d_op = None if opacity is None else grads[3]
        d_bg = None if background is None else grads[4]
        return (grads[0], grads[1], grads[2], d_op, d_bg) + (None,) * len(ctx.config)

    forward_op.register_autograd(backward, setup_context=setup_context)


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


def run_backend(name: str, operation: str, function: str, *args):
    """Call `function` of the backend's `operation` module (the torch path at full float32
    precision)."""
    fn = getattr(backend_module(name, operation), function)
    if name == "torch":
        with ieee_float32():
            return fn(*args)
    return fn(*args)


def backend_module(name: str, operation: str):
    """The implementation module of `operation` ("patches" or "free") for a backend."""
    import importlib

    package = "kernels" if name == "triton" else "reference"  # Triton is imported only when used
    return importlib.import_module(f"tritonsplat.{package}.{operation}")
