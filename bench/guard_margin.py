"""How far ahead on the guard's probe the blend must be to replace the network, measured on
big holes in held-out photographs that the real-size table does not use.

    OMP_NUM_THREADS=1 python -m bench.guard_margin [--ckpt RUN_OR_CHECKPOINT] [--width 768]

The guard (`infer._guard`) scores the network and its starting blend on copies of a big
hole laid over known pixels, and the better there fills the hole. The two often tie on
the probe to a few hundredths of a dB while differing by decibels in the hole, so the
choice is a coin toss where it matters. Here every held-out photograph of the default
catalogue except the nine of `bench.photographs` (resized to `--width` px) gets an object
of 8% and a third of the picture (`bench.photographs.hole`), and for each hole this
records the guard's probe scores (PSNR of the network and of the blend) and the hole's
PSNR with the network's fill, the blend's and Telea's (the fine detail off, so the fills
alone are compared). Any margin's choice follows from those: the blend fills only where it
is ahead on the probe by more than the margin. Writes `<out>/cases.jsonl` as it goes (a
stopped run resumes) and `<out>/results.{json,md}`: per margin, the mean hole PSNR, the
holes given to the blend, the choices that lost more than 0.5 dB against the other fill,
and the holes more than 0.5 dB behind Telea.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
from pathlib import Path

import numpy as np

MARGINS = (0.0, 0.25, 0.5, 1.0, 2.0, math.inf)  # dB; inf: the network always (no guard)
KINDS = ("object 8%", "third 33%")


def cases() -> list[tuple[str, Path]]:
    """The held-out photographs not in the real-size table: (name, path)."""
    from tritonsplat_inpaint.data import default_split, photograph_name

    from .photographs import _sources

    table = {p.resolve() for p in _sources().values()}
    return [(photograph_name(p), p) for p in default_split()[1] if p.resolve() not in table]


def measure_one(net, name: str, path: Path, width: int, kind: str, seed: int) -> dict:
    import torch
    from PIL import Image

    from tritonsplat_inpaint.classical import telea
    from tritonsplat_inpaint.infer import _psnr, inpaint
    from tritonsplat_inpaint.pictures import hole_psnr

    from .photographs import hole

    img = Image.open(path).convert("RGB")
    w = min(width, img.width)
    img = img.resize((w, round(img.height * w / img.width)), Image.Resampling.LANCZOS)
    image = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255
    m = torch.from_numpy(hole(kind, image.shape[1], image.shape[2], seed=seed) > 0)
    out, guarded = inpaint(net, image, m, detail=0.0)
    probes = [s["probe_mse"] for s in guarded.scales if s["scale"] < 1]
    assert len(guarded.scales) == 1, "one ellipse is one hole, filled at one scale"
    probe = {k: _psnr(v) for k, v in probes[0].items()} if probes and probes[0] else None
    # the guarded fill is the chosen one's, the same run as that fill alone: only the other is run again
    chosen = guarded.scales[0]["method"]
    again = {"model": {"guard": False}, "blend": {"method": "blend"}}
    fills = {fill: out if fill == chosen else inpaint(net, image, m, detail=0.0, **kw)[0] for fill, kw in again.items()}
    return {
        "case": f"{name} {w} {kind}", "pixels": int(m.sum()), "levels": [s["scale"] for s in guarded.scales],
        "probe": probe,  # None: the hole was filled at full resolution, or no copy of it fitted
        "model": hole_psnr(fills["model"], image, m),
        "blend": hole_psnr(fills["blend"], image, m),
        "telea": hole_psnr(telea(image * ~m, m[None].float()), image, m),
    }  # fmt: skip


def choice(row: dict, margin: float) -> str:
    """The fill a guard with this margin gives the hole: the network where the hole is
    filled at full resolution (no guard there); else the blend where it is ahead of the
    network on the probe by more than `margin` dB, or where no copy of the hole fitted (as
    the guard does); the network otherwise."""
    if math.isinf(margin):
        return "model"
    if row["probe"] is None:
        return "blend" if len(row["levels"]) and min(row["levels"]) < 1 else "model"
    return "blend" if row["probe"]["blend"] > row["probe"]["model"] + margin else "model"


def summary(rows: list[dict]) -> dict:
    out = {}
    for margin in MARGINS:
        picked = [(r, choice(r, margin)) for r in rows]
        got = [r[c] for r, c in picked]
        out["no guard" if math.isinf(margin) else f"{margin:g} dB"] = {
            "mean_psnr": float(np.mean(got)),
            "to_blend": sum(c == "blend" for _, c in picked),
            "lost_over_0.5": sum(r[c] < r["blend" if c == "model" else "model"] - 0.5 for r, c in picked),
            "behind_telea_over_0.5": sum(g < r["telea"] - 0.5 for g, (r, _) in zip(got, picked, strict=True)),
        }
    out["blend always"] = {"mean_psnr": float(np.mean([r["blend"] for r in rows])), "to_blend": len(rows),
                           "lost_over_0.5": sum(r["blend"] < r["model"] - 0.5 for r in rows),
                           "behind_telea_over_0.5": sum(r["blend"] < r["telea"] - 0.5 for r in rows)}  # fmt: skip
    out["Telea"] = {"mean_psnr": float(np.mean([r["telea"] for r in rows]))}
    out["the better of the two (oracle)"] = {"mean_psnr": float(np.mean([max(r["model"], r["blend"]) for r in rows]))}
    return out


def markdown(results: dict) -> str:
    lines = [f"Measured {results['date']} on {results['machine']}, {results['checkpoint']} "
             f"(`python -m bench.guard_margin`): {len(results['rows'])} big holes in "
             f"{len(results['rows']) // len(KINDS)} held-out photographs at {results['width']} px, "
             "the fine detail off.",
             "", "| guard: the blend fills where it leads on the probe by more than | mean hole PSNR (dB) | "
             "holes given to the blend | choices > 0.5 dB worse than the other | holes > 0.5 dB behind Telea |",
             "| --- | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name, s in results["summary"].items():
        cells = [f"{s[k]}" if k in s else "" for k in ("to_blend", "lost_over_0.5", "behind_telea_over_0.5")]
        lines.append(f"| {name} | {s['mean_psnr']:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "| case | probe: model | probe: blend | hole: model | hole: blend | hole: Telea |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results["rows"]:
        p = r["probe"] or {}
        probe = [f"{p[k]:.2f}" if k in p else "" for k in ("model", "blend")]
        lines.append(f"| {r['case']} | {probe[0]} | {probe[1]} | {r['model']:.2f} | {r['blend']:.2f} | "
                     f"{r['telea']:.2f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.guard_margin", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint or run folder (default: the release)")
    parser.add_argument("--width", type=int, default=768, help="the photographs' width (px; smaller ones as they are)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photographs")
    parser.add_argument("--out", type=Path, default=Path("docs/model/guard_margin"))
    args = parser.parse_args(argv)
    import os

    import torch
    from tqdm import tqdm

    from tritonsplat_inpaint.checkpoint import RELEASED, load_model

    from .photographs import machine

    torch.set_num_threads(1)
    net, _ = load_model(args.ckpt) if args.ckpt else load_model()
    checkpoint = os.path.relpath(args.ckpt or RELEASED)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "cases.jsonl"
    done = {json.loads(line)["key"]: json.loads(line) for line in log.read_text().splitlines()} if log.is_file() else {}
    todo = [(i, name, path, kind) for i, (name, path) in enumerate(cases()[: args.limit]) for kind in KINDS]
    rows = []
    for i, name, path, kind in tqdm(todo, desc="big holes", unit="hole"):
        key = f"{checkpoint}|{name}|{kind}|{args.width}"  # a rerun resumes the same checkpoint's rows only
        if key not in done:
            done[key] = {"key": key} | measure_one(net, name, path, args.width, kind, seed=100 + i)
            with log.open("a") as f:
                f.write(json.dumps(done[key]) + "\n")
        rows.append(done[key])
    results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": machine(), "checkpoint": checkpoint, "width": args.width,
               "rows": rows, "summary": summary(rows)}  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(results))
    print(markdown(results).split("\n\n| case")[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
