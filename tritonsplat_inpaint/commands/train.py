"""Train the inpainting model.

    python -m model.train [--preset cpu-small] [--data DIR] [--steps N] [--out runs/train]
    python -m model.train --out runs/train --resume          # continue a stopped run
    torchrun --nproc_per_node 2 -m model.train ...            # DDP (gloo on CPU, NCCL on GPU)

(`python -m model.train` in a clone; installed, the same is `tritonsplat-train` or
`python -m tritonsplat_inpaint.commands.train`.) Writes the run folder described in
`tritonsplat_inpaint.training`. Ctrl-C stops after the step in flight, saves it, and says
how to continue.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ..checkpoint import resolve
from ..cli import Defaults, add_debug, add_threads, entry, prog, set_threads
from ..config import Config, override, preset
from ..training import clear_run, holds_run, train


def _free_run_dir(base: Path) -> Path:
    """`base`, or `base-2`, `base-3`, ... : the first that holds no run."""
    candidate, n = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog("train"), description=__doc__.splitlines()[0],
                                     formatter_class=Defaults)
    parser.add_argument("--preset", default="cpu-small", choices=("cpu-small", "paper"),
                        help="the configuration to start from: cpu-small (minutes on 2 CPU cores) or the paper's")
    parser.add_argument("--config", type=Path, help="a saved config.json to start from (overrides --preset)")
    parser.add_argument("--data", help="a folder of images (default: the catalogue of photographs in installed "
                        "packages, with its fixed held-out list)")
    parser.add_argument("--steps", type=int, help="optimiser steps in all (default: the preset's, 600 for cpu-small)")
    parser.add_argument("--batch-size", type=int, help="crops per step (default: the preset's, 8 for cpu-small)")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/train, or runs/train-N if that is taken)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    parser.add_argument("--init", type=Path, help="start a new run from this checkpoint's (or run folder's latest) "
                        "weights, with its configuration unless --config, and a fresh optimiser")
    parser.add_argument("--overwrite", action="store_true", help="start a new run in --out, deleting the run there")
    parser.add_argument("--minutes", type=float, help="a chunk: train at most this many minutes from the first step "
                        "(loading and the curve's first point not counted), then checkpoint, draw and stop; "
                        "continue with --resume")
    parser.add_argument("--no-compile", action="store_true", help="run the adapter and AdaLN blocks eagerly")
    parser.add_argument("--dino-weights", help="a local file with the DINO backbone's weights")
    parser.add_argument(
        "--dino-random",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use seeded random DINO weights when none can be had (the cpu-small default)",
    )
    parser.add_argument("--set", nargs="*", default=[], metavar="SECTION.FIELD=VALUE", help="override any field")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    add_threads(parser)
    add_debug(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite: expected at most one of them")
    if args.resume and args.init:
        parser.error("--resume and --init: expected at most one of them (--init starts a new run)")
    if args.out is None:
        if args.resume:
            parser.error("--resume needs --out, the run folder to continue")
        args.out = _free_run_dir(Path("runs/train"))
    if args.init is not None:
        args.init = resolve(args.init, "--init")
    if args.resume and (args.out / "config.json").is_file() and args.config is None:
        cfg = Config.load(args.out / "config.json")
    elif args.init is not None and args.config is None:
        cfg = Config.load(args.init / "config.json")
    else:
        cfg = Config.load(args.config) if args.config else preset(args.preset)
    if args.data:
        cfg.data.folder = args.data
    if args.steps is not None:
        cfg.train.steps = args.steps
    if args.batch_size is not None:
        cfg.train.batch_size = args.batch_size
    if args.dino_weights:
        cfg.dino_weights = args.dino_weights
    if args.dino_random is not None:
        cfg.dino_random = args.dino_random
    override(cfg, args.set)
    if args.overwrite and holds_run(args.out):
        clear_run(args.out)
        print(f"--overwrite: removed the run in {args.out}", file=sys.stderr)
    command = shlex.join(["python", "-m", "model.train", *(sys.argv[1:] if argv is None else argv)])
    try:
        summary = train(cfg, args.out, resume=args.resume, compile=not args.no_compile,
                        progress=not args.no_progress, command=command, init=args.init,
                        minutes=args.minutes)  # fmt: skip
    except KeyboardInterrupt:  # before the first step (a stop during training ends in `summary`)
        if args.debug:
            raise
        how = f"continue with --out {args.out} --resume" if holds_run(args.out) else "run the same command again"
        print(f"interrupted before the first step: nothing to save; {how}", file=sys.stderr)
        return 130
    print(json.dumps(summary))
    return 130 if summary.get("interrupted") else 0


def run() -> int:
    return entry(main)


if __name__ == "__main__":
    raise SystemExit(run())
