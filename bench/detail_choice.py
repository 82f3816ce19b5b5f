"""The fine detail's settings compared: its scale, its weight and how its blocks are
chosen, on the same network outputs, crops and masks.

    OMP_NUM_THREADS=1 python -m bench.detail_choice [--ckpt RELEASE] [--per-image 8]
        [--variants 2:1:16 4:1:16 fsr:4 fsr:4:0.6 fsr:4+2:0.5:16 ...]

The released network's outputs on the held-out crops (`per_image` of each photograph, the
evaluation's fixed masks) are given the crop's own fine detail (`evaluation.with_detail`)
with each variant `SCALE:WEIGHT:CANDIDATES` in turn. The scale `f` is the band copied
(everything finer than `f` pixels, in blocks `4f` wide); the weight is `--detail`'s (here
up to 2, to see past its range); the candidate count 1 is the guide alone (each block
takes the known block most like it at the working scale), more lets the block's agreement
with the detail around it choose among that many. `METHOD:SCALE[:WEIGHT]` takes the band
finer than SCALE from a classical fill instead, mixed with the network's own band at
1 - WEIGHT (`evaluation.with_band`; WEIGHT 1 unless given), and steps joined by
`+` are applied in turn. Each is scored as `model.evaluate` scores: PSNR, SSIM, the
DINOv2 judge's perceptual distance and FD-DINOv2, the texture ratio, here all on every
crop (`model.evaluate` judges the first 8 of each photograph's), beside the network's
outputs with no pass after it and the classical fills named (and `--classical`).
Differences from `--reference` (the first variant unless named) are paired crop by crop.
`--photographs training` takes the crops from the training photographs instead, to choose
a setting on crops that the held-out scores then measure afresh. Writes
`<out>/compare.{md,json}`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

NONE = "no detail"  # the row of the network's outputs as they are


def variant(text: str) -> tuple:
    """A setting of the passes after the network, as the command line gives it: steps
    joined by `+`, each `SCALE:WEIGHT:CANDIDATES` (copied fine detail) or `METHOD:SCALE[:WEIGHT]`
    (a classical fill's band finer than SCALE at WEIGHT, `evaluation.with_band`); each checked."""
    from tritonsplat_inpaint.classical import PREFILLS

    steps = []
    for part in text.split("+"):
        fields = part.split(":")
        try:
            if fields[0] in PREFILLS and len(fields) in (2, 3):  # METHOD:SCALE[:WEIGHT]
                f, weight = int(fields[1]), float(fields[2]) if len(fields) == 3 else 1.0
                step = (fields[0], f) if len(fields) == 2 else (fields[0], f, weight)
                ok = 0 < weight <= 1
            else:  # SCALE:WEIGHT:CANDIDATES
                f, weight, k = fields
                f, weight, k = int(f), float(weight), int(k)
                step = (f, weight, k)
                ok = 0 < weight <= 2 and k >= 1
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected SCALE:WEIGHT:CANDIDATES such as 2:1:16 or "
                                             f"METHOD:SCALE[:WEIGHT] such as fsr:4 or fsr:4:0.6, joined by +, "
                                             f"got {text!r}") from None  # fmt: skip
        if f < 2 or f & (f - 1) or not ok:
            raise argparse.ArgumentTypeError(f"expected a scale a power of 2 from 2, a weight in (0, 2] (a band's in "
                                             f"(0, 1]) and at least 1 candidate, got {text!r}")  # fmt: skip
        steps.append(step)
    return tuple(steps)


def label(v: tuple) -> str:
    return "+".join(":".join(f"{x:g}" if isinstance(x, float) else str(x) for x in step) for step in v)


def apply(v: tuple, outputs, images, masks, fills: dict):
    """The network's `outputs` after the steps of the variant `v`; `fills`: the classical
    fills by method."""
    from tritonsplat_inpaint.evaluation import with_band, with_detail

    for step in v:
        if isinstance(step[0], str):
            outputs = with_band(outputs, images, masks, fills[step[0]], *step[1:])
        else:
            f, weight, k = step
            outputs = with_detail(outputs, images, masks, weight, f=f, candidates=k)
    return outputs


