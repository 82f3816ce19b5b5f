"""Fit an image with 2D Gaussians by gradient descent through the rasterizer.

    python -m tritonsplat.fit [IMAGE] [--size 256] [--steps 300] [--out runs/fit]

With no IMAGE it fits a photograph that ships with matplotlib. The patch rasterizer
places `--gaussians-per-patch` Gaussians (a square number) on a grid in every
`--patch-size` patch, renders them with `overlap` feathering, and Adam fits means,
Cholesky factors and colors to the image. Writes the reconstruction (PNG), a
PSNR-versus-step plot (PNG) and a JSON of the final PSNR, SSIM and wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .api import rasterize_patches
from .metrics import psnr, ssim


def default_image() -> Path:
    import matplotlib.cbook

    return Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def load_image(path: Path, size: int) -> torch.Tensor:  # -> [1, 3, size, size] in [0, 1]
    import matplotlib.image

    if not path.is_file():
        raise FileNotFoundError(f"IMAGE: no such file: {path}")
    arr = np.asarray(matplotlib.image.imread(path))
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"IMAGE: expected a grayscale, RGB or RGBA image, got an array of shape {arr.shape}")
    img = torch.from_numpy(arr[..., :3].astype(np.float32))
    if arr.dtype == np.uint8:
        img = img / 255.0
    img = img.permute(2, 0, 1)[None]
    side = min(img.shape[-2:])  # centre square crop, then resize
    top, left = (img.shape[-2] - side) // 2, (img.shape[-1] - side) // 2
    img = img[..., top : top + side, left : left + side]
    return F.interpolate(img, size=(size, size), mode="area").clamp(0, 1)


class PatchField(torch.nn.Module):
    """K Gaussians per patch on a sqrt(K) x sqrt(K) grid; positive-diagonal Cholesky."""

    def __init__(self, image: torch.Tensor, patch_size: int, per_patch: int, overlap: int):
        super().__init__()
        side = round(per_patch**0.5)
        if side * side != per_patch:
            raise ValueError(f"--gaussians-per-patch: expected a square number, got {per_patch}")
        _, c, h, w = image.shape
        hp, wp = h // patch_size, w // patch_size
        step = patch_size / side
        t = (torch.arange(side) + 0.5) * step
        gy, gx = torch.meshgrid(t, t, indexing="ij")
        grid = torch.stack((gx.reshape(-1), gy.reshape(-1)), -1)
        self.means = torch.nn.Parameter(grid.expand(1, hp, wp, per_patch, 2).clone())
        sigma = torch.full((1, hp, wp, per_patch), step * 0.6)
        self.log_diag = torch.nn.Parameter(torch.stack((sigma, sigma), -1).log())
        self.offdiag = torch.nn.Parameter(torch.zeros(1, hp, wp, per_patch))
        # start each Gaussian at the mean color of its patch, scaled for "sum" mode
        patch_mean = F.avg_pool2d(image, patch_size).permute(0, 2, 3, 1)[:, :, :, None, :]
        cover = 2 * torch.pi * (step * 0.6) ** 2 / step**2  # sum of G over a grid cell
        self.colors = torch.nn.Parameter((patch_mean / cover).expand(1, hp, wp, per_patch, c).clone())
        self.patch_size, self.overlap = patch_size, overlap

    def forward(self) -> torch.Tensor:
        diag = self.log_diag.exp()
        chol = torch.stack((diag[..., 0], self.offdiag, diag[..., 1]), -1)
        return rasterize_patches(
            self.means, chol, self.colors, patch_size=self.patch_size, overlap=self.overlap, mode="sum", window="box"
        )


def fit(image: torch.Tensor, patch_size: int, per_patch: int, overlap: int, steps: int, lr: float, seed: int):
    from tqdm import tqdm

    torch.manual_seed(seed)
    field = PatchField(image, patch_size, per_patch, overlap)
    opt = torch.optim.Adam(field.parameters(), lr=lr)
    history = []
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="fit", unit="step", mininterval=1.0)
    for _ in bar:
        out = field()
        loss = F.mse_loss(out, image)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(10 * torch.log10(1 / loss.detach()))
        history.append(value)
        bar.set_postfix(psnr=f"{value:.2f} dB")
    wall = time.perf_counter() - start
    with torch.no_grad():
        out = field().clamp(0, 1)
    return out, history, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", type=Path, default=None, help="image file (default: a bundled photo)")
    parser.add_argument("--size", type=int, default=256, help="fit a centre crop resized to SIZE x SIZE")
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--gaussians-per-patch", type=int, default=100, help="a square number")
    parser.add_argument("--overlap", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/fit"))
    args = parser.parse_args(argv)
    if args.size % args.patch_size:
        parser.error(f"--size: expected a multiple of --patch-size ({args.patch_size}), got {args.size}")
    path = args.image or default_image()
    image = load_image(path, args.size)
    print(
        f"fitting {path} at {args.size}x{args.size}: {args.gaussians_per_patch} Gaussians per {args.patch_size}px patch"
    )
    out, history, wall = fit(
        image, args.patch_size, args.gaussians_per_patch, args.overlap, args.steps, args.lr, args.seed
    )
    args.out.mkdir(parents=True, exist_ok=True)
    _save(args.out, image, out, history)
    result = dict(
        image=str(path), size=args.size, steps=args.steps, gaussians=int(out.shape[-1] // args.patch_size) ** 2
        * args.gaussians_per_patch, psnr=float(psnr(out, image)), ssim=float(ssim(out, image)), wall_seconds=wall,
    )  # fmt: skip
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


def _save(out_dir: Path, image: torch.Tensor, out: torch.Tensor, history: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def to_uint8(t):
        return (t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    plt.imsave(out_dir / "reconstruction.png", to_uint8(out))
    plt.imsave(out_dir / "target.png", to_uint8(image))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(history) + 1), history)
    ax.set_xlabel("step")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("fit")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "psnr.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
