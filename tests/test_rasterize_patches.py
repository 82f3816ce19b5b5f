"""rasterize_patches: the torch path against the literal maths (dense) and float64
gradcheck; the Triton kernels (under TRITON_INTERPRET=1 without a GPU) against the torch
path, forward and every gradient; seams; torch.compile; errors at the boundary."""

from __future__ import annotations

import itertools

import pytest
import torch

import tritonsplat as ts
from tritonsplat.spec import rasterize_patches_spec
from tritonsplat.testing import assert_compiles_like_eager, inputs_of, random_patch_field, with_changes
from tritonsplat.testing import compare as _compare
from tritonsplat.testing import forward_and_grads as _forward_and_grads

MODES = ("sum", "alpha", "normalized")
WINDOWS = ("linear", "cosine", "box")


def _inputs(field, mode, use_opacity, seed=1):
    """The differentiable inputs in the order of the signature (None where absent)."""
    bg = None
    if mode == "alpha":
        bg = torch.rand(field["colors"].shape[-1], generator=torch.Generator().manual_seed(seed))
        bg = bg.to(field["colors"])
    return inputs_of(field, use_opacity, bg)


# ------------------------------------------------------------------ torch path = maths


@pytest.mark.parametrize("mode,window,overlap", list(itertools.product(MODES, WINDOWS, (0, 1, 3))))
def test_torch_path_matches_dense_float64(mode, window, overlap):
    field = random_patch_field(2, 2, 3, 9, 3, 8, overlap=overlap, dtype=torch.float64, seed=3)
    inputs = _inputs(field, mode, use_opacity=True)
    kw = dict(patch_size=8, overlap=overlap, mode=mode, window=window, alpha_max=0.95, alpha_min=0.02)
    upstream = torch.randn(2, 3, 16, 24, dtype=torch.float64)
    out, grads = _forward_and_grads(
        lambda *a, **k: ts.rasterize_patches(*a, backend="torch", **k), inputs, upstream, **kw
    )
    ref, ref_grads = _forward_and_grads(rasterize_patches_spec, inputs, upstream, **kw)
    _compare((out, grads), (ref, ref_grads))


def test_torch_path_alpha_mode_opaque_gaussians():
    """alpha = 1 exactly (opacity 1 at a Gaussian's centre, or clamped): the gradient
    recurrence must not divide by 1 - alpha."""
    field = random_patch_field(1, 1, 2, 5, 3, 4, dtype=torch.float64, seed=5)
    field["means"][..., :2, :] = torch.tensor([1.5, 2.5], dtype=torch.float64)  # on a pixel centre
    field["opacity"][..., :2] = torch.tensor([1.0, 3.0], dtype=torch.float64)  # exact, and clamped
    inputs = _inputs(field, "alpha", use_opacity=True)
    kw = dict(patch_size=4, mode="alpha")
    upstream = torch.randn(1, 3, 4, 8, dtype=torch.float64)
    out, grads = _forward_and_grads(
        lambda *a, **k: ts.rasterize_patches(*a, backend="torch", **k), inputs, upstream, **kw
    )
    ref, ref_grads = _forward_and_grads(rasterize_patches_spec, inputs, upstream, **kw)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)
    _compare((out, grads), (ref, ref_grads))


@pytest.mark.parametrize("mode,window", list(itertools.product(MODES, WINDOWS)))
@pytest.mark.parametrize("clamped", [False, True], ids=["plain", "opacity+clamps"])
def test_gradcheck_torch_path(mode, window, clamped):
    field = random_patch_field(1, 2, 2, 3, 2, 4, overlap=2, dtype=torch.float64, seed=7)
    inputs = [None if t is None else t.requires_grad_() for t in _inputs(field, mode, use_opacity=clamped)]
    kw = dict(patch_size=4, overlap=2, mode=mode, window=window)
    if clamped:
        kw.update(alpha_max=0.9, alpha_min=0.01)

    def fn(*xs):
        it = iter(xs)
        full = [None if t is None else next(it) for t in inputs]
        return ts.rasterize_patches(*full[:4], background=full[4], backend="torch", **kw)

    assert torch.autograd.gradcheck(fn, [t for t in inputs if t is not None], eps=1e-6, atol=1e-6)


