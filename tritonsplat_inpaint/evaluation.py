"""Scoring a network against classical inpainting on held-out photographs, per mask
bucket, for the model, its starting blend (the classical fills mixed at the prior's
weights: the model before training), OpenCV's Telea, Navier-Stokes and FSR and
scikit-image's biharmonic inpainting, on the same crops and masks:

- PSNR and SSIM (whole image, known pixels composited);
- with the real DINOv2 as the judge (`perceptual.py`): the perceptual distance (1 - cosine
  of the patch tokens that the hole touches), FD-DINOv2 over the bucket's crops, and the
  texture ratio in the hole (the fill's Laplacian energy over the truth's);

with paired differences and their standard errors per crop; and the table that reports
them. Every classical fill is computed once and shared by the baselines, the blend and
the network's own inputs."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tritonsplat.metrics import psnr, ssim

from .classical import fill_batch
from .config import Config
from .data import data_paths, fixed_crops, photograph_name
from .detail import BAND_SCALE, swap_band
from .masks import BUCKETS, evaluation_masks
from .perceptual import Judge, frechet_distance, hole_tokens, texture_ratio, token_distance

MODEL = "2DGS model (ours)"
BLEND = "starting blend (model before training)"
DETAILED = "2DGS model + fine detail"
# the detail band the `DETAILED` row is given: what a crop at half scale lacks (its holes
# are filled at full scale, where the network carries no photograph texture of its own)
DETAIL_SCALE = 2
# crops of each held-out photograph: the default catalogue holds out 48 photographs, so
# 24 each give 1,152 crops a bucket (with the earlier 9 held-out photographs, 864 crops
# brought every paired standard error under 0.05 dB; the table prints each one)
PER_IMAGE = 24
JUDGE_PER_IMAGE = 8  # of which the DINOv2 judge scores this many (`judged_crops`)

BASELINES = {  # table name: key of model.classical.PREFILLS
    "telea (OpenCV)": "telea",
    "navier-stokes (OpenCV)": "navier-stokes",
    "biharmonic (scikit-image)": "biharmonic",
    "FSR (OpenCV contrib)": "fsr",
}


def paired(ours: torch.Tensor, theirs: torch.Tensor) -> dict:
    """The model's PSNR minus a baseline's on the same crops and masks: mean, its
    standard error, and the fraction of crops the model wins."""
    d = (ours - theirs).double()
    stderr = float(d.std() / len(d) ** 0.5) if len(d) > 1 else float("nan")
    return {"mean": float(d.mean()), "stderr": stderr, "wins": float((d > 0).double().mean())}


class HeldOut:
    """The held-out crops, their fixed masks and every classical fill of them, made once:
    what `evaluate` scores a network on, and what training's learning curve re-scores
    every few hundred steps at the cost of the network's forward passes alone."""

    def __init__(self, cfg: Config, per_image: int, limit: int | None = None, methods: list[str] | None = None,
                 photographs: list[Path] | None = None):  # fmt: skip
        """`methods`: the classical fills to make (keys of PREFILLS; all of BASELINES'
        when None): a learning curve needs only its network's own. `photographs`: the ones
        to crop instead of the held-out ones (the training photographs: a setting is chosen
        on their crops, then measured on the held-out ones)."""
        paths = data_paths(cfg)[1] if photographs is None else photographs
        size = cfg.model.image_size
        self.names = [photograph_name(p) for p in paths]
        self.per_image = per_image
        self.images = fixed_crops(paths, size, per_image)[:limit]
        masks = evaluation_masks(size, size, len(self.images))
        self.masks = {b: torch.from_numpy(masks[b])[:, None] for b in BUCKETS}
        self.fills = {b: {} for b in self.masks}  # bucket -> {method: [N, 3, H, W]}
        self.add_fills(list(BASELINES.values()) if methods is None else methods)

    def add_fills(self, methods: list[str], buckets: list[str] | None = None, chunk: int = 64) -> None:
        """Make the classical fills of `methods` that are not made yet, in `buckets` (all
        when None), `chunk` crops at a time behind one progress bar (the fills are most of
        an evaluation's time: FSR takes seconds a crop)."""
        from tqdm import tqdm

        for bucket in self.masks if buckets is None else buckets:
            todo = [name for name in dict.fromkeys(methods) if name not in self.fills[bucket]]
            if not todo:
                continue
            m, n = self.masks[bucket], len(self.images)
            parts = []
            with tqdm(total=n, desc=f"fills {bucket} ({', '.join(todo)})", unit="crop", disable=n < 64) as bar:
                for i in range(0, n, chunk):
                    images, masks = self.images[i : i + chunk], m[i : i + chunk]
                    parts.append(fill_batch(todo, images * (1 - masks), masks))
                    bar.update(len(images))
            self.fills[bucket] |= {name: torch.cat([p[k] for p in parts]) for k, name in enumerate(todo)}

    def crops_digest(self) -> str:
        """A digest of the crops and their masks: two evaluations with the same digest
        scored the same crops under the same holes (what `model.compare` pairs)."""
        return self._digest([self.per_image, list(self.images.shape)])

    def key(self, judge: Judge | None, judge_per_image: int) -> str:
        """What the classical methods' scores on these crops depend on, as a file name: the
        crops and masks themselves, the methods and the libraries that run them."""
        import cv2
        import skimage

        what = [CLASSICAL_SCORES, self.names, self.per_image, list(self.images.shape), list(BASELINES.items()),
                judge and [judge.source, judge.size, judge_per_image], cv2.__version__,
                skimage.__version__]  # fmt: skip
        return self._digest(what)

    def _digest(self, what: list) -> str:
        """16 hex digits of the sha256 of `what` (as JSON), the crops themselves and every
        bucket's masks: a changed photograph or mask changes it."""
        import hashlib

        digest = hashlib.sha256(json.dumps(what).encode())
        digest.update(self.images.numpy().tobytes())
        for bucket, m in self.masks.items():
            digest.update(bucket.encode() + m.numpy().tobytes())
        return digest.hexdigest()[:16]

    def outputs(self, net, bucket: str, batch: int = 8) -> torch.Tensor:
        """The network's composited outputs on the bucket's crops, [N, 3, H, W]."""
        m, fills = self.masks[bucket], self.fills[bucket]
        outs = []
        was_training = net.training
        net.eval()
        with torch.no_grad():
            for i in range(0, len(self.images), batch):
                own = [fills[name][i : i + batch] for name in net.fills]
                outs.append(net(self.images[i : i + batch], m[i : i + batch], own)["output"].clamp(0, 1))
        net.train(was_training)
        return torch.cat(outs)

    def blend(self, net, bucket: str) -> torch.Tensor:
        m = self.masks[bucket]
        return net.blend([self.fills[bucket][name] for name in net.fills]) * m + self.images * (1 - m)

    def gains(self, net) -> dict[str, float]:
        """{bucket: mean PSNR of the network minus its starting blend}: the learned part."""
        return {
            b: float((psnr(self.outputs(net, b), self.images) - psnr(self.blend(net, b), self.images)).mean())
            for b in self.masks
        }


