"""The evaluation's pictures: a grid of held-out crops (masked input, every method, truth,
a row per hole bucket) and a full-size example of a big hole in a texture, where a smooth
fill shows at once."""

from __future__ import annotations

from pathlib import Path

import torch

from tritonsplat.metrics import psnr

from .classical import PREFILLS
from .data import load_rgb, photograph_name
from .perceptual import laplacian_energy, texture_ratio
from .plots import pyplot

# the full-size example's classical methods (keys of PREFILLS), beside the model
FULL_SIZE_METHODS = ("telea", "biharmonic", "fsr")


def _figure(rows: int, cols: int, width: float, height: float):
    plt = pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return plt, fig, axes


def grid(examples: dict, path: Path) -> None:
    """examples: {bucket: (image, mask, {method: output})} -> a PNG, a row per bucket."""
    names = list(next(iter(examples.values()))[2])
    cols = ["masked input", *names, "truth"]
    plt, fig, axes = _figure(len(examples), len(cols), 2.3, 2.4)
    for r, (bucket, (image, mask, outs)) in enumerate(examples.items()):
        panels = [image * (1 - mask) + 0.5 * mask, *outs.values(), image]
        for c, (title, panel) in enumerate(zip(cols, panels, strict=True)):
            axes[r, c].imshow(panel.permute(1, 2, 0).clamp(0, 1).numpy())
            if r == 0:
                axes[r, c].set_title(title, fontsize=8)
        axes[r, 0].set_ylabel(bucket)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def texture_energy(image: torch.Tensor) -> float:
    """Mean absolute Laplacian of a [3, H, W] image's luminance: how much texture it has."""
    full = torch.ones(1, 1, *image.shape[-2:])
    return float(laplacian_energy(image[None], full)[0]) / full.numel()


def big_hole(height: int, width: int, fraction: float = 0.35) -> torch.Tensor:
    """[H, W] bool: an object-sized elliptical hole in the middle, `fraction` of each side."""
    y = (torch.arange(height) - height / 2) / (fraction * height / 2)
    x = (torch.arange(width) - width / 2) / (fraction * width / 2)
    return y[:, None] ** 2 + x[None] ** 2 <= 1


def texture_example(net, paths: list[Path], out: Path, max_side: int = 1024, detail: float | None = None) -> dict:
    """Inpaint a big hole at full size in the held-out photograph with the most texture
    (of `paths`, read with its long side at most `max_side`) with the model (with and
    without the fine detail of `detail.transfer_detail`) and each classical method; write
    `out` (the whole pictures, then the hole's region enlarged) and return each method's
    hole PSNR and texture ratio. `detail`: the fine detail's weight (None: `inpaint`'s)."""
    from .infer import DETAIL, inpaint

    images = [_fit(load_rgb(p, 64, None), max_side) for p in paths]  # one full-size photograph at a time
    j = max(range(len(images)), key=lambda i: texture_energy(images[i]))
    image = images[j]
    hole = big_hole(*image.shape[-2:])
    m = hole[None].float()
    fills = {"model": inpaint(net, image, hole, detail=DETAIL if detail is None else detail)[0],
             "model, no detail": inpaint(net, image, hole, detail=0.0)[0]}
    for key in FULL_SIZE_METHODS:
        fills[key] = PREFILLS[key](image * (1 - m), m) * m + image * (1 - m)
    scores = {k: {"hole_psnr": hole_psnr(v, image, hole), "texture": texture_ratio(v[None], image[None], m[None])}
              for k, v in fills.items()}  # fmt: skip
    panels = {"masked input": image * (1 - m) + 0.5 * m, **fills, "truth": image}
    ys, xs = hole.nonzero(as_tuple=True)
    zoom = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
    plt, fig, axes = _figure(2, len(panels), 3.2, 2.6)
    for c, (title, panel) in enumerate(panels.items()):
        s = scores.get(title)
        label = title if s is None else f"{title}\n{s['hole_psnr']:.2f} dB, texture {s['texture']:.2f}"
        axes[0, c].imshow(panel.permute(1, 2, 0).clamp(0, 1).numpy())
        axes[0, c].set_title(label, fontsize=8)
        axes[1, c].imshow(panel[:, zoom[0], zoom[1]].permute(1, 2, 0).clamp(0, 1).numpy())
    axes[0, 0].set_ylabel(f"{photograph_name(paths[j])}, {image.shape[-1]} x {image.shape[-2]}", fontsize=8)
    axes[1, 0].set_ylabel("the hole, enlarged", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return {"photograph": photograph_name(paths[j]), "size": list(image.shape[-2:][::-1]), "scores": scores}


def _fit(image: torch.Tensor, max_side: int) -> torch.Tensor:
    scale = max_side / max(image.shape[-2:])
    if scale >= 1:
        return image
    size = (round(image.shape[-2] * scale), round(image.shape[-1] * scale))
    return torch.nn.functional.interpolate(image[None], size=size, mode="area")[0]


def hole_psnr(fill: torch.Tensor, truth: torch.Tensor, hole: torch.Tensor) -> float:
    """PSNR over the hole's pixels alone (the known ones are equal by construction)."""
    return float(psnr(fill[:, hole][None], truth[:, hole][None])[0])
