"""Inpainting real photographs at their own sizes: the model against classical methods.

    OMP_NUM_THREADS=1 python -m bench.photographs [--out docs/model/photographs] [--widths 500 1000 4000]
    cp docs/model/photographs/results.json /tmp/earlier.json
    OMP_NUM_THREADS=1 python -m bench.photographs --ckpt RUN --reuse /tmp/earlier.json

(the second, for a new checkpoint, takes Telea's and biharmonic's scores from the earlier
run, case by case, instead of measuring them again; the earlier file is copied aside
first, as the run rewrites its --out's results.json).

Photographs: the default catalogue's held-out photographs (`tritonsplat_inpaint.data.HELD_OUT`:
never seen in training), three per width: at 500 px wide Grace Hopper (matplotlib's) and two
Lomiri wallpapers (Picture 0B, Greentock); at 1000 px ColdRipple and Grey (Plasma) and Wine
(Lomiri); at 4000 x 3000 Kleiber, Aitzgorri and Friends (Lomiri; a 4:3 crop, resized).
The wallpapers need `apt-get install plasma-workspace-wallpapers lomiri-wallpapers`.
Holes, scaled with the picture: thin scratches (six polylines about 0.4% of the width
thick), an object (an ellipse of 8% of the area) and a third of the picture (an ellipse
of 33%).

Methods: OpenCV's Telea and scikit-image's biharmonic at full resolution (biharmonic
only up to 250,000 hole pixels: its sparse solve grows past minutes and gigabytes
beyond), the network's classical starting blend and the network itself on the
scale-adaptive, windowed plan of `tritonsplat_inpaint.infer` (with its guard, as
`model.inpaint` runs it, and without; with FSR's band finer than 4 working pixels mixed
into the network's own at 0.6 rather than in place of it, `--band-weight 0.6`; and with
the network's own band alone, `model.inpaint --band none`), and the network run on
the whole photograph at full resolution (what `model.inpaint` did before the plan; up to
1000 px).

Each run is its own process, so that its peak memory (the process's resident-set high-water
mark, VmHWM: everything it holds, Python and libraries included) is its own; time is
the run's wall time after start-up and checkpoint loading. PSNR is over the hole's pixels
only, on the 8-bit result as written. Writes results.json, results.md and, for one
1000 px case, the full-size input and output pictures.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BIHARMONIC_MAX = 250_000
FULL_RES_MAX_WIDTH = 1000
METHODS = ["telea", "biharmonic", "blend", "model", "model-mixed-band", "model-own-band", "model-smooth",
           "model-unguarded", "model-full-res"]
TITLES = {
    "telea": "Telea (full res)",
    "biharmonic": "biharmonic (full res)",
    "blend": "starting blend (adaptive)",
    "model": "**model (adaptive, guarded)**",
    "model-mixed-band": "model, FSR's fine band at 0.6",
    "model-own-band": "model, its own fine band",
    "model-smooth": "model, no detail",
    "model-unguarded": "model (adaptive, no guard)",
    "model-full-res": "model at full res (before)",
}
MODEL_METHODS = ("blend", "model", "model-mixed-band", "model-own-band", "model-smooth", "model-unguarded",
                 "model-full-res")
HOLES = ["scratches", "object 8%", "third 33%"]
EXAMPLE = ("ColdRipple", 1000, "third 33%")


def _sources() -> dict[str, Path]:
    import matplotlib.cbook

    from tritonsplat_inpaint.data import BACKGROUNDS, WALLPAPERS

    plasma = "{}/contents/images/2560x1600.jpg"
    return {
        "grace-hopper": Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
        "Picture_0B": BACKGROUNDS / "Picture_0B_by_freespace.jpg",
        "greentock": BACKGROUNDS / "greentock_by_Peter_Nerlich.jpg",
        "ColdRipple": WALLPAPERS / plasma.format("ColdRipple"),
        "Grey": WALLPAPERS / plasma.format("Grey"),
        "Wine": BACKGROUNDS / "Wine_by_Jakkub_Mede.jpg",
        "Kleiber": BACKGROUNDS / "Kleiber_by_Lukas_Baubkus.jpg",
        "aitzgorri": BACKGROUNDS / "aitzgorri_by_Aitzol_Berasategi.jpg",
        "friends": BACKGROUNDS / "friends_by_Aitzol_Berasategi.jpg",
    }


PICTURES = {500: ["grace-hopper", "Picture_0B", "greentock"], 1000: ["ColdRipple", "Grey", "Wine"],
            4000: ["Kleiber", "aitzgorri", "friends"]}  # fmt: skip


def photograph(name: str, width: int) -> np.ndarray:
    from PIL import Image

    img = Image.open(_sources()[name]).convert("RGB")
    if width == 4000:  # a central 4:3 crop (landscape), resized to 4000 x 3000
        w, h = min(img.width, img.height * 4 // 3), min(img.height, img.width * 3 // 4)
        left, top = (img.width - w) // 2, (img.height - h) // 2
        img = img.crop((left, top, left + w, top + h))
        return np.asarray(img.resize((4000, 3000), Image.Resampling.LANCZOS))
    return np.asarray(img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS))


def hole(kind: str, h: int, w: int, seed: int) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    if kind == "scratches":
        thick = max(2, round(0.004 * w))
        for _ in range(6):
            points = [(rng.uniform(0, w), rng.uniform(0, h))]
            for _ in range(3):
                x, y = points[-1]
                angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.3) * w
                points.append(
                    (np.clip(x + length * np.cos(angle), 0, w - 1), np.clip(y + length * np.sin(angle), 0, h - 1))
                )
            cv2.polylines(mask, [np.array(points, np.int32)], False, 255, thick)
        return mask
    area = {"object 8%": 0.08, "third 33%": 0.33}[kind] * h * w
    a = np.sqrt(area / np.pi * 1.5)  # semi-axes 1.5 : 1
    centre = (int(w * rng.uniform(0.35, 0.65)), int(h * rng.uniform(0.35, 0.65)))
    cv2.ellipse(mask, centre, (int(a), int(area / np.pi / a)), float(rng.uniform(0, 180)), 0, 360, 255, -1)
    return mask


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024


def run_one(method: str, image: Path, mask: Path, out: Path, ckpt: Path | None = None) -> dict:
    """One method on one pair, in this process (the model's methods with `ckpt`, a
    checkpoint or run folder; the release when None): {seconds, peak_mb}."""
    import torch

    from tritonsplat_inpaint.classical import biharmonic, telea
    from tritonsplat_inpaint.images import compose, read_image, read_mask, write_image

    net = None
    if method in MODEL_METHODS:
        from tritonsplat_inpaint.checkpoint import load_model

        net, _ = load_model(ckpt) if ckpt else load_model()
    start = time.perf_counter()
    picture = read_image(image)
    weight, _ = read_mask(mask, picture.size)
    hole = torch.from_numpy(weight > 0)
    if method == "telea":
        filled = telea(picture.rgb, hole[None].float())
    elif method == "biharmonic":
        filled = biharmonic(picture.rgb, hole[None].float())
    else:
        from tritonsplat_inpaint.infer import inpaint

        kw = {"radius": 1e9, "tile": 1 << 20} if method == "model-full-res" else {}
        kw |= {"guard": False} if method == "model-unguarded" else {}
        kw |= {"detail": 0.0} if method == "model-smooth" else {}
        kw |= {"band": None} if method == "model-own-band" else {}
        kw |= {"band_weight": 0.6} if method == "model-mixed-band" else {}
        filled, report = inpaint(net, picture.rgb, hole, method="blend" if method == "blend" else "model", **kw)
        chosen = [s["method"] for s in report.scales if s["scale"] < 1]
    write_image(compose(picture, filled, weight), out)
    done = {"seconds": time.perf_counter() - start, "peak_mb": _peak_mb()}
    return done | ({"reduced_scales_filled_by": chosen} if method in MODEL_METHODS else {})


def scores_in_hole(out: Path, truth: np.ndarray, mask: np.ndarray) -> dict:
    """{psnr: over the hole's pixels, texture: the fill's Laplacian energy in the hole
    over the truth's (`perceptual.texture_ratio`)}, on the result as written."""
    import torch
    from PIL import Image

    from tritonsplat_inpaint.perceptual import texture_ratio

    result = np.asarray(Image.open(out).convert("RGB"))
    a, b = result.astype(np.float64)[mask > 0], truth.astype(np.float64)[mask > 0]

    def tensor(x):
        return torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].float() / 255  # a writable copy

    hole = torch.from_numpy(mask > 0)[None, None].float()
    return {"psnr": float(10 * np.log10(255.0**2 / np.mean((a - b) ** 2))),
            "texture": texture_ratio(tensor(result), tensor(truth), hole)}  # fmt: skip


