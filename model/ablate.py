"""Ablations at one budget: the same preset, data, seed and number of steps for each
variant, each evaluated on the held-out photographs with the evaluation masks.

    python -m model.ablate [--steps 300] [--out runs/ablation] [--only full no-dino ...]

Variants: the full model; without the DINO branch (AdaLN conditioned on a pooled encoder
feature); without AdaLN (plain residual blocks, the DINO vector added as a bias); and a
plain convolutional decoder in place of the Gaussian rasterizer. Writes ablation.md,
ablation.json and ablation.png (PSNR and SSIM per mask bucket, a bar per variant).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .config import Config, override, preset
from .evaluate import evaluate, load_model
from .train import train

VARIANTS = {
    "full": {},
    "no-dino": {"use_dino": False},
    "no-adaln": {"use_adaln": False},
    "conv-decoder": {"decoder": "conv"},
}
MODEL_ROW = "2DGS model (ours)"


def variant_config(base: Config, name: str) -> Config:
    cfg = Config.from_dict(base.to_dict())
    for field, value in VARIANTS[name].items():
        setattr(cfg.model, field, value)
    return cfg


def run(base: Config, names: list[str], out: Path, per_image: int, compile: bool, progress: bool) -> dict:
    rows = {}
    for name in names:
        cfg = variant_config(base, name)
        tic = time.perf_counter()
        train(cfg, out / name, compile=compile, progress=progress)
        seconds = time.perf_counter() - tic
        net, cfg = load_model(out / name)
        results, _ = evaluate(net, cfg, per_image)
        rows[name] = {
            "train_seconds": seconds,
            "trainable_params": sum(p.numel() for p in net.parameters() if p.requires_grad),
            "buckets": {b: v[MODEL_ROW] for b, v in results["buckets"].items()},
            "dino_source": net.dino_source,
        }
        print(f"{name}: {json.dumps(rows[name]['buckets'])}", flush=True)
    return {"steps": base.train.steps, "batch_size": base.train.batch_size, "preset": base.preset, "variants": rows}


def markdown(summary: dict) -> str:
    rows = summary["variants"]
    buckets = list(next(iter(rows.values()))["buckets"])
    dino = {r["dino_source"] for r in rows.values()}
    lines = [
        f"Ablation: preset {summary['preset']}, {summary['steps']} steps of batch {summary['batch_size']} each,"
        f" same seed and data; held-out photographs, fixed masks. DINO weights: **{', '.join(sorted(dino))}**.",
        "",
        "| variant | params | train (s) | " + " | ".join(f"PSNR {b} | SSIM {b}" for b in buckets) + " |",
        "| --- | ---: | ---: | " + " | ".join("---: | ---:" for _ in buckets) + " |",
    ]
    for name, r in rows.items():
        cells = [f"{r['buckets'][b]['psnr']:.2f} | {r['buckets'][b]['ssim']:.4f}" for b in buckets]
        lines.append(f"| {name} | {r['trainable_params']:,} | {r['train_seconds']:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = summary["variants"]
    buckets = list(next(iter(rows.values()))["buckets"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    width = 0.8 / len(rows)
    for ax, metric in zip(axes, ("psnr", "ssim"), strict=True):
        for i, (name, r) in enumerate(rows.items()):
            values = [r["buckets"][b][metric] for b in buckets]
            ax.bar(np.arange(len(buckets)) + i * width, values, width, label=name)
        lo = min(r["buckets"][b][metric] for r in rows.values() for b in buckets)
        hi = max(r["buckets"][b][metric] for r in rows.values() for b in buckets)
        ax.set_ylim(lo - 0.1 * (hi - lo) - 1e-3, hi + 0.05 * (hi - lo) + 1e-3)
        ax.set_xticks(np.arange(len(buckets)) + 0.4 - width / 2, [f"hole {b}" for b in buckets])
        ax.set_ylabel(metric.upper())
    axes[0].legend(fontsize=8)
    fig.suptitle(f"ablation: {summary['steps']} steps each, held-out photographs")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-small", choices=("cpu-small", "paper"))
    parser.add_argument("--steps", type=int, default=300, help="training steps for every variant")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--per-image", type=int, default=4, help="crops per held-out image")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE", help="override any field")
    args = parser.parse_args(argv)
    base = override(preset(args.preset), args.set)
    base.train.steps = args.steps
    summary = run(base, args.only, args.out, args.per_image, not args.no_compile, not args.no_progress)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.json").write_text(json.dumps(summary, indent=1) + "\n")
    table = markdown(summary)
    (args.out / "ablation.md").write_text(table + "\n")
    plot(summary, args.out / "ablation.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