def _judged(judge: Judge, outputs: dict, images: torch.Tensor, m: torch.Tensor, truth: tuple,
            subset: torch.Tensor) -> dict:  # fmt: skip
    """{method: perceptual distance per judged crop, FD-DINOv2 over them, and the texture
    ratio over every crop} for a bucket's outputs; `truth`: the judge's features (CLS,
    patch tokens) of the crops `subset`."""
    scores = {}
    for name, out in outputs.items():
        cls, patches = judge.features(out[subset])
        touched = hole_tokens(m[subset], patches.shape[1:3])
        scores[name] = {
            "perceptual": token_distance(patches, truth[1], touched),
            "fd_dino": frechet_distance(cls, truth[0]),
            "texture": texture_ratio(out, images, m),
        }
    return scores


def judged_crops(held: HeldOut, per_image: int) -> torch.Tensor:
    """The indices of the crops the judge scores: the first `per_image` of each held-out
    photograph's (a DINOv2 forward costs about 70-90 ms a crop on 2 CPU cores, against
    about 1 ms for PSNR and SSIM)."""
    n = min(per_image, held.per_image)
    return torch.tensor([i * held.per_image + j for i in range(len(held.images) // held.per_image) for j in range(n)])


CLASSICAL_SCORES = 1  # the version of the classical scores' cache: bump when a score changes


def _classical_path(key: str):
    from .pretrained import cache_dir

    return cache_dir() / "evaluation" / f"classical-{key}.json"


def _cached_classical(key: str) -> dict | None:
    """The cached classical scores of `key`, or None (absent or unreadable: a miss)."""
    try:
        return json.loads(_classical_path(key).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _cache_classical(key: str, scores: dict) -> None:
    import os

    path = _classical_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {b: {n: {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
                 for n, s in per.items()} for b, per in scores.items()}  # fmt: skip
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(plain))
    tmp.replace(path)  # atomic: a run stopped mid-write leaves no half file


def with_detail(outputs: torch.Tensor, images: torch.Tensor, masks: torch.Tensor, strength: float,
                f: int = DETAIL_SCALE, candidates: int | None = None) -> torch.Tensor:  # fmt: skip
    """The outputs with the photograph's fine detail copied into their holes: for each
    crop, `detail.transfer_detail` at scale `f` and weight `strength` (and `candidates`, its
    default when None), its sources the crop's known pixels alone (the truth under the hole
    is never read)."""
    from .detail import CANDIDATES, transfer_detail

    candidates = CANDIDATES if candidates is None else candidates

    out = outputs.clone()
    for i in range(len(out)):
        hole = masks[i, 0] > 0.5
        filled = out[i].clone()
        transfer_detail(images[i], filled, hole, hole, f, strength, candidates)
        out[i] = torch.where(hole, filled.clamp(0, 1), images[i])
    return out


def with_band(outputs: torch.Tensor, images: torch.Tensor, masks: torch.Tensor, source: torch.Tensor,
              f: int = BAND_SCALE, weight: float = 1.0) -> torch.Tensor:  # fmt: skip
    """The outputs with their detail finer than `f` pixels taken from `source` in the holes
    at `weight` (`detail.swap_band`: a classical fill's band, FSR's in the evaluation), the
    known pixels the crop's own."""
    return torch.where(masks > 0.5, swap_band(outputs, source, f, weight).clamp(0, 1), images)


def evaluate(net, cfg: Config, per_image: int = PER_IMAGE, batch: int = 8, held: HeldOut | None = None,
             judge: Judge | None = None, cache: bool = True, judge_per_image: int = JUDGE_PER_IMAGE,
             detail: float = 0.0) -> tuple[dict, dict]:  # fmt: skip
    """(results, examples): the scores of every method per bucket, and one example
    (image, mask, every method's output) per bucket for the picture. `held`: the held-out
    crops and fills made once for several networks (made here when None, bucket by bucket,
    each bucket's fills let go once it is scored: at 48 crops a photograph a bucket's
    fills and outputs are several GB). `judge`: the DINOv2 that gives the perceptual
    scores (None: PSNR and SSIM alone), on the first `judge_per_image` crops of each
    photograph (`judged_crops`). `cache`: the classical methods' scores, which no network
    changes, are kept on disk by what they depend on (`HeldOut.key`), written after each
    bucket (a stopped run keeps the buckets it finished) and reused: then only the
    network's own fills are made. `detail` > 0: also the row `DETAILED`, the network's
    outputs given the crop's own fine detail at that weight (`with_detail`), paired
    against every method in `results["paired_detail"]`."""
    if not 0 <= detail <= 1:
        raise ValueError(f"detail: expected a weight from 0 to 1, got {detail}")
    own = held is None
    held = HeldOut(cfg, per_image, methods=[]) if own else held
    key = held.key(judge, judge_per_image) if cache else None
    known = (_cached_classical(key) if key else None) or {}
    images = held.images
    results: dict = {"images": len(images), "held_out": held.names, "per_image": per_image, "buckets": {},
                     "paired": {}, "judge": judge.source if judge else None, "crops": held.crops_digest(),
                     "judge_input": judge.size if judge else None,
                     "detail": {"weight": detail, "scale": DETAIL_SCALE} if detail > 0 else None}  # fmt: skip
    subset = judged_crops(held, judge_per_image) if judge else None
    truth = judge.features(images[subset]) if judge else None
    results["judged_crops"] = len(subset) if judge else 0
    examples, classical = {}, {b: v for b, v in known.items() if b in held.masks}
    from tqdm import tqdm

    for bucket, m in tqdm(held.masks.items(), desc="scoring", unit="bucket", disable=len(images) < 64):
        cached = known.get(bucket)
        held.add_fills(list(net.fills) if cached else list(BASELINES.values()), [bucket])
        outputs = {MODEL: held.outputs(net, bucket, batch)}
        if detail > 0:
            outputs[DETAILED] = with_detail(outputs[MODEL], images, m, detail)
        if net.fills:
            outputs[BLEND] = held.blend(net, bucket)
        if not cached:
            for name, method in BASELINES.items():
                outputs[name] = held.fills[bucket][method] * m + images * (1 - m)  # known pixels composited
        scores = {name: {"psnr": _per_crop(psnr, out, images), "ssim": _per_crop(ssim, out, images)}
                  for name, out in outputs.items()}  # fmt: skip
        if judge:
            for name, judged in _judged(judge, outputs, images, m, truth, subset).items():
                scores[name] |= judged
        if cached:
            scores |= {n: {k: torch.tensor(v) if k in PER_CROP else v for k, v in s.items()}
                       for n, s in cached.items()}  # fmt: skip
        elif key:
            classical[bucket] = {n: s for n, s in scores.items() if n in BASELINES}
            _cache_classical(key, classical)
        results["buckets"][bucket] = {name: _summary(s) for name, s in scores.items()}
        results["paired"][bucket] = _paired_against(scores, MODEL)
        if detail > 0:
            results.setdefault("paired_detail", {})[bucket] = _paired_against(scores, DETAILED, skip=(MODEL,))
        j = (len(examples) + 1) % len(held.names) * per_image  # a different photograph per bucket
        shown = {k: v[j].clone() for k, v in outputs.items()}  # a copy: a view would keep the bucket's outputs
        for name, method in BASELINES.items():  # the picture shows every method, cached or not
            shown.setdefault(name, _fill_one(held, bucket, method, j))
        examples[bucket] = (images[j].clone(), m[j].clone(), shown)  # copies: views would keep every crop
        del outputs
        if own:
            held.fills[bucket] = {}
    results["classical_cached"] = all(b in known for b in held.masks)
    return results, examples


def _paired_against(scores: dict, ours: str, skip: tuple = ()) -> dict:
    """{method: `ours`' PSNR minus its, paired over the crops, and the same for every other
    per-crop score both have} for every method but `ours` and `skip`."""
    mine = scores[ours]
    return {
        name: paired(mine["psnr"], s["psnr"]) | {k: paired(mine[k], s[k]) for k in PER_CROP[1:] if k in s}
        for name, s in scores.items()
        if name != ours and name not in skip
    }


def _per_crop(score, outputs: torch.Tensor, images: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """`score(outputs, images)` per crop, `chunk` crops at a time: SSIM's temporaries over a
    whole bucket of 48 crops a photograph would be several GB."""
    return torch.cat([score(outputs[i : i + chunk], images[i : i + chunk]) for i in range(0, len(images), chunk)])


def _fill_one(held: HeldOut, bucket: str, method: str, j: int) -> torch.Tensor:
    """Crop `j`'s fill by a classical method, known pixels composited."""
    from .classical import PREFILLS

    image, m = held.images[j], held.masks[bucket][j]
    fill = held.fills[bucket][method][j] if method in held.fills[bucket] else PREFILLS[method](image * (1 - m), m)
    return fill * m + image * (1 - m)


PER_CROP = ("psnr", "ssim", "perceptual")  # the scores given per crop, paired between methods


def _summary(scores: dict) -> dict:
    """A method's scores in a bucket as results.json keeps them: the mean of each per-crop
    score and its values per crop (`<score>_per_image`), and the bucket-level ones."""
    out = {}
    for key, value in scores.items():
        if key in PER_CROP:
            out[key] = float(value.mean())
            out[f"{key}_per_image"] = value.tolist()
        else:
            out[key] = value
    return out


COLUMNS = {  # results key: (table heading, format)
    "psnr": ("PSNR", "{:.2f}"),
    "ssim": ("SSIM", "{:.4f}"),
    "perceptual": ("perceptual", "{:.4f}"),
    "fd_dino": ("FD-DINOv2", "{:.1f}"),
    "texture": ("texture", "{:.2f}"),
}


def markdown(results: dict, dino_source: str) -> str:
    """results.md: a table of every method's scores per bucket, then the paired differences."""
    first = next(iter(results["buckets"].values()))
    methods = list(first)
    keys = [k for k in COLUMNS if k in first[MODEL]]
    judge = results.get("judge")
    lines = [
        f"Held-out photographs ({len(results['held_out'])}): {', '.join(results['held_out'])}; "
        f"{results['images']} crops of 128 px, masks at fixed seeds.",
        f"DINO weights of the model: **{dino_source}**"
        + (" (random: no figure here was made with real DINO)" if dino_source.startswith("random") else ""),
        f"Judge of the perceptual scores: the real DINOv2 ({judge}), apart from the network under test, on"
        f" {results.get('judged_crops')} of the crops (the first of each photograph's): perceptual = 1 - cosine of the"
        " patch tokens the hole touches (lower is better), FD-DINOv2 = Frechet distance of their CLS features (lower"
        f" is better; N = {results.get('judged_crops')} crops for D = 384 features: a ranking of the methods at equal"
        " N, not comparable with published values); texture = the fill's Laplacian energy in the hole over the"
        " truth's, on every crop (1 is the truth's)."
        if judge
        else f"Perceptual distance, FD-DINOv2 and texture ratio: not computed ({results.get('no_judge', 'no judge')}).",
    ]
    for bucket, per in results["buckets"].items():
        lines += ["", f"**Holes {bucket}**", "", "| method | " + " | ".join(COLUMNS[k][0] for k in keys) + " |",
                  "| --- | " + " | ".join("---:" for _ in keys) + " |"]  # fmt: skip
        for name in methods:
            cells = [COLUMNS[k][1].format(per[name][k]) for k in keys]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for key, ours, who in (("paired", MODEL, "the model"), ("paired_detail", DETAILED, "the model with fine detail")):
        if results.get(key):
            lines += _paired_table(results, key, ours, who)
    if results.get("full_size"):
        f = results["full_size"]
        lines += ["", f"Full size (texture.png): a big elliptical hole in {f['photograph']}, {f['size'][0]} x "
                  f"{f['size'][1]} px, the held-out photograph with the most texture.", "",
                  "| method | hole PSNR | texture |", "| --- | ---: | ---: |"]  # fmt: skip
        lines += [f"| {k} | {v['hole_psnr']:.2f} | {v['texture']:.2f} |" for k, v in f["scores"].items()]
    return "\n".join(lines)


def _paired_table(results: dict, key: str, ours: str, who: str) -> list[str]:
    """The markdown lines of the paired table `results[key]`: row `ours` (called `who`)
    minus each method, per bucket."""
    first = next(iter(results["buckets"].values()))
    paired_keys = [k for k in PER_CROP if k in first[ours]]
    names = list(next(iter(results[key].values())))
    lines = [
        "",
        f"Paired on the same {results['images']} crops and masks: {who}'s score minus each method's"
        f" (mean +- standard error; PSNR in dB, with the share of crops where {who} is ahead), "
        + ", ".join(COLUMNS[k][0] for k in paired_keys) + ".",
        "",
        "| against | " + " | ".join(f"{b}" for b in results[key]) + " |",
        "| --- | " + " | ".join("---:" for _ in results[key]) + " |",
    ]
    for name in names:
        cells = []
        for v in results[key].values():
            d = v[name]
            cell = f"{d['mean']:+.2f} +- {d['stderr']:.2f} ({d['wins']:.0%})"
            for k in paired_keys[1:]:
                if k in d:
                    cell += f"; {COLUMNS[k][0]} {d[k]['mean']:+.4f} +- {d[k]['stderr']:.4f}"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
