"""Fit an image with 2D Gaussians by gradient descent through the rasterizer
(GaussianImage-style: Cholesky covariance, colors, "sum" mode, Adam).

    python -m tritonsplat.fit [IMAGE] [--num-gaussians 2000] [--steps 2000] [--out DIR]

It fits the largest centred square of IMAGE (with none, a photograph that ships with
matplotlib), resized to `--size` x `--size`, and says so. Without --out it writes to
runs/fit, or runs/fit-2, -3, ... when that holds a previous fit; an --out that holds one
is refused unless --overwrite is given.
`--rasterizer free` (the default) places N free Gaussians and renders them with
`tritonsplat.rasterize`; `--rasterizer patches` puts `--gaussians-per-patch` on a grid in
every patch and renders with `tritonsplat.rasterize_patches`. `--backend dense` renders
with the literal maths instead (slow; to compare against). Writes the reconstruction and
the target (PNG), a picture of the fitted Gaussians (gaussians.png: their 1-sigma
ellipses outlined over the reconstruction, at twice its size; `tritonsplat.viz`), a
PSNR-versus-step plot (PNG) and result.json: final PSNR, SSIM and wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .api import rasterize, rasterize_patches
from .metrics import psnr, ssim
from .spec import rasterize_patches_spec, rasterize_spec


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


def _cholesky(log_diag: torch.Tensor, offdiag: torch.Tensor) -> torch.Tensor:
    diag = log_diag.exp()  # a positive diagonal: never a degenerate factor
    return torch.stack((diag[..., 0], offdiag, diag[..., 1]), -1)


class FreeField(torch.nn.Module):
    """N free Gaussians, spread uniformly over the image."""

    def __init__(self, image: torch.Tensor, n: int, backend: str, seed: int):
        super().__init__()
        _, c, h, w = image.shape
        gen = torch.Generator().manual_seed(seed)
        means = torch.rand(1, n, 2, generator=gen) * torch.tensor([w, h])
        spacing = (h * w / n) ** 0.5
        sigma = 0.6 * spacing
        self.means = torch.nn.Parameter(means)
        self.log_diag = torch.nn.Parameter(torch.full((1, n, 2), sigma).log())
        self.offdiag = torch.nn.Parameter(torch.zeros(1, n))
        # each Gaussian starts at the image's color under it, scaled for "sum" mode
        ix = means[0, :, 0].long().clamp(0, w - 1)
        iy = means[0, :, 1].long().clamp(0, h - 1)
        cover = 2 * torch.pi * sigma**2 / spacing**2  # sum of G over one Gaussian's share
        self.colors = torch.nn.Parameter((image[0, :, iy, ix].T / cover)[None].contiguous())
        self.size, self.backend = (h, w), backend

    def forward(self) -> torch.Tensor:
        chol = _cholesky(self.log_diag, self.offdiag)
        h, w = self.size
        if self.backend == "dense":
            return rasterize_spec(self.means, chol, self.colors, height=h, width=w)
        return rasterize(self.means, chol, self.colors, height=h, width=w, backend=self.backend)

    def gaussians(self) -> tuple[torch.Tensor, torch.Tensor, int | None]:  # means, cholesky, patch size
        return self.means.detach(), _cholesky(self.log_diag, self.offdiag).detach(), None


class PatchField(torch.nn.Module):
    """K Gaussians per patch on a sqrt(K) x sqrt(K) grid."""

    def __init__(self, image: torch.Tensor, patch_size: int, per_patch: int, overlap: int, backend: str):
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
        self.log_diag = torch.nn.Parameter(torch.full((1, hp, wp, per_patch, 2), step * 0.6).log())
        self.offdiag = torch.nn.Parameter(torch.zeros(1, hp, wp, per_patch))
        # start each Gaussian at the mean color of its patch, scaled for "sum" mode
        patch_mean = F.avg_pool2d(image, patch_size).permute(0, 2, 3, 1)[:, :, :, None, :]
        cover = 2 * torch.pi * (step * 0.6) ** 2 / step**2
        self.colors = torch.nn.Parameter((patch_mean / cover).expand(1, hp, wp, per_patch, c).clone())
        self.kw = dict(patch_size=patch_size, overlap=overlap, mode="sum", window="box")
        self.backend = backend

    def forward(self) -> torch.Tensor:
        chol = _cholesky(self.log_diag, self.offdiag)
        if self.backend == "dense":
            return rasterize_patches_spec(self.means, chol, self.colors, **self.kw)
        return rasterize_patches(self.means, chol, self.colors, backend=self.backend, **self.kw)

    def gaussians(self) -> tuple[torch.Tensor, torch.Tensor, int | None]:  # means, cholesky, patch size
        return self.means.detach(), _cholesky(self.log_diag, self.offdiag).detach(), self.kw["patch_size"]


def fit(field: torch.nn.Module, image: torch.Tensor, steps: int, lr: float):
    """Adam on every parameter of `field` against the MSE to `image`; returns the clamped
    reconstruction, the PSNR of every step and the wall time."""
    from tqdm import tqdm

    opt = torch.optim.Adam(field.parameters(), lr=lr)
    history = []
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="fit", unit="step", mininterval=1.0)
    for _ in bar:
        loss = F.mse_loss(field(), image)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(10 * torch.log10(1 / loss.detach()))
        history.append(value)
        bar.set_postfix(psnr=f"{value:.2f} dB", refresh=False)
    wall = time.perf_counter() - start
    with torch.no_grad():
        out = field().clamp(0, 1)
    return out, history, wall


# CPU threads of the torch path. Measured with python -m tritonsplat.fit --size 128
# --num-gaussians 500 --steps 40 (torch 2.14.1, "Intel Xeon Processor" per lscpu, 2 cores
# shared with other jobs at load 5, 2026-12-06), the fit's wall_seconds, twice each:
# 1 thread 0.31 s and 0.59 s, 2 threads 12.2 s and 18.4 s. On a busy machine a second
# thread waits for a core far more than it helps (141 s against 6 s was seen earlier on
# another busy 2-core machine), so the default is one; --threads raises it.
DEFAULT_THREADS = 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tritonsplat.fit",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("image", nargs="?", type=Path, default=None, help="image file; none given: a bundled photograph")
    p.add_argument("--size", type=int, default=256, help="fit a centre crop resized to SIZE x SIZE")
    p.add_argument("--rasterizer", choices=("free", "patches"), default="free", help="which rasterizer renders")
    p.add_argument("--num-gaussians", type=int, default=2000, help="free Gaussians (--rasterizer free)")
    p.add_argument("--patch-size", type=int, default=16, help="patch side in pixels (--rasterizer patches)")
    p.add_argument("--gaussians-per-patch", type=int, default=100, help="a square number (--rasterizer patches)")
    p.add_argument("--overlap", type=int, default=1, help="canvas overlap in pixels (--rasterizer patches)")
    p.add_argument("--backend", choices=("auto", "torch", "triton", "dense"), default="auto",
                   help="rasterizer backend; dense: the literal maths (slow)")  # fmt: skip
    p.add_argument("--steps", type=int, default=2000, help="Adam steps")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial Gaussians")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="CPU threads of the torch path")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder; none given: runs/fit, or the next free runs/fit-N")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace the fit already in --out")
    return p


def main(argv: list[str] | None = None) -> int:
    parser_ = parser()
    args = parser_.parse_args(argv)
    if args.threads < 1:
        parser_.error(f"--threads: expected a positive integer, got {args.threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _main(parser_, args)
    finally:
        torch.set_num_threads(previous)


def _main(parser, args) -> int:
    if args.rasterizer == "patches" and args.size % args.patch_size:
        parser.error(f"--size: expected a multiple of --patch-size ({args.patch_size}), got {args.size}")
    if args.num_gaussians < 1 or args.steps < 1:
        parser.error("--num-gaussians and --steps: expected positive integers")
    path = args.image or default_image()
    image = load_image(path, args.size)
    out_dir = _out_dir(args.out, args.overwrite)
    print(_crop_note(path, args.size))
    print(f"writing to {out_dir}")
    torch.manual_seed(args.seed)
    if args.rasterizer == "free":
        field = FreeField(image, args.num_gaussians, args.backend, args.seed)
        count = args.num_gaussians
    else:
        field = PatchField(image, args.patch_size, args.gaussians_per_patch, args.overlap, args.backend)
        count = (args.size // args.patch_size) ** 2 * args.gaussians_per_patch
    print(f"fitting {path} at {args.size}x{args.size} with {count} Gaussians ({args.rasterizer}, {args.backend})")
    out, history, wall = fit(field, image, args.steps, args.lr)
    out_dir.mkdir(parents=True, exist_ok=True)
    _save(out_dir, image, out, history)
    _save_gaussians(out_dir / "gaussians.png", out, *field.gaussians())
    result = dict(
        image=str(path), size=args.size, rasterizer=args.rasterizer, backend=args.backend, gaussians=count,
        steps=args.steps, initial_psnr=history[0], psnr=float(psnr(out, image)), ssim=float(ssim(out, image)),
        wall_seconds=wall,
    )  # fmt: skip
    (out_dir / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


def _crop_note(path: Path, size: int) -> str:
    """What is fitted: the image's largest centred square, resized."""
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
    side = min(w, h)
    return (f"fitting {path} ({w} x {h}): its centred {side} x {side} square from (x {(w - side) // 2}, "
            f"y {(h - side) // 2}), resized to {size} x {size}")  # fmt: skip