def markdown(summary: dict) -> str:
    ref = summary["reference"]
    lines = [f"The passes after the network (SCALE:WEIGHT:CANDIDATES: copied fine detail; METHOD:SCALE[:WEIGHT]: a "
             f"classical fill's band finer than SCALE px, at WEIGHT; + joins steps): {summary['crops']} "
             f"{summary.get('photographs', 'held-out')} crops a bucket ({summary['per_image']} of each photograph), "
             f"{summary['checkpoint']}; differences from {ref}, paired crop by crop.", "",
             "| bucket | variant | PSNR | minus reference (dB) | SSIM | perceptual | minus reference | FD-DINOv2 "
             "| texture |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for bucket, rows in summary["buckets"].items():
        for k, r in rows.items():
            d = r.get("minus_reference")
            diff = (f"{d['psnr']['mean']:+.3f} +- {d['psnr']['stderr']:.3f}", f"{d['perceptual']['mean']:+.4f} +- "
                    f"{d['perceptual']['stderr']:.4f}") if d else ("", "")  # fmt: skip
            lines.append(f"| {bucket} | {k} | {r['psnr']:.3f} | {diff[0]} | {r['ssim']:.4f} | {r['perceptual']:.4f} | "
                         f"{diff[1]} | {r['fd_dino']:.2f} | {r['texture']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tritonsplat.metrics import psnr, ssim
    from tritonsplat_inpaint.checkpoint import RELEASED, load_model
    from tritonsplat_inpaint.classical import PREFILLS
    from tritonsplat_inpaint.cli import set_threads, write_report
    from tritonsplat_inpaint.data import data_paths
    from tritonsplat_inpaint.evaluation import HeldOut, _judged, paired
    from tritonsplat_inpaint.perceptual import Judge

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=RELEASED, help="checkpoint or run folder")
    parser.add_argument("--per-image", type=int, default=8, help="crops per photograph")
    parser.add_argument("--variants", type=variant, nargs="+", default=[variant("2:1:1"), variant("2:1:16")],
                        help="SCALE:WEIGHT:CANDIDATES or METHOD:SCALE[:WEIGHT] (+ joins steps) of each setting to "
                        "compare")  # fmt: skip
    parser.add_argument("--reference", help="the row the others are differenced from: a variant, a classical method "
                        f"or {NONE!r} (default: the first variant)")  # fmt: skip
    parser.add_argument("--classical", nargs="*", default=[], choices=sorted(PREFILLS),
                        help="classical methods scored beside (those whose band a variant takes are scored anyway)")
    parser.add_argument("--photographs", choices=("held-out", "training"), default="held-out",
                        help="whose crops: the held-out photographs' or the training ones' (to choose a setting on)")
    parser.add_argument("--out", type=Path, default=Path("docs/model/detail_choice"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if len(set(args.variants)) < len(args.variants):
        parser.error(f"--variants: expected distinct settings, got {[label(v) for v in args.variants]}")
    bands = list(dict.fromkeys(args.classical + [step[0] for v in args.variants for step in v
                                                  if isinstance(step[0], str)]))  # fmt: skip
    ref = label(args.variants[0]) if args.reference is None else args.reference
    if ref not in [NONE, *bands, *map(label, args.variants)]:
        parser.error(f"--reference: expected {NONE!r}, a variant or a classical method scored "
                     f"({', '.join(bands) or 'none'}), got {ref!r}")  # fmt: skip
    set_threads(args.threads)
    ok, why = Judge.available()
    if not ok:
        raise SystemExit(f"no judge: {why}")
    net, cfg = load_model(args.ckpt)
    judge = Judge()
    photographs = data_paths(cfg)[0] if args.photographs == "training" else None
    held = HeldOut(cfg, args.per_image, methods=list(net.fills) + bands, photographs=photographs)  # what variants read
    summary = {"checkpoint": os.path.relpath(args.ckpt), "photographs": args.photographs, "per_image": args.per_image,
               "crops": len(held.images), "reference": ref, "buckets": {}}  # fmt: skip
    every = torch.arange(len(held.images))  # the judge scores every crop here
    truth = judge.features(held.images)
    for bucket, masks in held.masks.items():
        outputs = held.outputs(net, bucket)
        scores = {}
        fills = held.fills[bucket]
        plain = [(NONE, outputs)] + [(m, fills[m] * masks + held.images * (1 - masks)) for m in bands]
        for name, v in plain + [(label(v), v) for v in args.variants]:
            out = v if isinstance(v, torch.Tensor) else apply(v, outputs, held.images, masks, fills)
            judged = _judged(judge, {name: out}, held.images, masks, truth, every)[name]
            scores[name] = {"psnr": psnr(out, held.images), "ssim": ssim(out, held.images), **judged}
        rows = {}
        for k, s in scores.items():
            rows[k] = {name: float(v.mean()) if isinstance(v, torch.Tensor) else v for name, v in s.items()}
            if k != ref:
                rows[k]["minus_reference"] = {n: paired(s[n], scores[ref][n]) for n in ("psnr", "ssim", "perceptual")}
        summary["buckets"][bucket] = rows
        print(f"{bucket}: " + ", ".join(f"{k}: {r['psnr']:.3f} dB, {r['perceptual']:.4f}" for k, r in rows.items()),
              flush=True)  # fmt: skip
    write_report(args.out, "compare", summary, markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