def machine() -> str:
    cpu = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = re.search(r"Model name:\s+(.*)", out).group(1).strip()
    except Exception:  # noqa: BLE001
        pass
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", "all")
    return (f"{cpu}, {os.cpu_count()} cores, OMP_NUM_THREADS={threads}; torch {torch.__version__}, "
            f"Python {platform.python_version()}")  # fmt: skip


def markdown(results: dict) -> str:
    methods = [m for m in METHODS if any(m in r["methods"] for r in results["runs"])]
    lines = [
        f"Measured {results['date']} on {results['machine']}; the model: {results.get('checkpoint', 'the release')}.",
        "",
        "PSNR in the hole (dB, mean over the pictures; higher is better), time (s) and peak memory (MB) per run.",
        "",
    ]
    for method in METHODS:
        ran = [r["methods"][method] for r in results["runs"] if method in r["methods"]]
        sources = []  # each earlier run the scores were taken from, in the order first met
        for v in ran:
            if "reused_from" in v and v["reused_from"] not in sources:
                sources.append(v["reused_from"])
        for src in sources:
            taken = sum(v.get("reused_from") == src for v in ran)
            lines += [f"{method}: {taken} of {len(ran)} cases taken from {src['file']} (`--reuse`), as measured "
                      f"{src['date']} on {src['machine']}.", ""]  # fmt: skip
    lines += [
        "| width | hole | hole px | " + " | ".join(TITLES[m] for m in methods) + " | model: time, peak MB |",
        "| ---: | --- | ---: | " + " | ".join("---:" for _ in methods) + " | ---: |",
    ]
    for width in sorted({r["width"] for r in results["runs"]}):
        for kind in HOLES:
            rows = [r for r in results["runs"] if r["width"] == width and r["hole"] == kind]
            if not rows:
                continue
            cells = []
            for m in methods:
                got = [r["methods"][m]["psnr"] for r in rows if r["methods"].get(m, {}).get("psnr") is not None]
                cells.append(f"{np.mean(got):.2f}" if len(got) == len(rows) else "not run")
            model = [r["methods"]["model"] for r in rows]
            pixels = np.mean([r["hole_pixels"] for r in rows])
            cost = f"{np.mean([m['seconds'] for m in model]):.1f} s, {max(m['peak_mb'] for m in model):.0f}"
            lines.append(f"| {width} | {kind} | {pixels:,.0f} | " + " | ".join(cells) + f" | {cost} |")
    big = [r for r in results["runs"] if r["hole"] != "scratches"]
    if big and "model" in methods:
        lines += ["", f"Big holes (objects and thirds, {len(big)} cases): mean PSNR in the hole, and the cases where "
                  "each method is more than 0.5 dB behind Telea:", "",
                  "| | " + " | ".join(TITLES[m] for m in methods) + " |",
                  "| --- | " + " | ".join("---:" for _ in methods) + " |"]  # fmt: skip
        mean, behind = [], []
        for m in methods:
            got = [(r["methods"][m]["psnr"], r["methods"]["telea"]["psnr"]) for r in big
                   if m in r["methods"] and "telea" in r["methods"]]  # fmt: skip
            full = len(got) == len(big)
            mean.append(f"{np.mean([g for g, _ in got]):.2f}" if full else "not run")
            behind.append(f"{sum(g < t - 0.5 for g, t in got)} of {len(got)}" if got else "not run")
        lines += ["| mean PSNR | " + " | ".join(mean) + " |", "| > 0.5 dB behind Telea | " + " | ".join(behind) + " |"]
        picks = [p for r in big for p in r["methods"]["model"].get("reduced_scales_filled_by", [])]
        if picks:
            tally = ", ".join(f"{name} {picks.count(name)}" for name in dict.fromkeys(picks))
            lines += ["", f"The guard's choice at the reduced scales of the big holes: {tally}."]
    lines += ["", "Texture ratio in the hole (the fill's mean absolute Laplacian over the truth's, pooled over the "
              "pictures; 1 is the photograph's own texture, 0 a flat fill):", ""]  # fmt: skip

    def texture(got: list[dict], rows: list[dict]) -> str:
        return f"{np.mean([g['texture'] for g in got]):.2f}" if len(got) == len(rows) else "not run"

    def cost(got: list[dict], rows: list[dict]) -> str:
        return f"{max(g['seconds'] for g in got):.1f} s, {max(g['peak_mb'] for g in got):.0f} MB" if got else "not run"

    lines += _by_case(results, methods, texture, "texture")
    lines += ["", "Time (s) and peak memory (MB) of every method, the largest over the pictures:", ""]
    lines += _by_case(results, methods, cost, "seconds")
    return "\n".join(lines)


