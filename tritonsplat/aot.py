"""Ahead-of-time compilation of every kernel for sm_80 and sm_90, on a machine with no GPU,
and the resource report: registers per thread, spill bytes and shared memory.

`triton.compile` with a `GPUTarget` lowers a kernel to PTX and a cubin without a device;
the PTX is then passed to Triton's bundled `ptxas -v`, which reports what the cubin uses.

    python -m tritonsplat.aot [--json FILE] [--markdown FILE]

It must run without TRITON_INTERPRET=1 (under the interpreter the kernels are not
compiled at all); when that is set it re-runs itself in a clean subprocess.
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


@dataclass
class KernelReport:
    kernel: str
    config: str
    arch: str
    registers: int
    spill_stores: int
    spill_loads: int
    shared_bytes: int
    ptx_lines: int


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


def _signature(fn, constexprs: dict, pointer_types: dict | None = None) -> dict:
    """Triton signature of a kernel from its parameter names: `*_ptr` are float32 pointers
    unless `pointer_types` says otherwise, `alpha_*` are floats, other arguments int32."""
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = (pointer_types or {}).get(name, "*fp32")
        elif name.startswith("alpha_"):
            sig[name] = "fp32"
        else:
            sig[name] = "i32"
    return sig


def kernel_specs():
    """(name, config label, jit function, signature, constexprs, num_warps) for every kernel
    at the configurations the project ships: the paper's patches (P=16, overlap 1, C=3) and
    16 x 16 tiles, in "sum" and in each other mode with opacity."""
    from .kernels import free as kf
    from .kernels import patches as kp
    from .kernels.common import launch_config

    for mode, has_opacity, has_bg in (("sum", False, False), ("alpha", True, True), ("normalized", True, False)):
        flags = dict(MODE=kp.MODE_IDS[mode], HAS_OPACITY=has_opacity, HAS_BG=has_bg)
        suffix = " +opacity" * has_opacity + " +bg" * has_bg
        for name, fn, backward, const, pointer_types, label in (
            ("patches_fwd", kp._patches_fwd_kernel, False, dict(P=16, OVERLAP=1, S=18), None, "P16 o1 C3"),
            ("patches_bwd", kp._patches_bwd_kernel, True, dict(P=16, OVERLAP=1, S=18), None, "P16 o1 C3"),
            ("free_fwd", kf._free_fwd_kernel, False, dict(TILE=16), kf.POINTER_TYPES, "tile 16 C3"),
            ("free_bwd", kf._free_bwd_kernel, True, dict(TILE=16), kf.POINTER_TYPES, "tile 16 C3"),
        ):
            pixels = 18 * 18 if name.startswith("patches") else 16 * 16
            table = (kp if name.startswith("patches") else kf).LAUNCH
            cfg = launch_config(table, pixels, 3, mode, backward)
            num_warps = cfg.pop("num_warps")
            const = dict(const, **flags, **cfg)
            yield name, f"{mode} {label}{suffix}", fn, _signature(fn, const, pointer_types), const, num_warps


def compile_all() -> list[KernelReport]:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    reports = []
    for name, label, fn, sig, const, num_warps in kernel_specs():
        for arch in TARGETS:
            src = ASTSource(fn=fn, signature=sig, constexprs=const)
            compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})
            ptx = compiled.asm["ptx"]
            regs, stores, loads = _ptxas_usage(ptx, arch)
            reports.append(
                KernelReport(name, label, f"sm_{arch}", regs, stores, loads, compiled.metadata.shared, ptx.count("\n"))
            )
    return reports


def markdown(reports: list[KernelReport]) -> str:
    rows = ["| kernel | configuration | arch | registers | spill stores (B) | spill loads (B) | shared (B) |"]
    rows.append("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for r in reports:
        rows.append(
            f"| {r.kernel} | {r.config} | {r.arch} | {r.registers} | {r.spill_stores} | {r.spill_loads} "
            f"| {r.shared_bytes} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the report as JSON here")
    parser.add_argument("--markdown", help="write the report as a Markdown table here")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
        return subprocess.call([sys.executable, "-m", "tritonsplat.aot", *(argv or sys.argv[1:])], env=env)
    reports = compile_all()
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