# ------------------------------------------------------------------ kernels = torch path

# (B, Hp, Wp, K, C, P, overlap): K not a power of two, C in {1, 3, 8}, overlaps 0-4,
# B in {1, 2}, non-square patch grids.
KERNEL_SHAPES = [
    (1, 2, 3, 7, 3, 8, 0),
    (2, 1, 2, 7, 1, 8, 1),
    (1, 2, 1, 7, 8, 8, 2),
    (1, 2, 2, 7, 3, 8, 4),
    (1, 1, 2, 324, 3, 16, 1),
]
# The interpreter runs tl.associative_scan element by element in Python: "alpha" gets
# small canvases (the same code paths: several pixel chunks and Gaussian blocks, overlap).
ALPHA_SHAPES = [(1, 1, 2, 7, 3, 4, 0), (2, 1, 2, 20, 3, 4, 1)]


def _kernel_vs_torch(shape, mode, use_opacity, device, window="linear", **extra):
    b, hp, wp, k, c, p, o = shape
    field = random_patch_field(b, hp, wp, k, c, p, overlap=o, seed=k + c + o, device=device)
    inputs = _inputs(field, mode, use_opacity)
    kw = dict(patch_size=p, overlap=o, mode=mode, window=window, **extra)
    upstream = torch.randn(b, c, hp * p, wp * p, generator=torch.Generator().manual_seed(11)).to(device)
    run = lambda backend: _forward_and_grads(  # noqa: E731
        lambda *a, **kk: ts.rasterize_patches(*a, backend=backend, **kk), inputs, upstream, **kw
    )
    out, grads = run("triton")
    ref, ref_grads = run("torch")
    _compare((out, grads), (ref, ref_grads))


@pytest.mark.parametrize("shape", KERNEL_SHAPES, ids=lambda s: "B{}_{}x{}_K{}_C{}_P{}_o{}".format(*s))
@pytest.mark.parametrize("mode", ["sum", "normalized"])
def test_triton_matches_torch(shape, mode, device):
    _kernel_vs_torch(shape, mode, use_opacity=False, device=device, window="box" if shape[-1] == 1 else "linear")


@pytest.mark.parametrize("mode", MODES)
def test_triton_matches_torch_opacity_and_clamps(mode, device):
    shape = ALPHA_SHAPES[1] if mode == "alpha" else (1, 2, 2, 12, 3, 8, 2)
    _kernel_vs_torch(shape, mode, use_opacity=True, device=device, window="cosine", alpha_max=0.9, alpha_min=0.02)


@pytest.mark.parametrize("shape", ALPHA_SHAPES, ids=["o0", "o1"])
def test_triton_matches_torch_alpha(shape, device):
    _kernel_vs_torch(shape, "alpha", use_opacity=False, device=device)


@pytest.mark.slow
@pytest.mark.parametrize("shape", KERNEL_SHAPES[:2] + KERNEL_SHAPES[4:], ids=["small", "B2", "K324"])
def test_triton_matches_torch_alpha_large(shape, device):
    _kernel_vs_torch(shape, "alpha", use_opacity=True, device=device)


# ------------------------------------------------------------------ seams


@pytest.mark.parametrize("window,overlap", list(itertools.product(WINDOWS, (1, 2, 4))))
@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_constant_patches_give_a_seamless_image(window, overlap, backend, device):
    """Every patch renders the same constant color: one Gaussian far wider than the patch.
    Feathering must then give that color everywhere, across every patch boundary and at
    the image border, where fewer canvases cover a pixel."""
    b, hp, wp, p = 1, 3, 2, 8
    means = torch.full((b, hp, wp, 1, 2), p / 2)
    chol = torch.tensor([1e4, 0.0, 1e4]).expand(b, hp, wp, 1, 3)
    color = torch.tensor([0.2, 0.5, 0.9])
    colors = color.expand(b, hp, wp, 1, 3)
    means, chol, colors, color = (t.to(device) for t in (means, chol, colors, color))
    img = ts.rasterize_patches(means, chol, colors, patch_size=p, overlap=overlap, window=window, backend=backend)
    torch.testing.assert_close(img, color.view(1, 3, 1, 1).expand_as(img), atol=1e-5, rtol=0)


