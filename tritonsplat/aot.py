"""Ahead-of-time compilation of every kernel for sm_80 and sm_90 on a machine with no GPU,
and the static cost report.

`triton.compile` with a `GPUTarget` lowers a kernel to PTX without a device; Triton's
bundled `ptxas -v` then reports what the cubin uses. From those two the report gives,
per kernel, mode, channel count C and architecture:

- registers per thread, spill bytes, static shared memory;
- resident CTAs and warps per SM, from the registers, the shared memory and the SM's
  limits (65,536 registers allocated per warp in units of 256, at most 32 CTAs and 64
  warps; 164 KiB of shared memory on sm_80, 228 KiB on sm_90);
- from the PTX of the hot loop (the innermost loop that evaluates exp2): instructions,
  shared-memory loads, barriers and shuffles per pixel-Gaussian pair (the loop's count
  divided by the pairs one thread handles per iteration), and any atomic or
  reduction-to-global instruction anywhere in the kernel.

PTX instructions are counted as written, the `mov` that initialises each load's result
register included (ptxas drops it), so the count errs on the high side of the SASS.

    python -m tritonsplat.aot [--channels 1 3 8 16 32 64] [--json FILE] [--markdown FILE]

It must run without TRITON_INTERPRET=1 (under the interpreter nothing is compiled); when
that is set it re-runs itself in a clean subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass

TARGETS = (80, 90)
CHANNELS = (1, 3, 8, 16, 32, 64)
MODES = ("sum", "alpha", "normalized")
SHARED_PER_SM = {80: 164 * 1024, 90: 228 * 1024}
INT64_POINTERS = {"unit_rows_ptr", "src_ptr", "unit_ptr", "work_ptr"}


@dataclass
class KernelReport:
    kernel: str
    mode: str
    channels: int
    arch: str
    num_warps: int
    registers: int
    spill_stores: int
    spill_loads: int
    shared_bytes: int
    ctas_per_sm: int
    warps_per_sm: int
    pairs_per_iteration: int  # pixel-Gaussian pairs one thread handles per hot-loop iteration
    instructions_per_pair: float
    shared_loads_per_pair: float
    barriers_per_pair: float
    shuffles_per_pair: float
    atomics: int


# ----------------------------------------------------------------------------- PTX reading

_LABEL = re.compile(r"^(\$L__BB\d+_\d+):")
_BRANCH = re.compile(r"bra(?:\.uni)?\s+(\$L__BB\d+_\d+);")
_ATOMIC = re.compile(r"^\s*(?:@!?%p\d+\s+)?(atom|red)\.")


def _instructions(lines: list[str]) -> list[str]:
    """PTX instruction lines: not labels, directives, comments or braces."""
    out = []
    for line in lines:
        s = line.strip()
        if not s or s.startswith(("//", ".", "$")) or s in ("{", "}"):
            continue
        out.append(s)
    return out


def hot_loops(ptx: str) -> list[list[str]]:
    """The instructions of every innermost loop that evaluates exp2 (a back edge whose
    body holds no other back edge)."""
    lines = ptx.splitlines()
    labels = {m.group(1): i for i, line in enumerate(lines) if (m := _LABEL.match(line.strip()))}
    edges = []
    for i, line in enumerate(lines):
        m = _BRANCH.search(line)
        if m and labels.get(m.group(1), len(lines)) < i:
            edges.append((labels[m.group(1)], i))
    inner = [e for e in edges if not any(e[0] <= o[0] and o[1] <= e[1] and o != e for o in edges)]
    loops = [_instructions(lines[a + 1 : b + 1]) for a, b in inner]
    return [body for body in loops if any(s.startswith("ex2") for s in body)]


def loop_figures(ptx: str, pairs: int) -> dict:
    """Per-pair figures of the hot loops (summed when a kernel has several passes)."""
    loops = hot_loops(ptx)
    if not loops:
        raise RuntimeError("no loop evaluating exp2 found in the PTX")

    def per_pair(pred) -> float:
        return sum(sum(1 for s in body if pred(s)) for body in loops) / pairs

    return dict(
        instructions_per_pair=per_pair(lambda s: True),
        shared_loads_per_pair=per_pair(lambda s: "ld.shared" in s),
        barriers_per_pair=per_pair(lambda s: "bar.sync" in s or "barrier.sync" in s),
        shuffles_per_pair=per_pair(lambda s: "shfl." in s),
        atomics=sum(1 for line in ptx.splitlines() if _ATOMIC.match(line)),
    )


def occupancy(registers: int, shared: int, num_warps: int, arch: int) -> tuple[int, int]:
    """(resident CTAs, resident warps) per SM."""
    per_warp = -(-registers * 32 // 256) * 256
    by_regs = 65536 // (per_warp * num_warps)
    by_shared = SHARED_PER_SM[arch] // shared if shared else 32
    ctas = min(32, by_regs, by_shared, 64 // num_warps)
    return ctas, ctas * num_warps


def _ptxas_usage(ptx: str, arch: int) -> tuple[int, int, int]:
    from triton.backends.nvidia.compiler import get_ptxas

    gpu = f"sm_{arch}a" if arch == 90 else f"sm_{arch}"
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
        path = f.name
    try:
        res = subprocess.run(
            [get_ptxas(arch).path, "-v", f"--gpu-name={gpu}", path, "-o", os.devnull],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        os.unlink(path)
    text = res.stdout + res.stderr
    regs = int(re.search(r"Used (\d+) registers", text).group(1))
    stores = int(re.search(r"(\d+) bytes spill stores", text).group(1))
    loads = int(re.search(r"(\d+) bytes spill loads", text).group(1))
    return regs, stores, loads


# ----------------------------------------------------------------------------- what to build


def _signature(fn, constexprs: dict) -> tuple[dict, dict]:
    """Triton signature of a kernel from its parameter names (`*_ptr` float32 pointers
    unless listed as int64, `alpha_*` floats, other arguments int32) and the 16-divisibility
    the launchers guarantee for every pointer and for the row count R."""
    sig, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in constexprs:
            sig[name] = "constexpr"
            continue
        if name.endswith("_ptr"):
            sig[name] = "*i64" if name in INT64_POINTERS else "*fp32"
        elif name.startswith("alpha_"):
            sig[name] = "fp32"
        else:
            sig[name] = "i32"
        if name.endswith("_ptr") or name == "R":
            attrs[(i,)] = [["tt.divisibility", 16]]
    return sig, attrs


def kernel_specs(channels=CHANNELS, modes=MODES):
    """(kernel, mode, C, jit function, constexprs, num_warps, pairs per iteration) at the
    configurations the launchers use: the paper's patches (P = 16, overlap 1: 18 x 18
    canvases) and 16 x 16 tiles; "sum" plain, the other modes with opacity (and a
    background for "alpha")."""
    from .backends.triton import kernels, launch

    for mode in modes:
        mode_id = kernels.MODE_IDS[mode]
        flags = dict(HAS_OPACITY=mode != "sum", CLAMP=mode != "sum", CUT_MIN=False)
        for c in channels:
            cb, defer = launch.forward_channels(c)
            bcb = launch.backward_channels(c)
            for free in (False, True):
                geometry = dict(SIDE=16, OFFSET=-7.5) if free else dict(SIDE=18, OFFSET=-7.5)
                geometry["CUT_3SIGMA"] = free
                prefix = "rasterize" if free else "rasterize_patches"
                fwd = dict(geometry, FREE=free, RAW=False, MODE=mode_id, HAS_BG=mode == "alpha", CB=cb,
                           PPT=launch.FWD_PPT, NT=32 * launch.FWD_WARPS, DEFER=defer, **flags)  # fmt: skip
                yield (f"{prefix}_fwd", mode, c, kernels._render_kernel, fwd, launch.FWD_WARPS,
                       4 * launch.FWD_PPT)  # fmt: skip
                bwd = dict(geometry, CENTRE=8.0, TILE=16, FREE=free, MODE=mode_id, CB=bcb,
                           NT=32 * launch.BWD_WARPS, **flags)  # fmt: skip
                yield f"{prefix}_bwd", mode, c, kernels._grad_kernel, bwd, launch.BWD_WARPS, 4
                if mode == "alpha":
                    state = dict(geometry, FREE=free, HAS_BG=True, CB=bcb, BLOCK=launch.STATE_BLOCK, **flags)
                    yield (f"{prefix}_state", mode, c, kernels._state_kernel, state, launch.STATE_WARPS,
                           4 * launch.STATE_BLOCK // (32 * launch.STATE_WARPS))  # fmt: skip


def compile_one(fn, const: dict, num_warps: int, arch: int):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    sig, attrs = _signature(fn, const)
    src = ASTSource(fn=fn, signature=sig, constexprs=const, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})


def compile_all(channels=CHANNELS, modes=MODES, targets=TARGETS) -> list[KernelReport]:
    reports = []
    for name, mode, c, fn, const, num_warps, pairs in kernel_specs(channels, modes):
        for arch in targets:
            compiled = compile_one(fn, const, num_warps, arch)
            ptx = compiled.asm["ptx"]
            regs, stores, loads = _ptxas_usage(ptx, arch)
            shared = compiled.metadata.shared
            ctas, warps = occupancy(regs, shared, num_warps, arch)
            reports.append(
                KernelReport(
                    name, mode, c, f"sm_{arch}", num_warps, regs, stores, loads, shared, ctas, warps, pairs,
                    **loop_figures(ptx, pairs),
                )
            )  # fmt: skip
    return reports


def markdown(reports: list[KernelReport]) -> str:
    rows = [
        "| kernel | mode | C | arch | warps | registers | spills (B) | shared (B) | CTAs / SM | warps / SM "
        "| PTX instr. / pair | shared loads / pair | barriers / pair | atomics |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in reports:
        rows.append(
            f"| {r.kernel} | {r.mode} | {r.channels} | {r.arch} | {r.num_warps} | {r.registers} "
            f"| {r.spill_stores + r.spill_loads} | {r.shared_bytes} | {r.ctas_per_sm} | {r.warps_per_sm} "
            f"| {r.instructions_per_pair:.1f} | {r.shared_loads_per_pair:.2f} | {r.barriers_per_pair:.2f} "
            f"| {r.atomics} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=list(CHANNELS))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--json", help="write the report as JSON here")
    parser.add_argument("--markdown", help="write the report as a Markdown table here")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        return subprocess.call([sys.executable, "-m", "tritonsplat.aot", *(argv or sys.argv[1:])], env=env)
    reports = compile_all(args.channels, args.modes)
    table = markdown(reports)
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in reports], f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
