"""What the trained network draws from the real DINOv2: the release evaluated on the
held-out crops with its own DINO feature, then with that feature replaced, crop by crop.

    OMP_NUM_THREADS=1 python -m bench.dino_probe [--ckpt RELEASE] [--per-image 48] [--out docs/model/dino_probe]

Three evaluations of one checkpoint on the same crops and masks (`evaluation.evaluate`
with the DINOv2 judge, the classical scores from model.evaluate's cache):

- own: each crop conditioned on its own masked-image DINO feature (the release as it is);
- other photograph: on the DINO feature of the same crop of another held-out photograph
  (the next one in the list) under this crop's own mask: a real feature of the same hole
  in the wrong scene;
- mean: on the mean of every crop's feature in the bucket: no scene at all.

`own` minus each, paired over the same crops, is what the scene's DINO feature is worth
to the trained network. It probes the network as trained, not the architecture: a network
trained without the real DINO (the ablation's random-dino and no-dino variants) may make
up for it elsewhere, which only training each variant to a separating budget can show.
Writes `<out>/{own,other-photograph,mean}/results.json` and, through `model.compare`,
`<out>/compare.{md,json}`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn


class Recorded(nn.Module):
    """The network's DINO, recording every feature it gives, in call order."""

    def __init__(self, dino: nn.Module):
        super().__init__()
        self.inner = dino
        self.source = dino.source
        self.features: list[torch.Tensor] = []

    def forward(self, masked: torch.Tensor) -> torch.Tensor:
        feature = self.inner(masked)
        self.features.append(feature.detach().clone())
        return feature


class Replayed(nn.Module):
    """A stand-in DINO that gives back `features` row by row, in call order: the same
    sequence of crops as the recorded evaluation, so row i goes to crop i."""

    def __init__(self, features: torch.Tensor):
        super().__init__()
        self.features = features
        self.next = 0
        self.source = "replayed features"

    def forward(self, masked: torch.Tensor) -> torch.Tensor:
        rows = self.features[self.next : self.next + len(masked)]
        if len(rows) != len(masked):
            raise RuntimeError(f"replay: {len(masked)} crops asked for after {self.next}, "
                               f"{len(self.features)} recorded")  # fmt: skip
        self.next += len(masked)
        return rows.to(masked.dtype)


def bucket_means(features: torch.Tensor, buckets: int) -> torch.Tensor:
    """Each crop's recorded feature ([buckets * N, D], bucket after bucket) replaced by
    its bucket's mean."""
    per_bucket = features.view(buckets, -1, features.shape[-1])
    return per_bucket.mean(1, keepdim=True).expand_as(per_bucket).reshape_as(features)


def other_photograph(dino: nn.Module, images: torch.Tensor, masks: dict, per_image: int,
                     batch: int = 32) -> torch.Tensor:  # fmt: skip
    """For every bucket's crop n (crop k of photograph p, the crops photograph after
    photograph, `per_image` each), the DINO feature of crop k of photograph p + 1 (the
    last takes the first's) under crop n's own mask: [buckets * N, D], bucket after
    bucket, the order in which evaluation asks."""
    n = len(images)
    if n <= per_image:
        raise ValueError(f"other photograph: expected at least 2 held-out photographs, got {n // per_image}")
    source = (torch.arange(n) + per_image) % n
    features = []
    with torch.no_grad():
        for m in masks.values():
            for i in range(0, n, batch):
                rows = torch.arange(i, min(i + batch, n))
                features.append(dino(images[source[rows]] * (1 - m[rows])))
    return torch.cat(features)


def main(argv: list[str] | None = None) -> int:
    from tritonsplat_inpaint.checkpoint import RELEASED, load_model
    from tritonsplat_inpaint.cli import set_threads, write_report
    from tritonsplat_inpaint.commands import compare
    from tritonsplat_inpaint.evaluation import HeldOut, evaluate
    from tritonsplat_inpaint.perceptual import Judge

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", type=Path, default=RELEASED, help="checkpoint or run folder")
    parser.add_argument("--per-image", type=int, default=48, help="crops per held-out photograph")
    parser.add_argument("--out", type=Path, default=Path("docs/model/dino_probe"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    net, cfg = load_model(args.ckpt)
    if net.dino is None:
        raise SystemExit(f"--ckpt {args.ckpt}: this network has no DINO branch to probe")
    ok, why = Judge.available()
    if not ok:
        raise SystemExit(f"no judge: {why}")
    judge = Judge()  # as model.evaluate's: the classical scores then come from its cache
    # the crops, masks and the network's own classical fills, made once for the three runs
    held = HeldOut(cfg, args.per_image, methods=list(net.fills))
    recorder = Recorded(net.dino)
    net.dino = recorder
    runs = {"own": evaluate(net, cfg, args.per_image, held=held, judge=judge)[0]}
    features = torch.cat(recorder.features)
    replays = {"other-photograph": other_photograph(recorder.inner, held.images, held.masks, args.per_image),
               "mean": bucket_means(features, len(held.masks))}  # fmt: skip
    for name, replay in replays.items():
        net.dino = Replayed(replay)
        runs[name] = evaluate(net, cfg, args.per_image, held=held, judge=judge)[0]
        if net.dino.next != len(replay):
            raise RuntimeError(f"replay {name}: {net.dino.next} of {len(replay)} features used: "
                               "the crops' order changed")  # fmt: skip
    for name, results in runs.items():
        results["checkpoint"] = str(args.ckpt)
        (args.out / name).mkdir(parents=True, exist_ok=True)
        (args.out / name / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    summary = compare.compare(runs, "own")
    write_report(args.out, "compare", summary, compare.markdown(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
