"""Evaluate a checkpoint against classical inpainting on held-out photographs.

    python -m model.evaluate [--ckpt PATH] [--out runs/eval] [--per-image 16]

PSNR and SSIM (whole image, known pixels composited) per mask bucket (10-20%, 20-40%,
40-60%, fixed seeds) for the model and for OpenCV's Telea and Navier-Stokes and
scikit-image's biharmonic inpainting, on the same images and masks. LPIPS and FID need
network weights that are not on this machine: the table says so rather than guess.
Writes results.md, results.json and examples.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tritonsplat.metrics import psnr, ssim

from . import checkpoint
from .classical import fill_batch
from .config import Config
from .data import fixed_crops
from .masks import BUCKETS, evaluation_masks
from .train import build_model, data_paths

DEFAULT_CKPT = Path(__file__).parent / "release" / "cpu-small"
MODEL = "2DGS model (ours)"
# 16 crops of each held-out photograph: a crop's PSNR ranges over 15-50 dB, so 4 crops
# each (16 in all, the first setting) left differences of 0.1-0.2 dB within the noise


BASELINES = {  # table name: key of model.classical.PREFILLS
    "telea (OpenCV)": "telea",
    "navier-stokes (OpenCV)": "navier-stokes",
    "biharmonic (scikit-image)": "biharmonic",
}


def load_model(ckpt: Path) -> tuple[torch.nn.Module, Config]:
    ckpt = Path(ckpt)
    if ckpt.is_dir() and not (ckpt / "model.safetensors").is_file():
        latest = checkpoint.latest(ckpt)
        if latest is None:
            raise FileNotFoundError(f"--ckpt: no checkpoint in {ckpt}")
        ckpt = latest
    if not (ckpt / "config.json").is_file():
        raise FileNotFoundError(f"--ckpt: no config.json beside the weights in {ckpt}")
    cfg = Config.load(ckpt / "config.json")
    net = build_model(cfg)
    checkpoint.load_weights(net, ckpt)
    return net.eval(), cfg


def _paired(ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    """The model's PSNR minus a baseline's on the same crops and masks: mean, its
    standard error, and the fraction of crops the model wins."""
    d = (ours - theirs).double()
    return {"mean": float(d.mean()), "stderr": float(d.std() / len(d) ** 0.5), "wins": float((d > 0).double().mean())}


def evaluate(net, cfg: Config, per_image: int, batch: int = 8) -> dict:
    _, held_out = data_paths(cfg)
    size = cfg.model.image_size
    images = fixed_crops(held_out, size, per_image)
    masks = evaluation_masks(size, size, len(images))
    results: dict = {"images": len(images), "held_out": [p.name for p in held_out], "buckets": {}, "paired": {}}
    examples = {}
    for bucket in BUCKETS:
        m = torch.from_numpy(masks[bucket])[:, None]
        outputs = {}
        with torch.no_grad():
            outputs[MODEL] = torch.cat(
                [
                    net(images[i : i + batch], m[i : i + batch])["output"].clamp(0, 1)
                    for i in range(0, len(images), batch)
                ]
            )
        filled = fill_batch(list(BASELINES.values()), images, m)
        for name, fill in zip(BASELINES, filled, strict=True):
            outputs[name] = fill * m + images * (1 - m)  # known pixels composited
        scores = {name: (psnr(out, images), ssim(out, images)) for name, out in outputs.items()}
        results["buckets"][bucket] = {
            name: {"psnr": float(p.mean()), "ssim": float(q.mean()), "psnr_per_image": p.tolist()}
            for name, (p, q) in scores.items()
        }
        ours = scores[MODEL]
        results["paired"][bucket] = {name: _paired(ours[0], p) for name, (p, _) in scores.items() if name != MODEL}
        j = (len(examples) + 1) % len(held_out) * per_image  # a different photograph per bucket
        examples[bucket] = (images[j], m[j], {k: v[j] for k, v in outputs.items()})
    return results, examples


def markdown(results: dict, dino_source: str) -> str:
    methods = list(next(iter(results["buckets"].values())))
    lines = [
        f"Held-out photographs: {', '.join(results['held_out'])} ({results['images']} crops); masks at fixed seeds.",
        f"DINO weights of the model: **{dino_source}**"
        + (" (random: no figure here was made with real DINO)" if dino_source.startswith("random") else ""),
        "LPIPS and FID: not computed (their network weights are not available on this machine).",
        "",
        "| method | " + " | ".join(f"PSNR {b} | SSIM {b}" for b in results["buckets"]) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in results["buckets"]) + " |",
    ]
    for name in methods:
        cells = [f"{v[name]['psnr']:.2f} | {v[name]['ssim']:.4f}" for v in results["buckets"].values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if results.get("paired"):
        lines += [
            "",
            f"Paired on the same {results['images']} crops and masks: the model's PSNR minus each method's"
            " (mean +- standard error, dB; the share of crops where the model is ahead).",
            "",
            "| against | " + " | ".join(f"{b}" for b in results["paired"]) + " |",
            "| --- | " + " | ".join("---:" for _ in results["paired"]) + " |",
        ]
        for name in methods[1:]:
            cells = [
                f"{v[name]['mean']:+.2f} +- {v[name]['stderr']:.2f} ({v[name]['wins']:.0%})"
                for v in results["paired"].values()
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _grid(examples: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(examples.values()))[2])
    cols = ["masked input", *names, "truth"]
    fig, axes = plt.subplots(len(examples), len(cols), figsize=(2.3 * len(cols), 2.4 * len(examples)), squeeze=False)
    for r, (bucket, (image, mask, outs)) in enumerate(examples.items()):
        panels = [image * (1 - mask) + 0.5 * mask, *outs.values(), image]
        for c, (title, panel) in enumerate(zip(cols, panels, strict=True)):
            axes[r, c].imshow(panel.permute(1, 2, 0).clamp(0, 1).numpy())
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(title, fontsize=8)
        axes[r, 0].set_ylabel(bucket)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT, help="checkpoint folder or run folder")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"))
    parser.add_argument("--per-image", type=int, default=16, help="crops per held-out image")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    net, cfg = load_model(args.ckpt)
    results, examples = evaluate(net, cfg, args.per_image)
    results["dino_source"] = net.dino_source
    results["checkpoint"] = str(args.ckpt)
    results["seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results, net.dino_source)
    (args.out / "results.md").write_text(table + "\n")
    _grid(examples, args.out / "examples.png")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
