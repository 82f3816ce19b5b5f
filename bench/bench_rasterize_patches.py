"""Throughput of rasterize_patches: the torch path, the dense baseline, and (on a GPU) the
Triton kernels, at the paper's configuration and a training configuration, forward and
forward+backward; plus a sweep over image sizes and the kernels' resource report.

    pytest bench --benchmark-only --benchmark-json=bench/results/bench.json
    python -m bench.report bench/results/bench.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import tritonsplat as ts
from tritonsplat.spec import rasterize_patches_spec
from tritonsplat.testing import random_patch_field

from .common import environment, measure, render_case

P, K, OVERLAP, C = 16, 324, 1, 3  # the paper's patches: 18 x 18 Gaussians on 16 x 16 pixels
CONFIGS = {"paper 1x256x256": (1, 256), "train 8x128x128": (8, 128)}
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_case(impl: str, batch: int, size: int, backward: bool, cold_start: bool = False):
    """The benchmarked callable, rebuilt the same way where memory is measured."""
    n = size // P
    field = random_patch_field(batch, n, n, K, C, P, overlap=OVERLAP, grid=True, device=DEVICE)
    leaves = [field[k].detach().clone().requires_grad_(backward) for k in ("means", "cholesky", "colors")]
    kw = dict(patch_size=P, overlap=OVERLAP, mode="sum", window="box")
    if impl == "spec":
        render = lambda: rasterize_patches_spec(*leaves, **kw)  # noqa: E731
    else:
        render = lambda: ts.rasterize_patches(*leaves, backend=impl, **kw)  # noqa: E731
    return render_case(render, leaves, backward, DEVICE, cold_start)


def _run(benchmark, impl: str, batch: int, size: int, backward: bool, rounds: int):
    if impl == "triton" and DEVICE.type != "cuda":
        pytest.skip("the Triton kernels run only on a GPU (see the resource report for their sm_90 build)")
    if impl == "spec" and DEVICE.type == "cuda" and batch * size * size > 2**20:
        pytest.skip("the dense baseline would not fit")
    pairs = batch * (size // P) ** 2 * K * (P + 2 * OVERLAP) ** 2
    case = dict(impl=impl, batch=batch, size=size, backward=backward)
    measure(benchmark, "bench.bench_rasterize_patches:make_case", case, pairs, rounds, DEVICE)


@pytest.mark.parametrize("impl", ["torch", "triton", "spec"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "forward+backward"])
def bench_rasterize_patches(benchmark, impl, config, backward):
    benchmark.group = f"rasterize_patches {config} {'forward+backward' if backward else 'forward'}"
    batch, size = CONFIGS[config]
    _run(benchmark, impl, batch, size, backward, rounds=3 if impl == "spec" else 10)


@pytest.mark.parametrize("impl", ["torch", "triton", "spec"])
@pytest.mark.parametrize("size", [64, 128, 256, 512])
def bench_rasterize_patches_sweep(benchmark, impl, size):
    """Forward+backward of one image against its size: a data series for the plot."""
    if impl == "spec" and size > 256:
        pytest.skip("the dense baseline at 512x512 materialises 430 MB per pair tensor; the sweep stops at 256")
    benchmark.group = "rasterize_patches sweep forward+backward"
    _run(benchmark, impl, 1, size, True, rounds=3 if impl == "spec" else 5)


def bench_resource_report(benchmark, tmp_path):
    """Ahead-of-time compile of every kernel for sm_80 and sm_90 (timed), with the ptxas
    resource report attached to the result."""
    out = tmp_path / "aot.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    cmd = [sys.executable, "-m", "tritonsplat.aot", "--json", str(out)]
    benchmark.pedantic(lambda: subprocess.run(cmd, env=env, check=True, capture_output=True), rounds=1)
    benchmark.extra_info.update(resources=json.loads(out.read_text()), **environment())