def _out_dir(out: Path | None, overwrite: bool) -> Path:
    """--out, refused if it holds a previous fit (unless `overwrite`); by default runs/fit
    or the first runs/fit-N that holds none."""
    if out is not None:
        if (out / "result.json").exists() and not overwrite:
            raise FileExistsError(f"--out: {out} holds a previous fit; pass --overwrite to replace it or another --out")
        return out
    out, n = Path("runs/fit"), 1
    while (out / "result.json").exists():
        n += 1
        out = Path(f"runs/fit-{n}")
    return out


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


def _save_gaussians(path: Path, out: torch.Tensor, means, cholesky, patch_size: int | None, zoom: int = 2) -> None:
    """The fitted Gaussians' 1-sigma ellipses outlined over the reconstruction, drawn at
    `zoom` times its size so that neighbouring outlines stay apart."""
    from PIL import Image

    from .viz import draw_gaussians

    big = F.interpolate(out, scale_factor=zoom, mode="nearest")[0]
    patch = None if patch_size is None else patch_size * zoom
    picture = draw_gaussians(big, means * zoom, cholesky * zoom, patch_size=patch, sigma=1, style="outline")
    Image.fromarray(picture).save(path)


def run() -> int:
    """`main` with its errors as one line on stderr (exit 1); `--debug` shows the traceback."""
    import sys

    try:
        return main([a for a in sys.argv[1:] if a != "--debug"])
    except (OSError, ValueError) as e:
        if "--debug" in sys.argv[1:]:
            raise
        print(f"error: {e} (--debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(run())
