"""GPU hazards of the public functions, checked where they can be: 64-bit offsets, the
launch device, one host sync per call (none with validate=False), deterministic
backward, dtypes, and a torch path that ignores the matmul-precision setting."""

from __future__ import annotations

import contextlib
import sys

import pytest
import torch
import triton
import triton.language as tl

import tritonsplat as ts
from tritonsplat.api import resolve_backend
from tritonsplat.backends.triton import kernels, launch
from tritonsplat.spec import rasterize_patches_spec
from tritonsplat.testing import random_free_field, random_patch_field


@triton.jit
def _offsets_probe(out_ptr, b, pu, pv, row, col, s_ob, s_or, s_os, s_ou, s_ov):
    tl.store(out_ptr, kernels._out_offsets(b, pu, pv, row, col, s_ob, s_or, s_os, s_ou, s_ov))


def test_output_offsets_are_64_bit_at_the_largest_images():
    """B = 4 images of C = 64 channels at 4096 x 4096: the last image starts at 3 x 2^30;
    every factor fits an int32 argument, their sums do not."""
    c, h, w = 64, 4096, 4096
    args = dict(b=3, pu=255, pv=255, row=15, col=15, s_ob=c * h * w, s_or=w, s_os=1, s_ou=16 * w, s_ov=16)
    expected = 3 * c * h * w + 255 * 16 * w + 255 * 16 + 15 * w + 15
    assert expected > 2**31
    out = torch.zeros(1, dtype=torch.int64)
    _offsets_probe[(1,)](out, *args.values())
    assert int(out) == expected


def test_launches_enter_the_inputs_device(monkeypatch):
    entered = []

    @contextlib.contextmanager
    def fake_device(dev):
        entered.append(dev)
        yield

    class FakeCuda:
        is_cuda = True
        device = torch.device("cuda", 1)

    monkeypatch.setattr(torch.cuda, "device", fake_device)
    with launch.on_device(FakeCuda()):
        pass
    with launch.on_device(torch.zeros(1)):  # CPU tensors: no device context
        pass
    assert entered == [torch.device("cuda", 1)]


def test_auto_backend_sends_float64_on_cuda_to_the_torch_path():
    cuda = torch.device("cuda", 0)
    assert resolve_backend("auto", cuda, torch.float32) == "triton"
    assert resolve_backend("auto", cuda, torch.float64) == "torch"
    assert resolve_backend("auto", torch.device("cpu"), torch.float32) == "torch"


@pytest.fixture
def sync_counter(monkeypatch):
    """Counts the tensor-to-host reads a call makes (each one a device sync on CUDA)."""
    calls = []
    for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **k):
            calls.append(_name)
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls


@pytest.mark.parametrize("validate,expected", [(True, 1), (False, 0)])
def test_rasterize_patches_syncs_once_or_never(sync_counter, validate, expected):
    f = random_patch_field(1, 2, 2, 9, 3, 8, overlap=1)
    ts.rasterize_patches(f["means"], f["cholesky"], f["colors"], f["opacity"], patch_size=8, overlap=1,
                         backend="torch", validate=validate)  # fmt: skip
    assert len(sync_counter) == expected, sync_counter


@pytest.fixture
def package_syncs(monkeypatch):
    """Host reads made by tritonsplat's own code (the caller's module is in the package):
    tensor-to-host conversions, and the torch functions whose output size depends on the
    data (nonzero, bincount, repeat_interleave without output_size), each a device sync on
    CUDA. The Triton interpreter's own reads are not the package's and are not counted."""
    calls = []

    def counting(name, original, syncs=lambda *a, **k: True):
        def counted(*a, **k):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.startswith("tritonsplat") and syncs(*a, **k):
                calls.append(f"{caller}:{name}")
            return original(*a, **k)

        return counted

    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "nonzero"):
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    for name in ("nonzero", "bincount"):
        monkeypatch.setattr(torch, name, counting(name, getattr(torch, name)))
    unsized = lambda *a, **k: "output_size" not in k  # noqa: E731
    monkeypatch.setattr(torch, "repeat_interleave", counting("repeat_interleave", torch.repeat_interleave, unsized))
    return calls


@pytest.mark.parametrize("backend,forward_syncs,backward_syncs", [("triton", 2, 0), ("torch", 2, 1)])
def test_free_rasterizer_bins_once_and_counts_its_syncs(package_syncs, backend, forward_syncs, backward_syncs, device):
    """The forward bins (one sync: the entry count) and lays out its rows (one: the row
    and work counts); the backward reads the saved binning: no sync on the Triton path,
    the chunk plan's one on the torch path. Every sync goes through `binning.host_sync`."""
    from tritonsplat import binning

    f = random_free_field(2, 30, 3, 20, 24, seed=3, device=device)
    leaves = [f[k].clone().requires_grad_() for k in ("means", "cholesky", "colors", "opacity")]
    counted = binning.host_syncs
    img = ts.rasterize(*leaves, height=20, width=24, mode="alpha", tile_size=8, backend=backend, validate=False)
    assert len(package_syncs) == forward_syncs, package_syncs
    torch.autograd.grad(img.square().sum(), leaves)
    assert len(package_syncs) == forward_syncs + backward_syncs, package_syncs
    assert binning.host_syncs - counted == forward_syncs + backward_syncs
    assert all(call.endswith(":tolist") for call in package_syncs), package_syncs


