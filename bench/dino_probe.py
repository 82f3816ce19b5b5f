"""What the trained network draws from the real DINOv2: the release evaluated on the
held-out crops with its own DINO feature, then with that feature replaced, crop by crop.

    OMP_NUM_THREADS=1 python -m bench.dino_probe [--ckpt RELEASE] [--per-image 48] [--out docs/model/dino_probe]

Three evaluations of one checkpoint on the same crops and masks (`evaluation.evaluate`,
PSNR and SSIM, the classical scores from the cache):

- own: each crop conditioned on its own masked-image DINO feature (the release as it is);
- other photograph: on the feature of the same crop and mask of another held-out
  photograph (the next one in the list): a real, in-distribution feature of the wrong
  scene;
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


def replacements(features: torch.Tensor, buckets: int, per_image: int) -> dict[str, torch.Tensor]:
    """{name: the feature each crop gets} from the recorded ones ([buckets * N, D], bucket
    after bucket, each bucket's crops photograph after photograph, `per_image` each)."""
    per_bucket = features.view(buckets, -1, features.shape[-1])
    return {
        # crop k of photograph p takes crop k of photograph p + 1 (same mask, other scene)
        "other-photograph": per_bucket.roll(-per_image, 1).reshape_as(features),
        "mean": per_bucket.mean(1, keepdim=True).expand_as(per_bucket).reshape_as(features),
    }


def main(argv: list[str] | None = None) -> int:
    from tritonsplat_inpaint.checkpoint import RELEASED, load_model
    from tritonsplat_inpaint.cli import set_threads, write_report
    from tritonsplat_inpaint.commands import compare
    from tritonsplat_inpaint.evaluation import evaluate

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
    recorder = Recorded(net.dino)
    net.dino = recorder
    runs = {"own": evaluate(net, cfg, args.per_image)[0]}
    features = torch.cat(recorder.features)
    buckets = len(runs["own"]["buckets"])
    for name, replay in replacements(features, buckets, args.per_image).items():
        net.dino = Replayed(replay)
        runs[name] = evaluate(net, cfg, args.per_image)[0]
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
