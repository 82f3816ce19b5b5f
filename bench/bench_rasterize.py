"""Throughput of rasterize (free, tile-binned Gaussians): the binned torch path, the dense
baseline (every pixel-Gaussian weight materialised) where it fits, and (on a GPU) the
Triton kernels; forward and forward+backward at 256x256 and 512x512 with 1,000, 10,000
and 50,000 Gaussians, and the fitting workload (256x256, 2,000 Gaussians)."""

from __future__ import annotations

import pytest
import torch

import tritonsplat as ts
from tritonsplat.binning import bin_gaussians
from tritonsplat.spec import rasterize_spec
from tritonsplat.testing import random_free_field

from .common import measure, render_case

C = 3
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CASES = [(256, 1000), (256, 2000), (256, 10000), (256, 50000), (512, 1000), (512, 10000), (512, 50000)]
SPEC_LIMIT = 2**27  # pixel-Gaussian pairs: 512 MiB per materialised float32 tensor


def _field(size: int, n: int) -> dict:
    # "typical fitted size": sigma 1 to 4 pixels, random positions and orientations
    return random_free_field(1, n, C, size, size, sigma=(1.0, 4.0), margin=0.0, device=DEVICE)


def make_case(impl: str, size: int, gaussians: int, backward: bool, cold_start: bool = False):
    field = _field(size, gaussians)
    leaves = [field[k].detach().clone().requires_grad_(backward) for k in ("means", "cholesky", "colors")]
    if impl == "spec":
        render = lambda: rasterize_spec(*leaves, height=size, width=size)  # noqa: E731
    else:
        render = lambda: ts.rasterize(*leaves, height=size, width=size, backend=impl)  # noqa: E731
    return render_case(render, leaves, backward, DEVICE, cold_start)


def _evaluated_pairs(impl: str, size: int, n: int) -> int:
    """Pixel-Gaussian pairs each implementation evaluates: all of them for dense, the
    binning entries times the tile's pixels for the binned paths."""
    if impl == "spec":
        return size * size * n
    f = _field(size, n)
    bins = bin_gaussians(f["means"], f["cholesky"], None, size, size, 16)
    return bins.pair_gaussian.numel() * 16 * 16


@pytest.mark.parametrize("impl", ["torch", "triton", "spec"])
@pytest.mark.parametrize("size,gaussians", CASES, ids=[f"{s}px-{n}" for s, n in CASES])
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "forward+backward"])
def bench_rasterize(benchmark, impl, size, gaussians, backward):
    if impl == "triton" and DEVICE.type != "cuda":
        pytest.skip("the Triton kernels run only on a GPU (see the resource report for their sm_90 build)")
    if impl == "spec" and size * size * gaussians > SPEC_LIMIT:
        gb = size * size * gaussians * 4 / 2**30
        pytest.skip(f"the dense baseline would materialise {gb:.0f} GiB per pair tensor")
    benchmark.group = f"rasterize {size}x{size} N={gaussians} {'forward+backward' if backward else 'forward'}"
    case = dict(impl=impl, size=size, gaussians=gaussians, backward=backward)
    rounds = 2 if impl == "spec" else 5
    measure(benchmark, "bench.bench_rasterize:make_case", case, _evaluated_pairs(impl, size, gaussians), rounds, DEVICE)