def test_settings_travel_by_name_so_a_swapped_pair_cannot_pass(monkeypatch):
    """patch_size and overlap are both ints: by position, swapping them would pass
    silently. The settings type, the op and the backend take them by name only."""
    from tritonsplat.backends.torch import rasterize_patches as torch_patches
    from tritonsplat.ops.rasterize_patches import rasterize_patches_op
    from tritonsplat.settings import RasterizePatchesSettings, RasterizeSettings

    with pytest.raises(TypeError):
        RasterizePatchesSettings(8, 1, "sum", "linear", 1.0, 0.0)
    with pytest.raises(TypeError):
        RasterizeSettings(16, 16, "sum", 8, 1.0, 0.0)
    f = random_patch_field(1, 2, 2, 4, 3, 8, overlap=1)
    tensors = (f["means"], f["cholesky"], f["colors"], None, None)
    with pytest.raises(RuntimeError, match="positional"):
        rasterize_patches_op(*tensors, 8, 1, "sum", "linear", 1.0, 0.0, "torch")
    seen = []
    real_forward = torch_patches.forward

    def recording(*args):
        seen.append(args[-1])
        return real_forward(*args)

    monkeypatch.setattr(torch_patches, "forward", recording)
    by_name = dict(mode="sum", window="linear", alpha_max=1.0, alpha_min=0.0, backend="torch")
    image = rasterize_patches_op(*tensors, overlap=1, patch_size=8, **by_name)  # keyword order does not matter
    ts.rasterize_patches(f["means"], f["cholesky"], f["colors"], overlap=1, patch_size=8, backend="torch")
    assert [(cfg.patch_size, cfg.overlap) for cfg in seen] == [(8, 1), (8, 1)]
    assert image.shape == (1, 3, 16, 16)


def test_validate_still_names_the_bad_argument():
    f = random_patch_field(1, 1, 1, 4, 3, 8)
    f["colors"][0, 0, 0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"colors: 1 non-finite value"):
        ts.rasterize_patches(f["means"], f["cholesky"], f["colors"], patch_size=8)
    ts.rasterize_patches(f["means"], f["cholesky"], f["colors"], patch_size=8, validate=False)  # not checked


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("mode", ["sum", "alpha"])
def test_free_backward_is_deterministic(backend, mode, device):
    f = random_free_field(1, 40, 3, 16, 16, seed=2, device=device)
    runs = []
    for _ in range(2):
        leaves = [f[k].clone().requires_grad_() for k in ("means", "cholesky", "colors", "opacity")]
        img = ts.rasterize(*leaves, height=16, width=16, mode=mode, tile_size=8, backend=backend)
        runs.append(torch.autograd.grad((img * img).sum(), leaves))
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("precision", ["high", "medium"])
def test_torch_path_ignores_the_matmul_precision_setting(precision):
    f = random_patch_field(1, 2, 2, 16, 3, 8, overlap=1, seed=4)
    kw = dict(patch_size=8, overlap=1, mode="alpha", window="linear")
    exact = rasterize_patches_spec(*(f[k].double() for k in ("means", "cholesky", "colors", "opacity")), **kw)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        img = ts.rasterize_patches(f["means"], f["cholesky"], f["colors"], f["opacity"], backend="torch", **kw)
        assert torch.get_float32_matmul_precision() == precision  # restored after the call
    finally:
        torch.set_float32_matmul_precision(before)
    torch.testing.assert_close(img.double(), exact, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_inputs_are_computed_in_float32(dtype):
    f = random_patch_field(1, 2, 2, 9, 3, 8, overlap=1, seed=6)
    low = {k: t.to(dtype) for k, t in f.items()}
    ref = ts.rasterize_patches(*(low[k].float() for k in ("means", "cholesky", "colors")), patch_size=8, overlap=1)
    leaves = [low[k].clone().requires_grad_() for k in ("means", "cholesky", "colors")]
    img = ts.rasterize_patches(*leaves, patch_size=8, overlap=1)
    assert img.dtype == dtype
    torch.testing.assert_close(img, ref.to(dtype))
    grads = torch.autograd.grad(img.float().sum(), leaves)
    assert all(g.dtype == dtype and torch.isfinite(g.float()).all() for g in grads)


def test_a_small_image_gives_every_sm_work():
    """1 x 128 x 128 of 16 x 16 patches with K = 324: 64 patches, each split over
    programs (pixel chunks forward, row chunks backward), so that more programs than an
    H100's 132 SMs run, with no atomics (each program owns its pixels or rows)."""
    from math import prod

    from tritonsplat.backends.triton.rasterize_patches import patch_units

    units = patch_units(1, 8, 8, 324, 16, 1)
    assert prod(launch.forward_grid(units, 3)) >= 132
    assert prod(launch.backward_grid(units, 3)) >= 132