@pytest.mark.parametrize("window", WINDOWS)
def test_feathering_blends_neighbours_only_in_the_band(window):
    """Two patches of different constant colors: cores beyond the band keep their own
    color, band pixels are convex blends, symmetric about the boundary."""
    p, o = 8, 2
    means = torch.full((1, 1, 2, 1, 2), p / 2)
    chol = torch.tensor([1e4, 0.0, 1e4]).expand(1, 1, 2, 1, 3)
    colors = torch.tensor([[0.0], [1.0]]).reshape(1, 1, 2, 1, 1)
    row = ts.rasterize_patches(means, chol, colors, patch_size=p, overlap=o, window=window, backend="torch")[0, 0, 0]
    torch.testing.assert_close(row[: p - o], torch.zeros(p - o), atol=1e-5, rtol=0)
    torch.testing.assert_close(row[p + o :], torch.ones(p - o), atol=1e-5, rtol=0)
    band = row[p - o : p + o]
    torch.testing.assert_close(band + band.flip(0), torch.ones(2 * o), atol=1e-5, rtol=0)
    assert (band.diff() >= 0).all() and ((band > 0) & (band < 1)).all()


# ------------------------------------------------------------------ torch.compile


@pytest.mark.parametrize("mode", MODES)
def test_compiles_fullgraph_and_matches_eager(mode):
    field = random_patch_field(1, 2, 2, 6, 3, 8, overlap=1, seed=2)
    inputs = _inputs(field, mode, use_opacity=True)

    def fn(means, cholesky, colors, opacity, background=None):
        img = ts.rasterize_patches(
            means, cholesky.abs() + 0.1, colors, opacity, background=background, patch_size=8, overlap=1, mode=mode
        )
        return (img * img).sum()

    assert_compiles_like_eager(fn, [t for t in inputs if t is not None])


@pytest.mark.slow
def test_compiles_with_inductor():
    torch._dynamo.reset()
    field = random_patch_field(1, 2, 2, 6, 3, 8, overlap=1, seed=2)
    fn = lambda m, c, col: ts.rasterize_patches(m, c, col.sigmoid(), patch_size=8, overlap=1).sum()  # noqa: E731
    args = (field["means"], field["cholesky"], field["colors"])
    torch.testing.assert_close(torch.compile(fn, fullgraph=True)(*args), fn(*args))


# ------------------------------------------------------------------ inputs


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_non_contiguous_inputs_just_work(backend, device):
    """Strided inputs give the image and the gradients of their contiguous copies."""
    field = random_patch_field(1, 2, 2, 5, 3, 8, overlap=1, seed=4, device=device)
    means = torch.cat([field["means"], field["means"]], dim=-1)[..., :2]  # last-axis stride 4
    chol_t = field["cholesky"].transpose(0, 3).contiguous().transpose(0, 3)  # permuted strides
    colors = torch.cat([field["colors"], field["colors"]], dim=-1)[..., :3]  # a strided slice
    assert not means.is_contiguous() and not chol_t.is_contiguous() and not colors.is_contiguous()
    kw = dict(patch_size=8, overlap=1, mode="alpha", backend=backend)
    up = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)).to(device)
    strided = _forward_and_grads(ts.rasterize_patches, [means, chol_t, colors, None, None], up, **kw)
    dense = [t.contiguous() for t in (means, chol_t, colors)]
    _compare(strided, _forward_and_grads(ts.rasterize_patches, [*dense, None, None], up, **kw))
    assert all(g.shape == t.shape for g, t in zip(strided[1][:3], (means, chol_t, colors), strict=True))


