"""rasterize (free, tile-binned Gaussians): the torch path against the literal maths and
float64 gradcheck; the Triton kernels under the interpreter against the torch path;
dense tiles, off-image and degenerate Gaussians, N = 0, tile-size independence, errors."""

from __future__ import annotations

import itertools

import pytest
import torch

import tritonsplat as ts
from tritonsplat.spec import gaussian_alpha, rasterize_spec
from tritonsplat.testing import assert_close, assert_compiles_like_eager, inputs_of, random_free_field, with_changes
from tritonsplat.testing import compare as _compare
from tritonsplat.testing import forward_and_grads as _forward_and_grads

MODES = ("sum", "alpha", "normalized")
H, W = 20, 27  # not multiples of any tile size


def _inputs(field, mode, use_opacity):
    bg = torch.linspace(0.2, 0.8, field["colors"].shape[-1]).to(field["colors"]) if mode == "alpha" else None
    return inputs_of(field, use_opacity, bg)


def _torch(*a, **k):
    return ts.rasterize(*a, backend="torch", **k)


@pytest.mark.parametrize("mode,tile_size", list(itertools.product(MODES, (4, 16))))
@pytest.mark.parametrize("clamped", [False, True], ids=["plain", "opacity+clamps"])
def test_torch_path_matches_dense_float64(mode, tile_size, clamped):
    field = random_free_field(2, 40, 3, H, W, dtype=torch.float64, seed=1)
    inputs = _inputs(field, mode, use_opacity=clamped)
    kw = dict(height=H, width=W, mode=mode)
    if clamped:
        kw.update(alpha_max=0.9, alpha_min=0.05)
    up = torch.randn(2, 3, H, W, dtype=torch.float64)
    _compare(
        _forward_and_grads(_torch, inputs, up, tile_size=tile_size, **kw),
        _forward_and_grads(rasterize_spec, inputs, up, **kw),
    )


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_torch_path(mode):
    field = random_free_field(1, 6, 2, 9, 11, dtype=torch.float64, seed=2)
    inputs = [None if t is None else t.requires_grad_() for t in _inputs(field, mode, use_opacity=True)]

    def fn(*xs):
        it = iter(xs)
        full = [None if t is None else next(it) for t in inputs]
        return _torch(*full[:4], background=full[4], height=9, width=11, mode=mode, tile_size=4, alpha_max=0.95)

    assert torch.autograd.gradcheck(fn, [t for t in inputs if t is not None], eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend,tiles", [("torch", (1, 4, 8, 16, 64)), ("triton", (4, 8, 16, 64))])
def test_image_does_not_depend_on_tile_size(backend, tiles, device):
    field = random_free_field(1, 60, 3, 40, 33, seed=3, device=device)
    args = (field["means"], field["cholesky"], field["colors"], field["opacity"])
    images = [ts.rasterize(*args, height=40, width=33, mode="alpha", tile_size=t, backend=backend) for t in tiles]
    for img in images[1:]:
        torch.testing.assert_close(img, images[0], atol=2e-6, rtol=1e-5)


def test_a_tile_with_more_than_2000_gaussians_is_exact():
    """The most used public 2D rasterizer sums only the first 256 per 16 x 16 tile; every
    one of these 2,100 Gaussians in one tile must count."""
    n = 2100
    g = torch.Generator().manual_seed(4)
    means = (torch.rand(1, n, 2, generator=g) * 6 + 5).double()  # all inside tile (0, 0)
    chol = torch.stack((torch.full((1, n), 0.8), torch.zeros(1, n), torch.full((1, n), 0.8)), -1).double()
    colors = torch.rand(1, n, 3, generator=g).double() / n
    for mode in MODES:
        out = _torch(means, chol, colors, height=16, width=16, mode=mode)
        ref = rasterize_spec(means, chol, colors, height=16, width=16, mode=mode)
        assert_close(out, ref, mode)
    half = _torch(means[:, :1000], chol[:, :1000], colors[:, :1000], height=16, width=16)
    assert (out.sum() - half.sum()).abs() > 0.1 * out.sum()  # the other 1,100 matter


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_off_image_and_degenerate_gaussians_follow_the_maths(backend, device):
    dtype = torch.float64 if backend == "torch" else torch.float32  # the kernels compute in float32
    means = torch.tensor([[[-30.0, 5.0], [-2.0, 6.0], [10.0, 10.0], [12.5, 4.5], [5.0, 25.0]]], dtype=dtype)
    chol = torch.tensor(
        [[[2.0, 0.0, 2.0], [1.5, 0.3, 1.0], [400.0, 0.0, 300.0], [0.01, 0.0, 0.01], [1e-3, 0.0, 9.0]]],
        dtype=dtype,
    )  # wholly off, straddling the left edge, huge, needle-thin, thin and long across the bottom
    colors = torch.eye(5, dtype=dtype)[None]
    means, chol, colors = (t.to(device) for t in (means, chol, colors))
    leaves = [t.clone().requires_grad_() for t in (means, chol, colors)]
    out = ts.rasterize(*leaves, height=16, width=20, backend=backend)
    spec_leaves = [t.double().clone().requires_grad_() for t in (means, chol, colors)]
    ref = rasterize_spec(*spec_leaves, height=16, width=20)
    assert_close(out, ref.to(dtype))
    up = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)).to(out)
    grads = torch.autograd.grad(out, leaves, up)
    ref_grads = torch.autograd.grad(ref, spec_leaves, up.double())
    for name, g, r in zip(("means", "cholesky", "colors"), grads, ref_grads, strict=True):
        assert torch.isfinite(g).all(), name
        assert_close(g, r.to(dtype), f"d_{name}")
    out, ref = out.detach(), ref.detach()
    assert out[0, 0].abs().max() == 0  # wholly off-image
    assert out[0, 1].max() > 0.1  # straddling: partly visible
    assert (out[0, 2] > 0.99).all()  # huge: everywhere, G close to 1
    assert out[0, 3, 4, 12] == pytest.approx(1.0)  # thin, centred on pixel (4, 12)
    assert (out[0, 3] > 0).sum() == 1


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("mode", MODES)
def test_no_gaussians(mode, backend, device):
    empty = torch.zeros(2, 0, 3, device=device, requires_grad=True)
    bg = torch.tensor([0.1, 0.2, 0.3], device=device) if mode == "alpha" else None
    out = ts.rasterize(empty[..., :2], empty, empty, height=5, width=7, mode=mode, background=bg, backend=backend)
    expected = torch.zeros(2, 3, 5, 7, device=device) if bg is None else bg.view(1, 3, 1, 1).expand(2, 3, 5, 7)
    torch.testing.assert_close(out, expected)
    (grad,) = torch.autograd.grad(out.sum(), empty)
    assert grad.shape == empty.shape


