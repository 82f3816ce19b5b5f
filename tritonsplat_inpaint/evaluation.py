"""Scoring a network against classical inpainting on held-out photographs: PSNR and SSIM
(whole image, known pixels composited) per mask bucket for the model and for OpenCV's
Telea and Navier-Stokes and scikit-image's biharmonic inpainting, on the same images and
masks, with paired differences; and the table that reports them."""

from __future__ import annotations

import torch

from tritonsplat.metrics import psnr, ssim

from .classical import fill_batch
from .config import Config
from .data import data_paths, fixed_crops
from .masks import BUCKETS, evaluation_masks

MODEL = "2DGS model (ours)"
# 16 crops of each held-out photograph: a crop's PSNR ranges over 15-50 dB, so 4 crops
# each (16 in all, the first setting) left differences of 0.1-0.2 dB within the noise


BASELINES = {  # table name: key of model.classical.PREFILLS
    "telea (OpenCV)": "telea",
    "navier-stokes (OpenCV)": "navier-stokes",
    "biharmonic (scikit-image)": "biharmonic",
}


def _paired(ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    """The model's PSNR minus a baseline's on the same crops and masks: mean, its
    standard error, and the fraction of crops the model wins."""
    d = (ours - theirs).double()
    stderr = float(d.std() / len(d) ** 0.5) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "stderr": stderr, "wins": float((d > 0).double().mean())}


def evaluate(net, cfg: Config, per_image: int, batch: int = 8) -> tuple[dict, dict]:
    """(results, examples): the scores of every method per bucket, and one example
    (image, mask, every method's output) per bucket for the picture."""
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
