"""Release a trained run as the checkpoint that ships in the repository.

    python -m model.release --run runs/release [--step N] [--out tritonsplat_inpaint/release/cpu-small]

Copies the run's latest weights (or those of `--step`, the checkpoint that was evaluated
while the run trained on: model.safetensors, at most 20 MB), configuration and learning
curve to that step (curve.jsonl, curve.png), bundles one held-out photograph and an
evaluation mask (example.png, example_mask.png; white = hole), inpaints it exactly as
`python -m model.inpaint` would, and records in release.json every training command (the
first and each --resume), the DINO source and the example's PSNR and SSIM, which the test
suite then reproduces: a change that breaks the checkpoint, the network or the seeded
DINO it was trained with is caught.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from tritonsplat.metrics import psnr, ssim

from .. import checkpoint
from ..checkpoint import RELEASED, load_model
from ..classical import to_uint8
from ..cli import Defaults, add_debug, entry, prog
from ..config import Config
from ..data import data_paths, debian_photographs, fixed_crops, photograph_name
from ..images import compose, read_image, read_mask, write_image
from ..infer import inpaint
from ..masks import evaluation_masks
from ..plots import plot_curve
from ..runs import read_jsonl

MAX_BYTES = 20 * 2**20
EXAMPLE_BUCKET = "20-40%"


def example_scores(release_dir: Path) -> dict:
    """Inpaint the bundled example with the released checkpoint; PSNR/SSIM against the
    bundled truth (the same road as `python -m model.inpaint`)."""
    net, _ = load_model(release_dir)
    picture = read_image(release_dir / "example.png")
    weight, _ = read_mask(release_dir / "example_mask.png", picture.size)
    filled, _ = inpaint(net, picture.rgb, torch.from_numpy(weight) > 0)
    out = torch.from_numpy(compose(picture, filled, weight)).permute(2, 0, 1) / 255  # as written to a PNG
    image = picture.rgb
    return {"psnr": float(psnr(out[None], image[None])), "ssim": float(ssim(out[None], image[None]))}


def release(run: Path, out: Path, step: int | None = None) -> dict:
    """Release the run's checkpoint of `step` (its latest when None) into `out`; returns
    what release.json records."""
    ckpt = checkpoint.latest(run) if step is None else run / f"step-{step:07d}"
    if ckpt is None or not (ckpt / "model.safetensors").is_file():
        held = ", ".join(sorted(p.name for p in run.glob("step-*"))) or "none"
        what = "no checkpoint" if step is None else f"no checkpoint of step {step}"
        raise FileNotFoundError(f"--run: {what} in {run} (its checkpoints: {held})")
    step = int(ckpt.name.removeprefix("step-"))
    size = (ckpt / "model.safetensors").stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"--run: weights are {size / 2**20:.1f} MB, over the {MAX_BYTES / 2**20:.0f} MB release limit")
    record = json.loads((run / "config.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ckpt / "model.safetensors", out / "model.safetensors")
    cfg = Config.load(ckpt / "config.json")
    cfg.save(out / "config.json")  # in this version's fields
    train_paths, held_out = data_paths(cfg)
    side = cfg.model.image_size
    image = fixed_crops(held_out, side, 1)[0]
    mask = evaluation_masks(side, side, 1)[EXAMPLE_BUCKET][0]
    curve = [e for e in read_jsonl(run / "curve.jsonl") if e["step"] <= step]  # the learning curve to this step
    if curve:
        (out / "curve.jsonl").write_text("".join(json.dumps(e) + "\n" for e in curve))
        plot_curve(curve, out / "curve.png", record.get("dino_source", "none"))
    else:  # no curve logged: none of an earlier release left beside these weights
        for name in ("curve.jsonl", "curve.png"):
            (out / name).unlink(missing_ok=True)
    write_image(to_uint8(image), out / "example.png")
    write_image(to_uint8(torch.from_numpy(mask > 0.5)[None].float()), out / "example_mask.png")
    starts = [c for c in record.get("commands", []) if c.get("from_step", 0) < step]
    # the precisions of the starts that trained these weights ("unrecorded" for a start made
    # before starts recorded theirs, 2026-12-07; a record with none has only the latest start's)
    recorded = any("precision" in c for c in starts)
    precisions = sorted({c.get("precision", "unrecorded") for c in starts}) if recorded else []
    info = {
        "command": record.get("command"),
        # every start of the run (the first, then each --resume), with the step it began at
        "commands": starts,
        # a run started from another's weights (--init): that checkpoint and the commands
        # that made it, back to the first run
        "initialised_from": record.get("init"),
        "precision": ", ".join(precisions) if precisions else record.get("precision"),
        "run": str(run),
        "step": step,
        "dino_source": record.get("dino_source"),
        "weights_mb": round(size / 2**20, 2),
        # the data on the releasing machine (the wallpapers only when installed there)
        "training_images": len(train_paths),
        "of_which_debian": len(set(train_paths) & set(debian_photographs())),
        "held_out": [photograph_name(p) for p in held_out],
        "example": {"image": f"held-out crop of {photograph_name(held_out[0])}", "mask_bucket": EXAMPLE_BUCKET}
        | example_scores(out),
        "torch": torch.__version__,
    }
    (out / "release.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog("release"), description=__doc__.splitlines()[0],
                                     formatter_class=Defaults)
    parser.add_argument("--run", type=Path, required=True, help="a training run folder")
    parser.add_argument("--step", type=int, help="the checkpoint to release (default: the run's latest)")
    parser.add_argument("--out", type=Path, default=RELEASED, help="the release folder to write")
    add_debug(parser)
    args = parser.parse_args(argv)
    print(json.dumps(release(args.run, args.out, args.step), indent=1))
    return 0


def run() -> int:
    return entry(main)


if __name__ == "__main__":
    raise SystemExit(run())