def test_gaussians_at_names_exactly_the_gaussians_with_alpha():
    field = random_free_field(1, 50, 3, H, W, seed=5)
    means, chol, op = field["means"][0], field["cholesky"][0], field["opacity"][0]
    pixels = torch.tensor([[0, 0], [5, 7], [19, 26], [10, 13]])
    found = ts.gaussians_at(means, chol, pixels, op, alpha_min=0.05)
    for (r, c), idx in zip(pixels.tolist(), found, strict=True):
        dx = torch.tensor([c + 0.5]) - means[:, 0:1]
        dy = torch.tensor([r + 0.5]) - means[:, 1:2]
        alpha = gaussian_alpha(dx, dy, chol, op, 1.0, 0.05, cut=9.0)[:, 0]
        assert torch.equal(idx, torch.nonzero(alpha > 0).reshape(-1))
    assert sum(len(i) for i in found) > 0


# ------------------------------------------------------------------ kernels = torch path

# (B, N, C, H, W, tile): N not a power of two, C in {1, 3, 8}, images not multiples of the tile
KERNEL_SHAPES = [(1, 37, 3, H, W, 16), (2, 23, 1, 13, 18, 8), (1, 19, 8, 16, 16, 16)]


def _kernel_vs_torch(shape, mode, use_opacity, device, field=None, **extra):
    b, n, c, h, w, tile = shape
    field = field or random_free_field(b, n, c, h, w, seed=n + c)
    field = {k: t.to(device) for k, t in field.items()}
    inputs = _inputs(field, mode, use_opacity)
    kw = dict(height=h, width=w, mode=mode, tile_size=tile, **extra)
    up = torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(9)).to(device)
    run = lambda backend: _forward_and_grads(  # noqa: E731
        lambda *a, **k: ts.rasterize(*a, backend=backend, **k), inputs, up, **kw
    )
    _compare(run("triton"), run("torch"))