def _by_case(results: dict, methods: list[str], cell, key: str) -> list[str]:
    """A table with a row per width and hole and a column per method: `cell(measures, rows)`
    of the pictures' measures that have `key`."""
    lines = ["| width | hole | " + " | ".join(TITLES[m] for m in methods) + " |",
             "| ---: | --- | " + " | ".join("---:" for _ in methods) + " |"]  # fmt: skip
    for width in sorted({r["width"] for r in results["runs"]}):
        for kind in HOLES:
            rows = [r for r in results["runs"] if r["width"] == width and r["hole"] == kind]
            if rows:
                cells = [cell([r["methods"][m] for r in rows if r["methods"].get(m, {}).get(key) is not None], rows)
                         for m in methods]  # fmt: skip
                lines.append(f"| {width} | {kind} | " + " | ".join(cells) + " |")
    return lines


def fingerprint(truth: np.ndarray, mask: np.ndarray) -> str:
    """What identifies a case's pixels: the sha256 of the photograph as scored and of its hole."""
    digest = hashlib.sha256(np.ascontiguousarray(truth).tobytes())
    digest.update(np.ascontiguousarray(mask).tobytes())
    return digest.hexdigest()[:16]


def _case_key(row: dict, method: str) -> tuple:
    return row["picture"], row["width"], row["hole"], row["fingerprint"], method