def _good():
    f = random_patch_field(1, 2, 2, 4, 3, 8, overlap=1)
    return dict(means=f["means"], cholesky=f["cholesky"], colors=f["colors"], opacity=f["opacity"])


BAD_INPUTS = {
    "means rank": (dict(means=lambda t: t[0]), ValueError, r"means: expected shape \(\*, \*, \*, \*, 2\), got \(2, 2, 4, 2\)"),
    "means last axis": (dict(means=lambda t: t[..., :1]), ValueError, r"means: expected shape .* got \(1, 2, 2, 4, 1\)"),
    "cholesky K": (dict(cholesky=lambda t: t[..., :3, :]), ValueError, r"cholesky: expected shape \(1, 2, 2, 4, 3\)"),
    "colors batch": (dict(colors=lambda t: t.expand(2, -1, -1, -1, -1)), ValueError, r"colors: expected shape \(1, 2, 2, 4, \*\)"),
    "opacity shape": (dict(opacity=lambda t: t[..., None]), ValueError, r"opacity: expected shape \(1, 2, 2, 4\)"),
    "not a tensor": (dict(colors=[1.0]), TypeError, r"colors: expected a torch.Tensor, got list"),
    "integer dtype": (dict(means=lambda t: t.long()), TypeError, r"means: expected float32, float64, bfloat16 or float16"),
    "dtype mismatch": (dict(colors=lambda t: t.double()), TypeError, r"colors: dtype torch.float64, but means is torch.float32"),
    "NaN mean": (dict(means=lambda t: t.index_fill(3, torch.tensor([1]), float("nan"))), ValueError, r"means: 8 non-finite value\(s\) \(NaN or inf\)"),
    "inf color": (dict(colors=lambda t: t.index_fill(4, torch.tensor([0]), float("inf"))), ValueError, r"colors: 16 non-finite"),
    "zero diagonal": (dict(cholesky=lambda t: t.index_fill(4, torch.tensor([2]), 0.0)), ValueError, r"cholesky: 16 zero diagonal"),
    "overlap > P/2": (dict(overlap=5), ValueError, r"overlap: expected an int in \[0, patch_size // 2 = 4\], got 5"),
    "negative overlap": (dict(overlap=-1), ValueError, r"overlap: expected an int in \[0, patch_size // 2 = 4\], got -1"),
    "patch_size": (dict(patch_size=0), ValueError, r"patch_size: expected a positive int, got 0"),
    "mode": (dict(mode="over"), ValueError, r"mode: expected one of 'sum', 'alpha', 'normalized', got 'over'"),
    "window": (dict(window="gauss"), ValueError, r"window: expected one of 'linear', 'cosine', 'box', got 'gauss'"),
    "backend": (dict(backend="cuda"), ValueError, r"backend: expected one of 'auto', 'triton', 'torch', got 'cuda'"),
    "alpha_max": (dict(alpha_max=1.5), ValueError, r"alpha_max: expected 0 < alpha_max <= 1, got 1.5"),
    "alpha_min": (dict(alpha_min=-0.1), ValueError, r"alpha_min: expected 0 <= alpha_min < alpha_max"),
    "background mode": (dict(background=torch.zeros(3)), ValueError, r"background: only used by mode='alpha'"),
    "background shape": (
        dict(background=torch.zeros(4), mode="alpha"), ValueError, r"background: expected shape \(3\), got \(4\)"
    ),
    "triton float64": (
        dict(means=lambda t: t.double(), cholesky=lambda t: t.double(), colors=lambda t: t.double(),
             opacity=lambda t: t.double(), backend="triton"),
        TypeError, r"means: backend='triton' takes float32, got torch.float64",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_raises_a_clear_error(case):
    changes, exc, pattern = BAD_INPUTS[case]
    args, kw = with_changes(_good(), dict(patch_size=8, overlap=1), changes)
    with pytest.raises(exc, match=pattern):
        ts.rasterize_patches(**args, **kw)


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match=r"backend='triton' with tensors on cpu: .* TRITON_INTERPRET=1"):
        ts.rasterize_patches(**_good(), patch_size=8, backend="triton")
