"""Evaluate a checkpoint against classical inpainting on held-out photographs.

    python -m model.evaluate [--ckpt PATH] [--out runs/eval] [--per-image 96]

PSNR and SSIM (whole image, known pixels composited) per mask bucket (10-20%, 20-40%,
40-60%, fixed seeds) for the model, its starting blend, and OpenCV's Telea and
Navier-Stokes and scikit-image's biharmonic inpainting, on the same crops and masks of
the held-out photographs (data.HELD_OUT: whole photographs that training never sees),
with paired differences and their standard errors. LPIPS and FID need
network weights that are not on this machine: the table says so rather than guess.
Writes results.md, results.json and examples.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..checkpoint import RELEASED, load_model
from ..cli import add_debug, entry, prog, write_report
from ..evaluation import PER_IMAGE, evaluate, markdown


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
    parser = argparse.ArgumentParser(prog=prog("evaluate"), description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=RELEASED, help="checkpoint folder or run folder")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"))
    parser.add_argument("--per-image", type=int, default=PER_IMAGE, help="crops per held-out photograph")
    parser.add_argument("--dino-weights", help="load the checkpoint with another DINO (a timm weights file)")
    parser.add_argument("--allow-other-dino", action="store_true",
                        help="accept a DINO other than the one the checkpoint was trained with")  # fmt: skip
    add_debug(parser)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    net, cfg = load_model(args.ckpt, args.dino_weights, args.allow_other_dino)
    results, examples = evaluate(net, cfg, args.per_image)
    results["dino_source"] = net.dino_source
    results["trained_dino"] = net.trained_dino
    results["checkpoint"] = str(args.ckpt)
    results["seconds"] = time.perf_counter() - start
    write_report(args.out, "results", results, markdown(results, net.dino_source))
    _grid(examples, args.out / "examples.png")
    return 0


def run() -> int:
    return entry(main)


if __name__ == "__main__":
    raise SystemExit(run())
