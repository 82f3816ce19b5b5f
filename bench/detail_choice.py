"""How the fine detail's blocks are chosen: by the guide alone against by agreement with
the detail around them, on the same network outputs, crops and masks.

    OMP_NUM_THREADS=1 python -m bench.detail_choice [--ckpt RELEASE] [--per-image 8] [--candidates 1 16]

The released network's outputs on the held-out crops (`per_image` of each photograph, the
evaluation's fixed masks) are given the crop's own fine detail (`evaluation.with_detail`,
weight 1 at scale 2) with each of `--candidates` in turn as its candidate count: 1 is
the guide alone (each block takes the known block most like it at the working scale), more
lets the block's agreement with the detail around it choose among that many. Each is
scored as `model.evaluate` scores: PSNR, the DINOv2 judge's perceptual distance and
FD-DINOv2, the texture ratio, here all on every crop (`model.evaluate` judges the first 8
of each photograph's); differences from the first are paired crop by crop. Writes
`<out>/compare.{md,json}`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch


def markdown(summary: dict) -> str:
    ref = summary["reference"]
    lines = [f"Fine detail's block choice: {summary['crops']} held-out crops a bucket ({summary['per_image']} of each "
             f"photograph), {summary['checkpoint']}; differences from {ref} candidate(s), paired crop by crop.", "",
             "| bucket | candidates | PSNR | minus reference (dB) | perceptual | minus reference | FD-DINOv2 "
             "| texture |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for bucket, rows in summary["buckets"].items():
        for k, r in rows.items():
            d = r.get("minus_reference")
            diff = (f"{d['psnr']['mean']:+.3f} +- {d['psnr']['stderr']:.3f}", f"{d['perceptual']['mean']:+.4f} +- "
                    f"{d['perceptual']['stderr']:.4f}") if d else ("", "")  # fmt: skip
            lines.append(f"| {bucket} | {k} | {r['psnr']:.3f} | {diff[0]} | {r['perceptual']:.4f} | {diff[1]} | "
                         f"{r['fd_dino']:.2f} | {r['texture']:.3f} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from tritonsplat.metrics import psnr
    from tritonsplat_inpaint import detail
    from tritonsplat_inpaint.checkpoint import RELEASED, load_model
    from tritonsplat_inpaint.cli import set_threads, write_report
    from tritonsplat_inpaint.evaluation import HeldOut, _judged, paired, with_detail
    from tritonsplat_inpaint.perceptual import Judge

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=RELEASED, help="checkpoint or run folder")
    parser.add_argument("--per-image", type=int, default=8, help="crops per held-out photograph")
    parser.add_argument("--candidates", type=int, nargs="+", default=[1, detail.CANDIDATES],
                        help="candidate counts to compare, the first the reference")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("docs/model/detail_choice"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if min(args.candidates) < 1 or len(set(args.candidates)) < len(args.candidates):
        parser.error(f"--candidates: expected distinct counts of at least 1, got {args.candidates}")
    set_threads(args.threads)
    ok, why = Judge.available()
    if not ok:
        raise SystemExit(f"no judge: {why}")
    net, cfg = load_model(args.ckpt)
    judge = Judge()
    held = HeldOut(cfg, args.per_image, methods=list(net.fills))  # the network's own fills only
    ref = str(args.candidates[0])
    summary = {"checkpoint": os.path.relpath(args.ckpt), "per_image": args.per_image, "crops": len(held.images),
               "reference": ref, "buckets": {}}  # fmt: skip
    every = torch.arange(len(held.images))  # the judge scores every crop here
    truth = judge.features(held.images)
    for bucket, masks in held.masks.items():
        outputs = held.outputs(net, bucket)
        scores = {}
        for k in args.candidates:
            detailed = with_detail(outputs, held.images, masks, 1.0, candidates=k)
            judged = _judged(judge, {k: detailed}, held.images, masks, truth, every)[k]
            scores[str(k)] = {"psnr": psnr(detailed, held.images), **judged}
        rows = {}
        for k, s in scores.items():
            rows[k] = {name: float(v.mean()) if isinstance(v, torch.Tensor) else v for name, v in s.items()}
            if k != ref:
                rows[k]["minus_reference"] = {n: paired(s[n], scores[ref][n]) for n in ("psnr", "perceptual")}
        summary["buckets"][bucket] = rows
        print(f"{bucket}: " + ", ".join(f"{k}: {r['psnr']:.3f} dB, {r['perceptual']:.4f}" for k, r in rows.items()),
              flush=True)  # fmt: skip
    write_report(args.out, "compare", summary, markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