def _earlier_classical(path: Path) -> dict:
    """The classical methods' scores in an earlier results.json, by case: what `--reuse` takes
    instead of running them again. A case is matched on its picture, width, hole and the
    fingerprint of its pixels and hole, so a changed photograph or hole runs afresh. Each
    score taken keeps where it was measured (the file, its date and machine)."""
    if not path.is_file():
        raise SystemExit(f"--reuse: no results file at {path} (expected a results.json of bench.photographs)")
    earlier = json.loads(path.read_text())
    if any("fingerprint" not in row for row in earlier["runs"]):
        raise SystemExit(f"--reuse: {path} was written before cases carried the fingerprint of their pixels, so "
                         "its scores cannot be matched to these cases; run once without --reuse")  # fmt: skip
    source = {"file": str(path), "date": earlier["date"], "machine": earlier["machine"]}
    found = {}
    for row in earlier["runs"]:
        for method, measured in row["methods"].items():
            if method not in MODEL_METHODS:
                found[_case_key(row, method)] = dict(measured, reused_from=measured.get("reused_from", source))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.photographs", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/model/photographs"))
    parser.add_argument("--widths", type=int, nargs="+", default=[500, 1000, 4000], choices=sorted(PICTURES))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS, help="the methods to run")
    parser.add_argument("--work", type=Path, default=Path("runs/photographs"), help="inputs and outputs of every run")
    parser.add_argument("--ckpt", type=Path, default=None,
                        help="the model's checkpoint or run folder (default: the release)")
    parser.add_argument("--reuse", type=Path, default=None, metavar="RESULTS_JSON",
                        help="take Telea's and biharmonic's scores from an earlier results.json of the same cases "
                        "instead of running them again (they do not depend on the checkpoint)")
    parser.add_argument("--one", nargs=4, metavar=("METHOD", "IMAGE", "MASK", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        method, image, mask, out = args.one
        print(json.dumps(run_one(method, Path(image), Path(mask), Path(out), args.ckpt)))
        return 0
    from PIL import Image

    missing = [n for w in args.widths for n in PICTURES[w] if not _sources()[n].is_file()]
    if missing:
        raise SystemExit(
            f"photographs missing: {missing} (apt-get install plasma-workspace-wallpapers lomiri-wallpapers)"
        )
    if args.reuse and args.reuse.resolve() == (args.out / "results.json").resolve():
        raise SystemExit(f"--reuse: {args.reuse} is the file this run writes (--out {args.out}); copy it aside first")
    earlier = _earlier_classical(args.reuse) if args.reuse else {}
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "machine": machine(), "checkpoint": str(args.ckpt or "the release"), "runs": []}  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for width in args.widths:
        for name in PICTURES[width]:
            truth = photograph(name, width)
            image = args.work / f"{name}-{width}.png"
            Image.fromarray(truth).save(image)
            for j, kind in enumerate(HOLES):
                mask = hole(kind, *truth.shape[:2], seed=j)
                mask_path = args.work / f"{name}-{width}-{kind.split()[0]}-mask.png"
                Image.fromarray(mask).save(mask_path)
                row = {"picture": name, "width": width, "height": truth.shape[0], "hole": kind,
                       "hole_pixels": int((mask > 0).sum()), "fingerprint": fingerprint(truth, mask),
                       "methods": {}}  # fmt: skip
                for method in args.methods:
                    if method == "biharmonic" and row["hole_pixels"] > BIHARMONIC_MAX:
                        continue
                    if method == "model-full-res" and width > FULL_RES_MAX_WIDTH:
                        continue
                    reused = earlier.get(_case_key(row, method))
                    if reused is not None:
                        row["methods"][method] = reused
                        continue
                    out = args.work / f"{name}-{width}-{kind.split()[0]}-{method}.png"
                    cmd = [sys.executable, "-m", "bench.photographs", "--one", method, str(image), str(mask_path),
                           str(out), *(["--ckpt", str(args.ckpt)] if args.ckpt else [])]  # fmt: skip
                    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    if res.returncode:
                        raise RuntimeError(f"{method} on {image.name}: {res.stderr[-2000:]}")
                    measured = json.loads(res.stdout.strip().splitlines()[-1])
                    measured |= scores_in_hole(out, truth, mask)
                    row["methods"][method] = measured
                    print(f"{name} {width} {kind} {method}: {measured['psnr']:.2f} dB, texture "
                          f"{measured['texture']:.2f}, {measured['seconds']:.1f} s, {measured['peak_mb']:.0f} MB",
                          flush=True)  # fmt: skip
                results["runs"].append(row)
                if (name, width, kind) == EXAMPLE:
                    shown = truth.copy()
                    shown[mask > 0] = 255
                    Image.fromarray(shown).save(args.out / "example_input.jpg", quality=92)
                    model_out = args.work / f"{name}-{width}-{kind.split()[0]}-model.png"
                    Image.open(model_out).convert("RGB").save(args.out / "example_output.jpg", quality=92)
                (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    table = markdown(results)
    (args.out / "results.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
