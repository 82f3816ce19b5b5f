"""What the tests of both rasterizers and the benchmarks share: random Gaussian fields, the
differentiable inputs in signature order, forward-and-gradients with one upstream
gradient, and the comparison with its per-dtype tolerances."""

from __future__ import annotations

import torch
from torch import Tensor

NAMES = ("means", "cholesky", "colors", "opacity", "background")

# One table of tolerances per dtype (atol, rtol), per element: |actual - expected| <=
# atol + rtol |expected|. float32: the kernels and the torch path differ in summation
# order and in how the exponent's linear forms are rounded (u' = A x + B against a
# matrix product), about 1e-6 relative per pair; a gradient summed over a canvas's 324
# pixels can cancel to near 0, hence an atol of 1e-4 on entries of order 1.
TOLERANCES = {torch.float32: (1e-4, 1e-3), torch.float64: (1e-10, 1e-8)}


def assert_close(actual: Tensor, expected: Tensor, name: str = "") -> None:
    atol, rtol = TOLERANCES[expected.dtype]
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")


def inputs_of(field: dict[str, Tensor], use_opacity: bool, background: Tensor | None = None) -> list:
    """The differentiable inputs in signature order (None where absent)."""
    op = field["opacity"] if use_opacity else None
    return [field["means"], field["cholesky"], field["colors"], op, background]


def forward_and_grads(fn, inputs: list, upstream: Tensor, **kw) -> tuple[Tensor, list]:
    """fn(*inputs, background=..., **kw) and the gradients of <upstream, image> with
    respect to every present input (None for the absent ones)."""
    leaves = [None if t is None else t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves[:4], background=leaves[4], **kw)
    present = [t for t in leaves if t is not None]
    if not present[0].numel():  # no Gaussians: nothing to differentiate
        return out, [None] * len(inputs)
    grads = iter(torch.autograd.grad(out, present, upstream))
    return out, [None if t is None else next(grads) for t in leaves]


def compare(actual: tuple[Tensor, list], expected: tuple[Tensor, list]) -> None:
    """The image and every gradient of two `forward_and_grads` results."""
    assert_close(actual[0], expected[0], "image")
    for name, g, r in zip(NAMES, actual[1], expected[1], strict=True):
        if r is not None:
            assert_close(g, r, f"d_{name}")


def random_patch_field(
    batch: int,
    hp: int,
    wp: int,
    k: int,
    channels: int,
    patch_size: int,
    *,
    overlap: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    seed: int = 0,
    grid: bool = False,
) -> dict[str, Tensor]:
    """Gaussians scattered over each patch's canvas (or, with `grid`, on the paper's fixed
    sqrt(K) x sqrt(K) grid plus bounded offsets), sigmas about 0.5 to 2.5 pixels, random
    orientation, colors in [0, 1], opacity in [0.2, 1]."""
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, hp, wp, k)

    def rand(*s):
        return torch.rand(*s, generator=gen, dtype=torch.float64)

    if grid:
        side = round(k**0.5)
        assert side * side == k, "grid needs a square K"
        t = torch.linspace(-overlap, patch_size + overlap, side, dtype=torch.float64)
        gy, gx = torch.meshgrid(t, t, indexing="ij")
        base = torch.stack((gx.reshape(-1), gy.reshape(-1)), dim=-1)
        means = base + 0.5 * torch.tanh(torch.randn(*shape, 2, generator=gen, dtype=torch.float64))
    else:
        means = rand(*shape, 2) * (patch_size + 2 * overlap) - overlap
    chol = torch.stack(
        (rand(*shape) * 2 + 0.5, torch.randn(*shape, generator=gen, dtype=torch.float64) * 0.5, rand(*shape) * 2 + 0.5),
        dim=-1,
    )
    out = dict(means=means, cholesky=chol, colors=rand(*shape, channels), opacity=rand(*shape) * 0.8 + 0.2)
    return {name: t.to(device=device, dtype=dtype).contiguous() for name, t in out.items()}


def random_free_field(
    batch: int,
    n: int,
    channels: int,
    height: int,
    width: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    seed: int = 0,
    sigma: tuple[float, float] = (0.5, 3.5),
    margin: float = 5.0,
) -> dict[str, Tensor]:
    """N free Gaussians per image, means up to `margin` pixels beyond every edge, sigmas
    (the Cholesky diagonal) in `sigma`, random shear, colors in [0, 1], opacity in [0.2, 1]."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*s):
        return torch.rand(*s, generator=gen, dtype=torch.float64)

    lo, hi = sigma
    size = torch.tensor([width + 2 * margin, height + 2 * margin], dtype=torch.float64)
    chol = torch.stack(
        (
            rand(batch, n) * (hi - lo) + lo,
            torch.randn(batch, n, generator=gen, dtype=torch.float64) * 0.5 * lo,
            rand(batch, n) * (hi - lo) + lo,
        ),
        dim=-1,
    )
    out = dict(
        means=rand(batch, n, 2) * size - margin,
        cholesky=chol,
        colors=rand(batch, n, channels),
        opacity=rand(batch, n) * 0.8 + 0.2,
    )
    return {name: t.to(device=device, dtype=dtype).contiguous() for name, t in out.items()}


def with_changes(args: dict, kw: dict, changes: dict) -> tuple[dict, dict]:
    """A bad-input case: each change replaces a tensor argument (a callable is applied to
    the good value) or sets a keyword argument."""
    args, kw = dict(args), dict(kw)
    for key, value in changes.items():
        if key in args:
            args[key] = value(args[key]) if callable(value) else value
        else:
            kw[key] = value
    return args, kw


def assert_compiles_like_eager(fn, tensors: list[Tensor]) -> None:
    """`fn(*tensors)` (a scalar loss) traces into one graph (fullgraph=True raises on any
    graph break), forward and backward (aot_eager traces the autograd graph too), and
    gives eager's loss and gradients."""
    torch._dynamo.reset()
    results = []
    for f in (fn, torch.compile(fn, fullgraph=True, backend="aot_eager")):
        leaves = [t.detach().clone().requires_grad_() for t in tensors]
        loss = f(*leaves)
        results.append((loss, torch.autograd.grad(loss, leaves)))
    assert_close(results[1][0], results[0][0], "loss")
    for g, r in zip(results[1][1], results[0][1], strict=True):
        assert_close(g, r, "grad")
