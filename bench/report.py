"""Turn a saved benchmark JSON into a Markdown table and a PNG plot.

    python -m bench.report bench/results/patches.json [--out bench/results]

Writes <name>.md (tables: timings with pairs/s, peak memory and speed-up over the dense
baseline; the kernels' resource report; the roofline estimate) and <name>.png.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tritonsplat.aot import KernelReport  # noqa: E402
from tritonsplat.aot import markdown as resources_markdown

from .roofline import markdown as roofline_markdown  # noqa: E402


def _rows(data: dict) -> list[dict]:
    rows = []
    for b in data["benchmarks"]:
        info = b.get("extra_info", {})
        if "impl" not in info:
            continue
        rows.append(
            dict(group=b["group"], impl=info["impl"], size=info["size"], batch=info.get("batch", 1),
                 gaussians=info.get("gaussians"), backward=info.get("backward"),
                 mean=b["stats"]["mean"], std=b["stats"]["stddev"], rounds=b["stats"]["rounds"],
                 pairs_per_s=info.get("pairs_per_s"), peak=info.get("peak_bytes"))
        )  # fmt: skip
    return rows


def _environment(data: dict) -> str:
    envs = [b["extra_info"] for b in data["benchmarks"] if "torch" in b.get("extra_info", {})]
    e = envs[0] if envs else {}
    return (
        f"Measured {e.get('date', data.get('datetime', '?'))} on {e.get('cpu', '?')} "
        f"({e.get('cores', '?')} cores, {e.get('torch_threads', '?')} torch threads), GPU: {e.get('gpu') or 'none'}; "
        f"torch {e.get('torch', '?')}, triton {e.get('triton', '?')}, Python {e.get('python', '?')}."
    )


def timing_table(rows: list[dict]) -> str:
    lines = [
        "| benchmark | impl | mean (ms) | std (ms) | rounds | pairs/s | peak memory above inputs (MB) "
        "| speed-up over dense |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_group = defaultdict(list)
    for r in rows:
        by_group[(r["group"], r["size"], r["batch"])].append(r)
    for (group, size, batch), rs in by_group.items():
        dense = next((r["mean"] for r in rs if r["impl"] == "spec"), None)
        label = group + (f" {batch}x{size}x{size}" if "sweep" in group else "")
        for r in sorted(rs, key=lambda r: r["mean"]):
            speed = f"{dense / r['mean']:.1f}x" if dense else "-"
            peak = f"{r['peak'] / 1e6:.0f}" if r["peak"] is not None else "-"
            lines.append(
                f"| {label} | {r['impl']} | {r['mean'] * 1e3:.1f} | {r['std'] * 1e3:.1f} | {r['rounds']} "
                f"| {r['pairs_per_s'] / 1e6:.0f}M | {peak} | {speed} |"
            )
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, title: str) -> None:
    free = [r for r in rows if not r["group"].startswith("rasterize_patches")]
    rows = [r for r in rows if r["group"].startswith("rasterize_patches")]
    fixed = [r for r in rows if "sweep" not in r["group"]]
    sweep = [r for r in rows if "sweep" in r["group"]]
    fig, axes = plt.subplots(1, 3, figsize=(19, 4.8))
    groups = sorted({r["group"].replace("rasterize_patches ", "") for r in fixed})
    impls = sorted({r["impl"] for r in fixed})
    width = 0.8 / max(1, len(impls))
    for i, impl in enumerate(impls):
        vals = []
        for g in groups:
            match = [r["mean"] * 1e3 for r in fixed if r["impl"] == impl and r["group"].endswith(g)]
            vals.append(match[0] if match else 0)
        axes[0].bar([x + i * width for x in range(len(groups))], vals, width, label=impl)
    axes[0].set_xticks([x + width * (len(impls) - 1) / 2 for x in range(len(groups))])
    axes[0].set_xticklabels([g.replace(" forward", "\nforward") for g in groups], fontsize=8)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("time per call (ms, log)")
    axes[0].set_title("rasterize_patches, P=16, K=324, overlap 1, C=3")
    axes[0].legend()
    for impl in sorted({r["impl"] for r in sweep}):
        pts = sorted((r["size"], r["mean"] * 1e3) for r in sweep if r["impl"] == impl)
        axes[1].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=impl)
    axes[1].set_xscale("log", base=2)
    axes[1].set_yscale("log")
    axes[1].set_xlabel("image side (pixels)")
    axes[1].set_ylabel("forward+backward (ms, log)")
    axes[1].set_title("sweep over image size (batch 1)")
    axes[1].legend()
    for impl, size in sorted({(r["impl"], r["size"]) for r in free if r["backward"]}):
        pts = sorted(
            (r["gaussians"], r["mean"] * 1e3) for r in free if r["backward"] and (r["impl"], r["size"]) == (impl, size)
        )
        axes[2].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{impl} {size}x{size}")
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("Gaussians")
    axes[2].set_ylabel("forward+backward (ms, log)")
    axes[2].set_title("rasterize (free, tile-binned), sigma 1-4 px")
    axes[2].legend()
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="folder for the .md and .png (default: beside the JSON)")
    args = parser.parse_args(argv)
    data = json.loads(args.json.read_text())
    out = args.out or args.json.parent
    out.mkdir(parents=True, exist_ok=True)
    rows = _rows(data)
    env = _environment(data)
    parts = [f"# Benchmark report: {args.json.name}", "", env, "", "## Timings", "", timing_table(rows)]
    res = [b["extra_info"]["resources"] for b in data["benchmarks"] if "resources" in b.get("extra_info", {})]
    if res:
        reports = [KernelReport(**r) for r in res[0]]
        parts += ["", "## Static cost of the kernels (ahead-of-time build, PTX and ptxas -v)", "",
                  resources_markdown(reports)]  # fmt: skip
        configs = {"paper 1x256x256": (256, 324, 18 * 18, 3), "train 8x128x128": (512, 324, 18 * 18, 3)}
        parts += ["", "## Estimate from the static cost", "", roofline_markdown(configs, reports)]
    md = out / (args.json.stem + ".md")
    md.write_text("\n".join(parts) + "\n")
    png = out / (args.json.stem + ".png")
    plot(rows, png, env)
    print("\n".join(parts))
    print(f"\nwrote {md} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
