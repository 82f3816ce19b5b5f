"""Evaluate a checkpoint against classical inpainting on held-out photographs.

    python -m model.evaluate [--ckpt PATH] [--out runs/eval] [--per-image 24]

PSNR and SSIM (whole image, known pixels composited) per mask bucket (10-20%, 20-40%,
40-60%, fixed seeds) for the model, its starting blend, and OpenCV's Telea,
Navier-Stokes and FSR and scikit-image's biharmonic inpainting, on the same crops and
masks of the held-out photographs (data.HELD_OUT: whole photographs that training never
sees), with paired differences and their standard errors; with the real DINOv2 installed,
also the perceptual distance, FD-DINOv2 and the texture ratio (`perceptual.py`); and the
model with the crop's own fine detail copied into the hole (`--detail`, the pass that
model.inpaint gives holes filled at reduced scales), its own operating point: texture for
some PSNR.
Writes results.md, results.json, examples.png (a grid of held-out crops) and
texture.png (a big hole at full size in the held-out photograph with the most texture).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..checkpoint import RELEASED, load_model
from ..cli import Defaults, add_debug, add_threads, entry, prog, set_threads, write_report
from ..data import data_paths
from ..evaluation import JUDGE_PER_IMAGE, PER_IMAGE, evaluate, markdown
from ..infer import DETAIL
from ..perceptual import JUDGE_INPUT, Judge
from ..pictures import grid, texture_example


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog("evaluate"), description=__doc__.splitlines()[0],
                                     formatter_class=Defaults)
    parser.add_argument("--ckpt", type=Path, default=RELEASED, help="checkpoint folder or run folder")
    parser.add_argument("--out", type=Path, default=Path("runs/eval"), help="folder for the table and pictures")
    parser.add_argument("--per-image", type=int, default=PER_IMAGE, help="crops per held-out photograph")
    parser.add_argument("--judge-input", type=int, default=JUDGE_INPUT,
                        help="the judging DINOv2's input size (px, a multiple of 14); 0: no perceptual scores")
    parser.add_argument("--judge-per-image", type=int, default=JUDGE_PER_IMAGE,
                        help="crops per held-out photograph that the judge scores (the first ones)")
    parser.add_argument("--detail", type=float, default=DETAIL,
                        help="also score the model's outputs given the crop's own fine detail at this weight, as "
                             "model.inpaint gives holes it fills at reduced scales (0: not scored)")
    parser.add_argument("--no-full-size", dest="full_size", action="store_false",
                        help="skip the full-size texture example (texture.png)")
    parser.add_argument("--dino-weights", help="load the checkpoint with another DINO (a timm weights file)")
    parser.add_argument("--allow-other-dino", action="store_true",
                        help="accept a DINO other than the one the checkpoint was trained with")  # fmt: skip
    add_threads(parser)
    add_debug(parser)
    args = parser.parse_args(argv)
    if not 0 <= args.detail <= 1:
        parser.error(f"--detail: expected a weight from 0 to 1, got {args.detail}")
    set_threads(args.threads)
    start = time.perf_counter()
    net, cfg = load_model(args.ckpt, args.dino_weights, args.allow_other_dino)
    ok, why = Judge.available() if args.judge_input else (False, "--judge-input 0")
    if not ok:
        print(f"evaluate: no perceptual scores: {why}", flush=True)
    results, examples = evaluate(net, cfg, args.per_image, judge=Judge(args.judge_input) if ok else None,
                                 judge_per_image=args.judge_per_image, detail=args.detail)
    if not ok:
        results["no_judge"] = why
    results["dino_source"] = net.dino_source
    results["trained_dino"] = net.trained_dino
    results["checkpoint"] = str(args.ckpt)
    results["seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    grid(examples, args.out / "examples.png")
    if args.full_size:
        results["full_size"] = texture_example(net, data_paths(cfg)[1], args.out / "texture.png",
                                               detail=args.detail or DETAIL)
    write_report(args.out, "results", results, markdown(results, net.dino_source))
    return 0


def run() -> int:
    return entry(main)


if __name__ == "__main__":
    raise SystemExit(run())
