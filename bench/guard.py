"""The guard's choice on a set of big holes: which fill each variant of it picks, and what
that gives in the hole, against Telea, the blend and the network unguarded.

    OMP_NUM_THREADS=1 python -m bench.guard [--out docs/model/guard]

The 12 big holes of `bench.photographs` at 500 and 1000 px (six held-out photographs, an
object of 8% and a third of the picture each), filled by the released checkpoint on the
scale-adaptive plan with the fine detail off (`detail=0`: the guard alone is compared),
under four variants of the guard: one copy of the holes, the model against its blend
(the guard before 2026-12-06); four copies and a half-size copy where no whole one fits
(the guard of 2026-12-06); and each of those with the classical fills as candidates too,
all without the margin the guard has had since (`infer.Guard.margin_db`, measured by
`bench.guard_margin`): the best fill on the probe wins. PSNR over the hole's pixels.
Writes results.json and results.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

CLASSICAL = ("telea", "navier-stokes", "biharmonic", "fsr")
VARIANTS = {  # name: (the fills weighed, copies of the holes, sizes of the copy), each without the margin
    "one copy, model or blend (before)": (("model", "blend"), 1, (1,)),
    "four copies, half size if needed, model or blend": (("model", "blend"), 4, (1, 2)),
    "four copies, half size if needed, + classical fills": (("model", "blend", *CLASSICAL), 4, (1, 2)),
    "one copy, half size if needed, + classical fills": (("model", "blend", *CLASSICAL), 1, (1, 2)),
}


def measure() -> list[dict]:
    import torch

    from tritonsplat_inpaint import infer
    from tritonsplat_inpaint.checkpoint import load_model
    from tritonsplat_inpaint.classical import telea
    from tritonsplat_inpaint.pictures import hole_psnr

    from .photographs import HOLES, PICTURES, hole, photograph

    net, _ = load_model()
    rows = []
    for width in (500, 1000):
        for name in PICTURES[width]:
            truth = photograph(name, width)
            image = torch.from_numpy(truth.copy()).permute(2, 0, 1).float() / 255
            for j, kind in enumerate(HOLES):
                if kind == "scratches":
                    continue
                m = torch.from_numpy(hole(kind, *truth.shape[:2], seed=j) > 0)

                def score(out, m=m, image=image):
                    return hole_psnr(out, image, m)

                row = {"case": f"{name} {width} {kind}", "telea": score(telea(image * ~m, m[None].float()))}
                for label, (fills, copies, shrinks) in VARIANTS.items():
                    guard = infer.Guard(fills=fills, margin_db=0.0, shrinks=shrinks, copies=copies)
                    out, report = infer.inpaint(net, image, m, detail=0.0, guard=guard)
                    row[label] = {"psnr": score(out), "chosen": [s["method"] for s in report.scales if s["scale"] < 1]}
                row["no guard"] = score(infer.inpaint(net, image, m, detail=0.0, guard=False)[0])
                row["blend"] = score(infer.inpaint(net, image, m, detail=0.0, method="blend")[0])
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def markdown(results: dict) -> str:
    rows = results["rows"]
    lines = [f"Measured {results['date']} on {results['machine']} (`python -m bench.guard`).", "",
             "PSNR in the hole (dB), the fine detail off; in brackets, what filled the reduced scale.", "",
             "| case | Telea | blend | no guard | " + " | ".join(VARIANTS) + " |",
             "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in VARIANTS) + " |"]  # fmt: skip
    for r in rows:
        cells = [f"{r[v]['psnr']:.2f} ({', '.join(r[v]['chosen'])})" for v in VARIANTS]
        lines.append(f"| {r['case']} | {r['telea']:.2f} | {r['blend']:.2f} | {r['no guard']:.2f} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    mean = [f"**{np.mean([r[v]['psnr'] for r in rows]):.2f}**" for v in VARIANTS]
    behind = [f"{sum(r[v]['psnr'] < r['telea'] - 0.5 for r in rows)}" for v in VARIANTS]
    lines.append(f"| mean | {np.mean([r['telea'] for r in rows]):.2f} | {np.mean([r['blend'] for r in rows]):.2f} | "
                 f"{np.mean([r['no guard'] for r in rows]):.2f} | " + " | ".join(mean) + " |")  # fmt: skip
    lines.append("| cases > 0.5 dB behind Telea | | | "
                 f"{sum(r['no guard'] < r['telea'] - 0.5 for r in rows)} | " + " | ".join(behind) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.guard", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/model/guard"))
    args = parser.parse_args(argv)
    import torch

    from .photographs import machine

    torch.set_num_threads(1)
    results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": machine(), "rows": measure()}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
