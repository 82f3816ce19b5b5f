"""Choose the classical fills' starting mix (`model.prefill_prior`) on training crops.

    python -m model.prior [--per-image 2] [--fills biharmonic navier-stokes telea]

Fills fixed crops of the *training* images (never the held-out ones) under the
evaluation masks of every bucket, and ranks fixed blends of the fills on a grid of weights
by their mean PSNR over the buckets. The network starts from the chosen blend and learns
per-pixel corrections to it.
"""

from __future__ import annotations

import argparse
import itertools

import torch

from tritonsplat.metrics import psnr

from ..classical import PREFILLS, fill_batch
from ..cli import Defaults, add_debug, entry, prog
from ..config import Config
from ..data import data_paths, fixed_crops
from ..masks import BUCKETS, evaluation_masks

CROP_SEED = 1  # other crops than the evaluation's (seed 0), though of other images anyway
MASK_SEED = 4321  # other masks than the evaluation's


def weight_grid(n: int, step: float = 0.1) -> list[tuple[float, ...]]:
    """Every n-tuple of non-negative multiples of `step` that sums to 1."""
    units = round(1 / step)
    return [
        tuple(round(k * step, 6) for k in ks)
        for ks in itertools.product(range(units + 1), repeat=n)
        if sum(ks) == units
    ]


def rank_blends(fills: list[str], per_image: int, size: int = 128) -> list[tuple[tuple[float, ...], float]]:
    train, _ = data_paths(Config())
    images = fixed_crops(train, size, per_image, seed=CROP_SEED)
    masks = evaluation_masks(size, size, len(images), seed=MASK_SEED)
    grid = weight_grid(len(fills))
    score = dict.fromkeys(grid, 0.0)
    for bucket in BUCKETS:
        m = torch.from_numpy(masks[bucket])[:, None]
        filled = torch.stack(fill_batch(fills, images * (1 - m), m))  # [n, B, 3, H, W]
        for w in grid:
            blend = torch.einsum("n,nbchw->bchw", torch.tensor(w), filled)
            score[w] += float(psnr(blend * m + images * (1 - m), images).mean()) / len(BUCKETS)
    return sorted(score.items(), key=lambda kv: -kv[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog("prior"), description=__doc__.splitlines()[0],
                                     formatter_class=Defaults)
    parser.add_argument("--per-image", type=int, default=2, help="crops per training image")
    parser.add_argument("--fills", nargs="+", default=["biharmonic", "navier-stokes", "telea"], choices=list(PREFILLS),
                        help="the classical fills to blend")
    add_debug(parser)
    args = parser.parse_args(argv)
    ranked = rank_blends(args.fills, args.per_image)
    print("| " + " | ".join(args.fills) + " | mean PSNR over buckets |")
    print("|" + " ---: |" * (len(args.fills) + 1))
    for w, s in ranked[:10]:
        print("| " + " | ".join(f"{x:.1f}" for x in w) + f" | {s:.3f} |")
    return 0


def run() -> int:
    return entry(main)


if __name__ == "__main__":
    raise SystemExit(run())
