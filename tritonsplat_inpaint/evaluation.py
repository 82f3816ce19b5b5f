"""Scoring a network against classical inpainting on held-out photographs: PSNR and SSIM
(whole image, known pixels composited) per mask bucket for the model, its starting blend
(the classical fills mixed at the prior's weights: the model before training), OpenCV's
Telea and Navier-Stokes and scikit-image's biharmonic inpainting, on the same crops and
masks, with paired differences and their standard errors; and the table that reports
them. Every classical fill is computed once and shared by the baselines, the blend and
the network's own inputs."""

from __future__ import annotations

import torch

from tritonsplat.metrics import psnr, ssim

from .classical import fill_batch
from .config import Config
from .data import data_paths, fixed_crops, photograph_name
from .masks import BUCKETS, evaluation_masks

MODEL = "2DGS model (ours)"
BLEND = "starting blend (model before training)"
# crops of each held-out photograph: with the default catalogue's 9 held-out photographs,
# 96 crops each (864 per bucket) bring the paired standard error against every classical
# method under 0.05 dB in every bucket (measured: `python -m model.evaluate`)
PER_IMAGE = 96

BASELINES = {  # table name: key of model.classical.PREFILLS
    "telea (OpenCV)": "telea",
    "navier-stokes (OpenCV)": "navier-stokes",
    "biharmonic (scikit-image)": "biharmonic",
}


def paired(ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    """The model's PSNR minus a baseline's on the same crops and masks: mean, its
    standard error, and the fraction of crops the model wins."""
    d = (ours - theirs).double()
    stderr = float(d.std() / len(d) ** 0.5) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "stderr": stderr, "wins": float((d > 0).double().mean())}


class HeldOut:
    """The held-out crops, their fixed masks and every classical fill of them, made once:
    what `evaluate` scores a network on, and what training's learning curve re-scores
    every few hundred steps at the cost of the network's forward passes alone."""

    def __init__(self, cfg: Config, per_image: int, limit: int | None = None):
        _, held_out = data_paths(cfg)
        size = cfg.model.image_size
        self.names = [photograph_name(p) for p in held_out]
        self.images = fixed_crops(held_out, size, per_image)[:limit]
        masks = evaluation_masks(size, size, len(self.images))
        self.masks = {b: torch.from_numpy(masks[b])[:, None] for b in BUCKETS}
        self.fills = {}  # bucket -> {method: [N, 3, H, W]}
        for bucket, m in self.masks.items():
            filled = fill_batch(list(BASELINES.values()), self.images * (1 - m), m)
            self.fills[bucket] = dict(zip(BASELINES.values(), filled, strict=True))

    def outputs(self, net, bucket: str, batch: int = 8) -> torch.Tensor:
        """The network's composited outputs on the bucket's crops, [N, 3, H, W]."""
        m, fills = self.masks[bucket], self.fills[bucket]
        outs = []
        was_training = net.training
        net.eval()
        with torch.no_grad():
            for i in range(0, len(self.images), batch):
                own = [fills[name][i : i + batch] for name in net.fills]
                outs.append(net(self.images[i : i + batch], m[i : i + batch], own)["output"].clamp(0, 1))
        net.train(was_training)
        return torch.cat(outs)

    def blend(self, net, bucket: str) -> torch.Tensor:
        m = self.masks[bucket]
        return net.blend([self.fills[bucket][name] for name in net.fills]) * m + self.images * (1 - m)

    def gains(self, net) -> dict[str, float]:
        """{bucket: mean PSNR of the network minus its starting blend}: the learned part."""
        return {
            b: float((psnr(self.outputs(net, b), self.images) - psnr(self.blend(net, b), self.images)).mean())
            for b in self.masks
        }


def evaluate(net, cfg: Config, per_image: int = PER_IMAGE, batch: int = 8) -> tuple[dict, dict]:
    """(results, examples): the scores of every method per bucket, and one example
    (image, mask, every method's output) per bucket for the picture."""
    held = HeldOut(cfg, per_image)
    images = held.images
    results: dict = {"images": len(images), "held_out": held.names, "per_image": per_image, "buckets": {},
                     "paired": {}}  # fmt: skip
    examples = {}
    for bucket, m in held.masks.items():
        outputs = {MODEL: held.outputs(net, bucket, batch)}
        if net.fills:
            outputs[BLEND] = held.blend(net, bucket)
        for name, key in BASELINES.items():
            outputs[name] = held.fills[bucket][key] * m + images * (1 - m)  # known pixels composited
        scores = {name: (psnr(out, images), ssim(out, images)) for name, out in outputs.items()}
        results["buckets"][bucket] = {
            name: {"psnr": float(p.mean()), "ssim": float(q.mean()), "psnr_per_image": p.tolist()}
            for name, (p, q) in scores.items()
        }
        ours = scores[MODEL]
        results["paired"][bucket] = {
            name: paired(ours[0], p) | {"ssim": paired(ours[1], q)} for name, (p, q) in scores.items() if name != MODEL
        }
        j = (len(examples) + 1) % len(held.names) * per_image  # a different photograph per bucket
        examples[bucket] = (images[j], m[j], {k: v[j] for k, v in outputs.items()})
    return results, examples


def markdown(results: dict, dino_source: str) -> str:
    methods = list(next(iter(results["buckets"].values())))
    lines = [
        f"Held-out photographs: {', '.join(results['held_out'])} ({results['images']} crops of 128 px); "
        "masks at fixed seeds.",
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
            " (mean +- standard error, dB; the share of crops where the model is ahead), then the SSIM"
            " difference.",
            "",
            "| against | " + " | ".join(f"{b}" for b in results["paired"]) + " |",
            "| --- | " + " | ".join("---:" for _ in results["paired"]) + " |",
        ]
        for name in methods[1:]:
            cells = []
            for v in results["paired"].values():
                d = v[name]
                cell = f"{d['mean']:+.2f} +- {d['stderr']:.2f} ({d['wins']:.0%})"
                if "ssim" in d:
                    cell += f"; SSIM {d['ssim']['mean']:+.4f} +- {d['ssim']['stderr']:.4f}"
                cells.append(cell)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
