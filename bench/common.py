"""What every benchmark records beside its time: peak memory, the machine and versions."""

from __future__ import annotations

import datetime
import os
import platform
import re

import torch


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+) kB", f.read()).group(1)) * 1024


def peak_memory_above(fn, device: torch.device) -> int:
    """Bytes of peak memory that one call of `fn` needs above what is live before it.

    CUDA: the caching allocator's peak. CPU: the process's resident-set high-water mark
    (VmHWM), reset to the current RSS through /proc/self/clear_refs ("5", Linux >= 4.0)
    just before the call. That is exact only where freed memory goes back to the system,
    which glibc does for blocks above its mmap threshold; `peak_memory_in_subprocess`
    fixes that threshold low, so use it on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    fn()  # warm-up: libraries' one-time buffers are not the call's
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_bytes("VmRSS")
    fn()
    return _status_bytes("VmHWM") - before


def peak_memory_in_subprocess(factory: str, **kwargs) -> int:
    """`peak_memory_above` of `module:function(**kwargs)()` in a fresh interpreter whose
    glibc hands every block of 64 KiB or more back to the system when it is freed
    (MALLOC_MMAP_THRESHOLD_ fixes the otherwise adaptive threshold), so the RSS high-water
    mark counts the bytes the call holds at its worst moment, for every implementation
    alike. A separate process, since that setting slows the timed runs."""
    import json
    import subprocess
    import sys

    module, func = factory.split(":")
    code = (
        "import importlib, json, sys, torch; from bench.common import peak_memory_above; "
        f"fn = getattr(importlib.import_module({module!r}), {func!r})(**json.loads(sys.argv[1])); "
        "print(peak_memory_above(fn, torch.device('cpu')))"
    )
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"memory measurement of {factory}({kwargs}) failed:\n{out.stderr}")
    return int(out.stdout.strip().splitlines()[-1])


def environment() -> dict:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
    except (OSError, AttributeError):
        pass
    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        cpu=cpu,
        cores=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        gpu=gpu,
        torch=torch.__version__,
        triton=triton_version,
        python=platform.python_version(),
    )


def measure(benchmark, factory: str, case: dict, pairs: int, rounds: int, device: torch.device) -> None:
    """Time `module:function(**case)()` with pytest-benchmark and record, beside the time,
    the pixel-Gaussian pairs it evaluates (and their rate), its peak memory, the machine
    and the versions."""
    import importlib

    module, func = factory.split(":")
    fn = getattr(importlib.import_module(module), func)(**case)
    fn()  # warm-up (and Triton's compile)
    if device.type == "cuda":
        peak = peak_memory_above(fn, device)
    else:
        peak = peak_memory_in_subprocess(factory, **case, cold_start=True)
    benchmark.extra_info.update(case, pairs=pairs, peak_bytes=peak, **environment())
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=1)
    benchmark.extra_info["pairs_per_s"] = pairs / benchmark.stats.stats.mean


def render_case(render, leaves, backward: bool, device: torch.device, cold_start: bool):
    """The benchmarked callable: `render()` (under no_grad), or it and the gradients of
    every leaf; synchronised on CUDA; with `cold_start`, freeing the workspace first."""

    def call():
        if not backward:
            with torch.no_grad():
                return render()
        out = render()
        torch.autograd.grad(out, leaves, torch.ones_like(out))

    fn = synced(call, device)
    return cold(fn) if cold_start else fn


def cold(fn):
    """`fn` that first frees the torch path's reusable workspace, so that a memory
    measurement counts it."""
    from tritonsplat.backends.torch.common import release_workspace

    def call():
        release_workspace()
        fn()

    return call


def synced(fn, device: torch.device):
    if device.type != "cuda":
        return fn

    def call():
        fn()
        torch.cuda.synchronize()

    return call
