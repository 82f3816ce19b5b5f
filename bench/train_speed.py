"""Training speed of the default preset, before and after each speed-up, in one run.

    python -m bench.train_speed [--steps 12] [--out docs/model/speed]
    python -m bench.train_speed --parts [--steps 12] [--out docs/model/speed]

Each variant trains a freshly built, seeded `cpu-small` network (its AdaLN blocks and DINO
adapter compiled, as `python -m model.train` does) through `training.optimiser_step`,
on the same batches, and reports training images per second over `--steps` steps after
4 warm-up steps (the batches and their classical fills are made inside the timed loop,
as in training). The variants add, one at a time:

1. "before": float32, contiguous (NCHW) activations, batches and fills made in line;
2. batches and fills prefetched on a thread (`train.prefetch`);
3. bfloat16 autocast for the convolutions (`train.precision`; only where native);
4. channels-last activations (`train.channels_last`): the default now.

Then a torch.profiler table of the last variant says where its time goes. Writes
`speed.md` and `speed.json` under `--out`, with the machine, versions and date.

`--parts`: the same measure over the model's parts instead, at the default speed
settings: the DINO's input size (56 px: `cpu-small`'s default, 4 x 4 tokens; 112 px: the
release's; 224 px), the encoder (from scratch, or EfficientNet-Lite0's ImageNet stages)
and the feature loss on EfficientNet-Lite0's maps (`train.feature_loss`). Writes
`parts.md` and `parts.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tritonsplat_inpaint.config import preset
from tritonsplat_inpaint.data import RandomCrops, data_paths
from tritonsplat_inpaint.network import build_model
from tritonsplat_inpaint.training import Batches, autocast_dtype, compile_parts, optimiser_step, param_groups

from .common import environment

VARIANTS = [  # (name, train settings)
    ("before: float32, NCHW, fills in line", dict(prefetch=False, precision="float32", channels_last=False)),
    ("+ batches and fills prefetched on a thread", dict(prefetch=True, precision="float32", channels_last=False)),
    ("+ bfloat16 autocast (where native)", dict(prefetch=True, precision="auto", channels_last=False)),
    ("+ channels-last: the default", dict(prefetch=True, precision="auto", channels_last=True)),
]
PARTS = [  # (name, model settings, train settings), at the default speed settings
    ("DINO at 56 px, encoder from scratch (cpu-small)", dict(dino_input=56, encoder="scratch"), {}),
    ("DINO at 112 px, encoder from scratch", dict(dino_input=112, encoder="scratch"), {}),
    ("DINO at 224 px, encoder from scratch", dict(dino_input=224, encoder="scratch"), {}),
    ("DINO at 112 px, EfficientNet-Lite0 encoder (the release)", dict(dino_input=112, encoder="efficientnet_lite0"),
     {}),
    ("the release + feature loss (EfficientNet-Lite0 maps)", dict(dino_input=112, encoder="efficientnet_lite0"),
     dict(feature_loss=1.0)),
]  # fmt: skip
WARMUP = 4


def _trainer(settings: dict, dataset: RandomCrops, model: dict | None = None):
    cfg = preset("cpu-small")
    for key, value in settings.items():
        setattr(cfg.train, key, value)
    for key, value in (model or {}).items():
        setattr(cfg.model, key, value)
    torch.manual_seed(0)
    layout = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    net = build_model(cfg).to(memory_format=layout)
    compile_parts(net)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(net, cfg), lr=cfg.train.lr)
    dtype = autocast_dtype(cfg, torch.device("cpu"))
    batches = Batches(dataset, cfg, net.fills, 0, 1, 0, cfg.train.prefetch)

    def step(i: int) -> None:
        images, masks, fills = batches(i)
        batch = (images.contiguous(memory_format=layout), masks, fills)
        optimiser_step(net, opt, params, cfg, batch, dtype)

    return cfg, step, batches, dtype


def measure(steps: int, profile: bool = True, parts: bool = False) -> dict:
    train_paths, _ = data_paths(preset("cpu-small"))
    dataset = RandomCrops(train_paths, preset("cpu-small").model.image_size)
    rows = []
    table = None
    variants = [(n, t, m) for n, m, t in PARTS] if parts else [(n, t, {}) for n, t in VARIANTS]
    for name, settings, model in variants:
        cfg, step, batches, dtype = _trainer(settings, dataset, model)
        try:
            for i in range(WARMUP):
                step(i)
            tic = time.perf_counter()
            for i in range(WARMUP, WARMUP + steps):
                step(i)
            rate = steps * cfg.train.batch_size / (time.perf_counter() - tic)
            if profile and name == variants[-1][0]:
                from torch.profiler import profile as torch_profile

                with torch_profile() as prof:
                    for i in range(WARMUP + steps, WARMUP + steps + 4):
                        step(i)
                table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
        finally:
            batches.close()
        rows.append({"variant": name, "images_per_s": rate, "autocast": str(dtype).removeprefix("torch."), **settings,
                     **{f"model.{k}": v for k, v in model.items()}})  # fmt: skip
        print(f"{name}: {rate:.2f} images/s", flush=True)
    for row in rows:
        row["speedup"] = row["images_per_s"] / rows[0]["images_per_s"]
    return {"rows": rows, "steps": steps, "batch": preset("cpu-small").train.batch_size, "profile": table,
            "environment": environment()}  # fmt: skip


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [
        f"Training speed of `cpu-small` (batch {result['batch']}, {result['steps']} timed steps after {WARMUP} "
        f"warm-up steps, one run: `python -m bench.train_speed{' --parts' if result.get('parts') else ''}`), on "
        f"{env.get('cpu', '?')}, "
        f"{env.get('cores', '?')} cores, torch {env.get('torch', '?')}, {env.get('date', '?')}.",
        "",
        "| variant | autocast | images/s | speed-up |",
        "| --- | --- | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['variant']} | {r['autocast']} | {r['images_per_s']:.2f} | {r['speedup']:.2f}x |")
    if result.get("profile"):
        lines += ["", "Where the last variant's time goes (torch.profiler, 4 steps, self CPU time):", "", "```",
                  result["profile"].strip(), "```"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("docs/model/speed"))
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--parts", action="store_true", help="compare the model's parts, not the speed-ups")
    args = parser.parse_args(argv)
    result = measure(args.steps, not args.no_profile, args.parts) | {"parts": args.parts}
    args.out.mkdir(parents=True, exist_ok=True)
    name = "parts" if args.parts else "speed"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{name}.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