@pytest.mark.parametrize("shape", KERNEL_SHAPES, ids=lambda s: "B{}_N{}_C{}_{}x{}_t{}".format(*s))
@pytest.mark.parametrize("mode", ["sum", "normalized"])
def test_triton_matches_torch(shape, mode, device):
    _kernel_vs_torch(shape, mode, use_opacity=False, device=device)


@pytest.mark.parametrize("mode", MODES)
def test_triton_matches_torch_opacity_and_clamps(mode, device):
    shape = (2, 15, 3, 9, 10, 4) if mode == "alpha" else KERNEL_SHAPES[0]  # the interpreter is slow
    _kernel_vs_torch(shape, mode, use_opacity=True, device=device, alpha_max=0.9, alpha_min=0.03)


@pytest.mark.parametrize(
    "n", [300, pytest.param(2100, marks=pytest.mark.slow)], ids=["3 programs per tile", "over 2000"]
)
def test_triton_a_dense_tile(device, n):
    g = torch.Generator().manual_seed(6)
    field = dict(
        means=torch.rand(1, n, 2, generator=g) * 8 + 4,
        cholesky=torch.stack((torch.rand(1, n, generator=g) + 0.5, torch.zeros(1, n), torch.full((1, n), 0.9)), -1),
        colors=torch.rand(1, n, 3, generator=g) / 100,
        opacity=torch.rand(1, n, generator=g),
    )
    _kernel_vs_torch((1, n, 3, 16, 16, 16), "sum", use_opacity=True, device=device, field=field)


# ------------------------------------------------------------------ compile, errors


def test_compiles_fullgraph_and_matches_eager():
    field = random_free_field(1, 12, 3, 10, 12, seed=7)

    def fn(means, chol, colors, opacity):
        return ts.rasterize(means, chol, colors.sigmoid(), opacity, height=10, width=12, tile_size=4).square().sum()

    assert_compiles_like_eager(fn, [field[k] for k in ("means", "cholesky", "colors", "opacity")])


def _good():
    f = random_free_field(1, 4, 3, 8, 8)
    return dict(means=f["means"], cholesky=f["cholesky"], colors=f["colors"], opacity=f["opacity"])


BAD_INPUTS = {
    "means rank": (dict(means=lambda t: t[0]), ValueError, r"means: expected shape \(\*, \*, 2\), got \(4, 2\)"),
    "cholesky N": (dict(cholesky=lambda t: t[:, :3]), ValueError, r"cholesky: expected shape \(1, 4, 3\), got \(1, 3, 3\)"),
    "colors batch": (dict(colors=lambda t: t.expand(2, -1, -1)), ValueError, r"colors: expected shape \(1, 4, \*\)"),
    "opacity shape": (dict(opacity=lambda t: t[..., None]), ValueError, r"opacity: expected shape \(1, 4\)"),
    "dtype mismatch": (dict(colors=lambda t: t.double()), TypeError, r"colors: dtype torch.float64, but means is torch.float32"),
    "means the odd dtype": (dict(means=lambda t: t.half()), TypeError, r"means: dtype torch.float16, but cholesky is torch.float32"),
    "NaN mean": (dict(means=lambda t: t.index_fill(1, torch.tensor([1]), float("nan"))), ValueError, r"means: 2 non-finite"),
    "zero diagonal": (dict(cholesky=lambda t: t.index_fill(2, torch.tensor([0]), 0.0)), ValueError, r"cholesky: 4 zero diagonal"),
    "height": (dict(height=0), ValueError, r"height: expected a positive int, got 0"),
    "width": (dict(width=2.5), ValueError, r"width: expected a positive int, got 2.5"),
    "tile_size": (dict(tile_size=-4), ValueError, r"tile_size: expected a positive int, got -4"),
    "mode": (dict(mode="over"), ValueError, r"mode: expected one of 'sum', 'alpha', 'normalized', got 'over'"),
    "backend": (dict(backend="cuda"), ValueError, r"backend: expected one of 'auto', 'triton', 'torch', got 'cuda'"),
    "alpha_max": (dict(alpha_max=0.0), ValueError, r"alpha_max: expected 0 < alpha_max <= 1, got 0.0"),
    "background mode": (dict(background=torch.zeros(3)), ValueError, r"background: only used by mode='alpha'"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_raises_the_same_clear_errors(case):
    changes, exc, pattern = BAD_INPUTS[case]
    args, kw = with_changes(_good(), dict(height=8, width=8), changes)
    with pytest.raises(exc, match=pattern):
        ts.rasterize(**args, **kw)
