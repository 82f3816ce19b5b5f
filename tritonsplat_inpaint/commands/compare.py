"""Compare evaluations of several checkpoints on the same held-out crops: each one's
scores per mask bucket and its paired difference from a reference, crop by crop.

    python -m model.compare runs/eval-a runs/eval-b [runs/eval-c ...] [--names a b c]
                            [--reference a] [--out runs/compare]

Each argument is a folder written by `model.evaluate` (or its `results.json`). The
evaluations must have scored the same held-out photographs with the same number of crops
each (so the same crops and masks): the differences are then paired, and a difference of
a few standard errors separates two checkpoints where their standard errors against the
classical methods alone could not (the crop-to-crop spread cancels). Writes compare.md
and compare.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..cli import Defaults, add_debug, entry, prog, write_report
from ..evaluation import BLEND, COLUMNS, MODEL, PER_CROP, paired


def load_results(path: Path) -> dict:
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"evaluations: expected a folder written by model.evaluate (or its results.json), "
                                f"got {str(path)!r}, which holds no results.json")
    return json.loads(file.read_text())


def compare(results: dict[str, dict], reference: str) -> dict:
    """Per evaluation and bucket: the model's mean scores, its gain over its own starting
    blend, and (for all but the reference) the paired difference from the reference's
    model on the same crops, per score that both have per crop."""
    import torch

    if reference not in results:
        raise ValueError(f"--reference: expected one of {', '.join(results)}, got {reference!r}")
    ref = results[reference]
    for name, r in results.items():
        # the crops' digest where both have it (evaluations since 2026-12-06), else what
        # decides the crops but the photographs' contents and the crop size
        keys = ("crops",) if "crops" in r and "crops" in ref else ("held_out", "per_image", "images")
        for key, mine, theirs in [(k, r.get(k), ref.get(k)) for k in keys] + [
                ("buckets", list(r["buckets"]), list(ref["buckets"]))]:  # fmt: skip
            if mine != theirs:
                raise ValueError(f"evaluations: {name} and {reference} scored different crops ({key} differs: "
                                 f"{mine!r} against {theirs!r}); evaluate both with the same "
                                 "--per-image on the same held-out photographs")
    # the judge's input size is recorded since 2026-12-06: compared where both evaluations have it
    sizes = {r.get("judge_input") for r in results.values()} - {None}
    judged = {name: (r.get("judge"), r.get("judged_crops"), r.get("judge_input") if len(sizes) > 1 else None)
              for name, r in results.items()}  # fmt: skip
    rows: dict = {}
    for name, r in results.items():
        rows[name] = {}
        for bucket, methods in r["buckets"].items():
            ours = methods[MODEL]
            row = {k: ours[k] for k in COLUMNS if k in ours}
            if BLEND in methods:
                row["psnr_over_blend"] = paired(torch.tensor(ours["psnr_per_image"]),
                                                torch.tensor(methods[BLEND]["psnr_per_image"]))
            if name != reference:
                theirs = ref["buckets"][bucket][MODEL]
                same_judge = judged[name] == judged[reference]  # perceptual scores pair only then
                row["minus_reference"] = {
                    k: paired(torch.tensor(ours[f"{k}_per_image"]), torch.tensor(theirs[f"{k}_per_image"]))
                    for k in PER_CROP
                    if f"{k}_per_image" in ours and f"{k}_per_image" in theirs and (k != "perceptual" or same_judge)
                }
            rows[name][bucket] = row
    return {"reference": reference, "per_image": ref.get("per_image"), "images": ref.get("images"),
            "evaluations": rows}  # fmt: skip


def markdown(summary: dict) -> str:
    rows = summary["evaluations"]
    ref = summary["reference"]
    buckets = list(next(iter(rows.values())))
    both = [f"{score} {b}" for b in buckets for score in ("PSNR", "SSIM")]
    differenced = {name: per for name, per in rows.items() if name != ref}
    # the perceptual distance too where every difference has it (the same judge on the same crops)
    scores = [("psnr", 3), ("ssim", 5)] + [("perceptual", 4)] * all(
        "perceptual" in per[b]["minus_reference"] for per in differenced.values() for b in buckets)
    return "\n".join([
        f"{summary['per_image']} crops of each held-out photograph, the same crops and masks for every "
        f"evaluation. PSNR (dB) and SSIM of the model per hole bucket; its PSNR over its own starting blend; "
        f"and its paired difference from **{ref}** on the same crops, +- the standard error of the mean "
        "difference (the DINOv2 perceptual distance too where both were judged alike: lower is better).",
        "",
        *_table(["evaluation", *both], {name: [f"{per[b][k]:.{d}f}" for b in buckets
                                               for k, d in (("psnr", 3), ("ssim", 4))] for name, per in rows.items()}),
        "",
        *_table(["PSNR over its blend", *buckets],
                {name: [_pm(per[b]["psnr_over_blend"], 3) if "psnr_over_blend" in per[b] else "-" for b in buckets]
                 for name, per in rows.items()}),
        "",
        *_table([f"minus {ref}", *(f"{k if k == 'perceptual' else k.upper()} {b}" for b in buckets for k, _ in scores)],
                {name: [_pm(per[b]["minus_reference"][k], d) for b in buckets for k, d in scores]
                 for name, per in differenced.items()}),
    ])  # fmt: skip


def _table(heads: list[str], rows: dict[str, list[str]]) -> list[str]:
    """A markdown table: a row per name, its first column the name, the others right-aligned."""
    return ["| " + " | ".join(heads) + " |", "| --- |" + " ---: |" * (len(heads) - 1),
            *(f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows.items())]  # fmt: skip


def _pm(p: dict, digits: int) -> str:
    return f"{p['mean']:+.{digits}f} +- {p['stderr']:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog("compare"), description=__doc__.splitlines()[0],
                                     formatter_class=Defaults)
    parser.add_argument("evaluations", nargs="+", type=Path, help="folders written by model.evaluate")
    parser.add_argument("--names", nargs="*", help="a name for each evaluation (default: the folders' names)")
    parser.add_argument("--reference", help="the evaluation the others are differenced from (default: the first)")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"), help="folder for compare.md and .json")
    add_debug(parser)
    args = parser.parse_args(argv)
    if len(args.evaluations) < 2:
        parser.error(f"evaluations: expected at least 2 folders to compare, got {len(args.evaluations)}")
    names = args.names or [p.name if p.is_dir() else p.parent.name for p in args.evaluations]
    if len(names) != len(args.evaluations):
        parser.error(f"--names: expected one name per evaluation ({len(args.evaluations)}), got {len(names)}")
    if len(set(names)) != len(names):
        parser.error(f"--names: expected distinct names, got {' '.join(names)}")
    results = {name: load_results(path) for name, path in zip(names, args.evaluations, strict=True)}
    summary = compare(results, args.reference or names[0])
    write_report(args.out, "compare", summary, markdown(summary))
    return 0


def run() -> int:
    return entry(main)


if __name__ == "__main__":
    raise SystemExit(run())
