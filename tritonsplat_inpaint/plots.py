"""A run's pictures: the learning curve (`curve.png`), the loss terms (`loss.png`) and
the network on held-out crops (`samples.png`), written at the end of a run and at a stop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .runs import read_jsonl


def pyplot():
    """matplotlib.pyplot on the Agg backend (files, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _short(dino_source: str) -> str:
    """A DINO source short enough for a title: without its sha256 (kept in the run's record)."""
    return dino_source.partition("@")[0]


def plot_curve(entries: list[dict], path: Path, dino_source: str) -> None:
    """The learning curve: gain over the starting blend (dB) per bucket against images seen."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    seen = [e["images_seen"] for e in entries]
    for bucket in entries[0]["gain_db"] if entries else []:
        ax.plot(seen, [e["gain_db"][bucket] for e in entries], marker=".", label=f"holes {bucket}")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("training images seen")
    ax.set_ylabel("held-out PSNR: model - starting blend (dB)")
    crops = entries[-1]["crops"] if entries else 0
    ax.set_title(f"learning curve ({crops} held-out crops per bucket; dino: {_short(dino_source)})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(runs: dict[str, Path], path: Path, offsets: dict[str, int] | None = None) -> bool:
    """Several runs' learning curves (held-out PSNR over each one's starting blend, per
    bucket) on one figure, a panel per bucket and a line per run (`{label: run folder}`),
    each shifted right by its `offsets` steps (a run started from another's end); False
    when no run wrote a curve. A run without a classical prior has no blend to gain over
    and no curve."""
    plt = pyplot()

    offsets = offsets or {}
    curves = {n: points for n, run_dir in runs.items() if (points := read_jsonl(run_dir / "curve.jsonl"))}
    if not curves:
        return False
    buckets = list(next(iter(curves.values()))[0]["gain_db"])
    fig, axes = plt.subplots(1, len(buckets), figsize=(4 * len(buckets), 3.4), sharey=True, squeeze=False)
    axes = axes[0]
    for ax, bucket in zip(axes, buckets, strict=True):
        for name, points in curves.items():
            steps = [p["step"] + offsets.get(name, 0) for p in points]
            ax.plot(steps, [p["gain_db"][bucket] for p in points], marker=".", label=name)
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title(f"hole {bucket}")
        ax.set_xlabel("step")
    axes[0].set_ylabel("PSNR over the starting blend (dB)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_losses(entries: list[dict], path: Path, dino_source: str) -> None:
    """Every logged loss term against the step."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    keys = {k for e in entries for k in e} - {"step", "images_per_s", "lr"}  # terms that start late too
    for key in sorted(keys):
        ax.plot([e["step"] for e in entries], [e.get(key, np.nan) for e in entries], label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("symlog", linthresh=1e-2)  # log_mse is negative
    ax.legend()
    ax.set_title(f"training losses (dino: {_short(dino_source)})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_samples(net, images: torch.Tensor, masks: torch.Tensor, path: Path) -> None:
    """Masked input, output and truth, a row per crop."""
    plt = pyplot()
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    with torch.no_grad():
        out = net(images.to(device), masks.to(device))["output"].cpu()
    net.train(was_training)
    rows = [images * (1 - masks) + masks * 0.5, out, images]
    fig, axes = plt.subplots(len(images), 3, figsize=(7.5, 2.5 * len(images)), squeeze=False)
    for i in range(len(images)):
        for j, (title, batch) in enumerate(zip(("masked input", "output", "truth"), rows, strict=True)):
            axes[i, j].imshow(batch[i].permute(1, 2, 0).clamp(0, 1).numpy())
            axes[i, j].axis("off")
            if i == 0:
                axes[i, j].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_pictures(run_dir: Path, net, cfg) -> None:
    """`loss.png` from the run's log and `samples.png` on four held-out crops with holes
    of 20-40% (the curve is plotted as each of its points is logged)."""
    from .data import data_paths, fixed_crops
    from .masks import evaluation_masks

    entries = read_jsonl(run_dir / "log.jsonl")
    if entries:
        plot_losses(entries, run_dir / "loss.png", net.dino_source)
    _, held_out = data_paths(cfg)
    size = cfg.model.image_size
    images = fixed_crops(held_out, size, 1)[:4]
    masks = torch.from_numpy(evaluation_masks(size, size, 2)["20-40%"])
    masks = masks[:, None].repeat(3, 1, 1, 1)[: len(images)]
    plot_samples(net, images, masks, run_dir / "samples.png")
