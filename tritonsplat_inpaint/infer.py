"""Inpainting a photograph of any size and any hole with a network trained on small crops.

The network learnt on `image_size` crops (128 px for `cpu-small`) with holes no thicker
than about `image_size / 5` pixels from their edge to their middle (of the training
masks' holes, 99% are at most 27 px thick at 128 px). Run at a
photograph's own resolution, a hole hundreds of pixels wide is far outside that: the
network fills its middle with a smear and, over a large image, takes gigabytes. So:

1. Each connected hole gets its working scale from its thickness, the largest distance
   from a hole pixel to the nearest known one (`r`): scale `2^-k`, the largest at which
   `r * scale <= image_size / 5`. Thin scratches stay at full resolution; a hole a third
   of the picture wide is filled on a copy a few hundred pixels across.
2. Scales are done finest first, and at each scale the holes already filled count as
   known: a scratch beside a large hole is filled sharp, then helps fill the large one.
3. At a scale, the image is cut into overlapping windows (`tile` px, `overlap` px of
   overlap, blended with linear ramps so that a hole crossing windows shows no seam), and
   only the windows that touch that scale's holes are run: memory stays bounded by the
   window, whatever the photograph's size.
4. Where the network fills, its detail finer than 4 working pixels is mixed with that of a
   classical fill of the same working image (`band`, FSR's by default, at `band_weight`, on
   working images up to `BAND_MAX_PIXELS`; `detail.swap_band`): the network is right about
   colours and shapes, FSR continues edges and texture from the hole's border; together
   they beat both.
5. The fill is brought back to full resolution (bilinear), given the photograph's own
   fine detail, which the working scale cannot carry (`detail.transfer_detail`: the
   detail band of the most similar known blocks nearby, at weight `detail`), and written
   into that scale's hole pixels only; every known pixel is kept exactly as given.

`inpaint_picture` is the whole path from a photograph as `images.read_pair` read it to
the array written back (`images.compose`): `python -m model.inpaint` and the inpainting
page both call it. With `keep_gaussians=True` the report also holds every network run's
window and the Gaussians it rendered (`Report.runs`), for pictures of them.

`method="blend"` runs the same plan with the network's classical starting blend (the
fills it mixes, at their prior weights) in place of the network, and `method="telea"`
(or any classical fill of `classical.PREFILLS`) with that fill: the baselines that the
network must not do worse than.

The guard (`guard=True`, the default). At every reduced scale, the scale of the big holes,
the network is tested before it fills: the scale's holes are copied, as a shape, onto
known pixels nearby (up to four of the nearest shifts that land on known pixels:
`probe_mask`; the shape at half size where a whole copy has no room), both the network
and its starting blend fill those copies, and the network fills the real holes unless the
blend is nearer the known truth there by more than `Guard.margin_db`; the report says
which and what each scored. It costs one more run of each at that (small) scale. The
margin is there because the probe is weak evidence between two fills that are close on
it: over 78 big holes of held-out photographs the blend led on the probe 7 to 10 times
(three checkpoints), by 0.00-0.61 dB, and the network was the better fill of the real
hole in 6 to 8 of those; a network that is far off loses on the probe by far more than the
margin. Where no copy fits even at half size (a hole of most of the picture) the blend
fills it, and the report says so. (The classical fills were tried as candidates too, and
chose worse on the real holes: docs/model.md, "The guard".)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .classical import PREFILLS, fill_batch
from .detail import BAND_SCALE, swap_band, transfer_detail
from .images import Picture, compose
from .network import InpaintNet

DETAIL = 1.0  # the weight of the fine detail given to holes filled at reduced scales (docs/model.md)
# the classical fill whose detail finer than 4 working pixels is mixed into the network's own
# (docs/model.md, "The classical band": ahead by PSNR, SSIM and the DINOv2 distance)
BAND = "fsr"
# the classical band's share of that detail: at 1, FSR's in place of the network's own, the
# lowest DINOv2 distance and FD-DINOv2 and the most texture; 0.6 is the closest to the truth
# by PSNR and SSIM, its distance 3-12% below FSR's against 9-16% (docs/model.md, "The classical band")
BAND_WEIGHT = 1.0
# the largest working image the band's classical fill runs on whole: FSR over a 4000 x 3000
# photograph's scratches took 500 MB more than the 2 GB the plan keeps to (2026-12-07)
BAND_MAX_PIXELS = 1 << 22


@dataclass
class Run:
    """One run of the network by `inpaint`: a window at one working scale, and what it rendered."""

    level: int  # the working scale is 2^-level
    scale: tuple[float, float]  # full-resolution pixels per working pixel (y, x)
    top: int  # the window's corner, in working pixels
    left: int
    target: torch.Tensor  # [h, w] bool: the window's pixels whose fill is written back at this scale
    gaussians: dict  # the network's `gaussians` (means [1, Hp, Wp, K, 2] patch-local, ...), on the CPU


@dataclass
class Report:
    """What `inpaint` did: per scale the holes, windows and working size; with
    `keep_gaussians`, every network run (`runs`)."""

    scales: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)


def hole_scales(hole: np.ndarray, radius: float, max_level: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(level per pixel [H, W] int8, -1 where known; thickness `r` of each hole; level of
    each hole) for a boolean hole mask: level k means scale 2^-k."""
    n, labels = cv2.connectedComponents(hole.astype(np.uint8), connectivity=8)
    dist = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    thickness = np.zeros(n, np.float32)
    np.maximum.at(thickness, labels.ravel(), dist.ravel())
    thickness[0] = 0
    level = np.ceil(np.log2(np.maximum(thickness, 1e-6) / radius)).clip(0, max_level).astype(np.int8)
    level[0] = -1
    return level[labels], thickness[1:], level[1:]


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _ramp(n: int, overlap: int) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float32)
    return torch.minimum(torch.minimum((t + 1) / overlap, (n - t) / overlap), torch.ones(())).clamp_min(1e-3)


def _pad_run(fn, image: torch.Tensor, mask: torch.Tensor, multiple: int) -> torch.Tensor:
    """fn on [1, 3, h, w], [1, 1, h, w] padded to a multiple of the patch size."""
    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
    x = F.pad(image, (0, pw, 0, ph), mode=mode)
    m = F.pad(mask, (0, pw, 0, ph), value=0.0)
    return fn(x, m)[..., :h, :w]


def starting_blend(net: InpaintNet, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The classical fills the network starts from, mixed at their prior weights."""
    if not net.fills:
        raise ValueError("method: 'blend' needs a network with classical fills (model.prefill), this one has none")
    return net.blend(fill_batch(net.fills, image * (1 - mask), mask))


def _fill_scale(fn, image: torch.Tensor, mask: torch.Tensor, target: torch.Tensor, tile: int, overlap: int,
                multiple: int, on_window=None) -> tuple[torch.Tensor, int]:  # fmt: skip
    """[3, h, w] filled by `fn` in overlapping windows, over the windows that touch
    `target` ([h, w] bool); elsewhere the input. `on_window(top, left, target window)` is
    called after each window's run."""
    h, w = image.shape[-2:]
    acc = torch.zeros_like(image)
    weight = torch.zeros(h, w)
    count = 0
    for top in _starts(h, tile, tile - overlap):
        for left in _starts(w, tile, tile - overlap):
            th, tw = min(tile, h), min(tile, w)
            if not bool(target[top : top + th, left : left + tw].any()):
                continue
            x = image[None, :, top : top + th, left : left + tw]
            m = mask[None, None, top : top + th, left : left + tw]
            with torch.no_grad():
                out = _pad_run(fn, x, m, multiple)[0].clamp(0, 1)
            if on_window is not None:
                on_window(top, left, target[top : top + th, left : left + tw])
            ramp = _ramp(th, overlap)[:, None] * _ramp(tw, overlap)[None]
            acc[:, top : top + th, left : left + tw] += out * ramp
            weight[top : top + th, left : left + tw] += ramp
            count += 1
    covered = weight > 0
    result = image.clone()
    result[:, covered] = acc[:, covered] / weight[covered]
    return result, count


def probe_mask(target: torch.Tensor, hole: torch.Tensor, margin: int = 4, min_share: float = 0.5,
               shrink: int = 1, copies: int = 1) -> torch.Tensor | None:  # fmt: skip
    """A copy of the holes `target` ([h, w] bool) shifted onto known pixels, for the guard:
    of the shifts by one or two of the holes' bounding-box sizes (plus `margin`) in eight
    directions, nearest first, the first whose copy keeps at least `min_share` of its
    pixels inside the image and off every hole (`hole`, grown by `margin`); None if none
    does (a hole too big for its picture). `shrink`: the copy is the holes' shape at
    `1 / shrink` of its size (about its centre), for holes whose whole copy has no room.
    `copies`: up to that many such copies, nearest first, together (more evidence)."""
    ys, xs = torch.nonzero(target, as_tuple=True)
    if len(ys) == 0:
        return None
    h, w = target.shape
    if shrink > 1:
        cy, cx = ys.double().mean(), xs.double().mean()
        ys = ((ys - cy) / shrink + cy).round().long().clamp(0, h - 1)
        xs = ((xs - cx) / shrink + cx).round().long().clamp(0, w - 1)
        flat = torch.unique(ys * w + xs)
        ys, xs = flat // w, flat % w
    bh, bw = int(ys.max() - ys.min()) + 1 + margin, int(xs.max() - xs.min()) + 1 + margin
    grown = F.max_pool2d(hole[None, None].float(), 2 * margin + 1, 1, margin)[0, 0] > 0
    shifts = [(dy * bh * r, dx * bw * r) for r in (1, 2) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    shifts.sort(key=lambda s: (s[0] ** 2 + s[1] ** 2, s))
    found = None
    for dy, dx in shifts:
        y, x = ys + dy, xs + dx
        inside = (y >= 0) & (y < h) & (x >= 0) & (x < w)
        probe = torch.zeros_like(target)
        probe[y[inside], x[inside]] = True
        probe &= ~grown
        if int(probe.sum()) >= min_share * len(ys):
            found = probe if found is None else found | probe
            copies -= 1
            if copies == 0:
                break
    return found


def _probe_error(fn, work: torch.Tensor, work_hole: torch.Tensor, probe: torch.Tensor, tile: int, overlap: int,
                 multiple: int) -> float:  # fmt: skip
    """Mean squared error of `fn`'s fill of the probe (known pixels made a hole)."""
    filled, _ = _fill_scale(fn, work, (work_hole | probe).float(), probe, tile, overlap, multiple)
    return float((filled[:, probe] - work[:, probe]).square().mean())


def inpaint(net: InpaintNet, image: torch.Tensor, hole: torch.Tensor, *, method: str = "model", tile: int = 256,
            overlap: int = 64, radius: float | None = None, keep_gaussians: bool = False, guard: bool | Guard = True,
            detail: float = DETAIL, band: str | None = BAND,
            band_weight: float = BAND_WEIGHT) -> tuple[torch.Tensor, Report]:  # fmt: skip
    """image [3, H, W] in [0, 1], hole [H, W] or [1, H, W] (nonzero = hole) -> (image with
    every hole pixel filled and every known pixel exactly as given, what was done). See
    the module docstring for the plan and the guard (`guard`: at reduced scales, the
    network fills unless its starting blend beats it by more than `Guard.margin_db` on a
    probe of known pixels; a `Guard` sets what it weighs and how; `method`: "model",
    "blend" or a classical fill, on the same plan);
    `keep_gaussians` records every network run's Gaussians in `Report.runs` (method
    "model" with a Gaussian decoder); `detail`: the weight of the fine detail copied from
    the photograph into holes filled at reduced scales (`detail.transfer_detail`; 0: none);
    `band`: the classical fill (a key of PREFILLS; `BAND`, FSR, the one measured) whose detail
    finer than `BAND_SCALE` working pixels is mixed into the network's own at `band_weight`
    (1: in place of it) wherever the network fills (`detail.swap_band`, before the fine
    detail; None: the network's own), on working images of at most `BAND_MAX_PIXELS` (the
    report's "band" says where it was)."""
    for name, value in (("detail", detail), ("band_weight", band_weight)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name}: expected a weight from 0 to 1, got {value}")
    if band is not None and band not in PREFILLS:
        raise ValueError(f"band: expected None or one of {', '.join(map(repr, PREFILLS))}, got {band!r}")
    cfg = net.cfg
    multiple = cfg.patch_size
    radius = cfg.image_size / 5 if radius is None else radius
    if tile % multiple or overlap >= tile:
        raise ValueError(f"tile: expected a multiple of {multiple} larger than overlap ({overlap}), got {tile}")
    rendered = []  # the last run's Gaussians, until on_window files them

    def model_fn(x, m):
        out = net(x, m)
        if keep_gaussians and out.get("gaussians") is not None:
            rendered.append({k: None if v is None else v.detach().cpu() for k, v in out["gaussians"].items()})
        return out["pred"]

    fills = {"model": lambda x, m: net(x, m)["pred"], "blend": lambda x, m: starting_blend(net, x, m)}
    fills |= {name: functools.partial(_classical, name) for name in PREFILLS}
    if method not in fills:
        raise ValueError(f"method: expected one of {', '.join(map(repr, fills))}, got {method!r}")
    if not (isinstance(guard, Guard) or guard is True or guard is False):
        raise TypeError(f"guard: expected True, False or a Guard, got {guard!r}")
    guard = Guard() if guard is True else guard or None
    tried = {name: fills[name] for name in guard.fills if name != "blend" or net.fills} if guard else {}
    hole = hole.reshape(image.shape[-2:]).bool()
    H, W = image.shape[-2:]
    # never shrink the short side below half the training crop
    max_level = max(0, int(math.floor(math.log2(max(1, 2 * min(H, W) / cfg.image_size)))))
    levels, thickness, hole_levels = hole_scales(hole.numpy(), radius, max_level)
    report = Report()
    too_thick = thickness[thickness > radius * 2**max_level * 1.5]
    if len(too_thick):
        report.notes.append(
            f"{len(too_thick)} hole(s) up to {2 * too_thick.max():.0f} px thick: beyond what the network was "
            "trained on even at its smallest working scale; expect a smooth fill"
        )

    result = image.clone()
    remaining = hole.clone()
    for k in sorted(int(v) for v in np.unique(levels) if v >= 0):
        here = torch.from_numpy(levels == k)
        if k == 0:
            work, work_hole, target = result, remaining, here
        else:
            h, w = math.ceil(H / 2**k), math.ceil(W / 2**k)
            work = F.interpolate(result[None], size=(h, w), mode="area")[0]
            work_hole = F.interpolate(remaining[None, None].float(), size=(h, w), mode="area")[0, 0] > 0
            target = F.interpolate(here[None, None].float(), size=(h, w), mode="area")[0, 0] > 0
        scale = (H / work.shape[-2], W / work.shape[-1])
        chosen, errors = method, None
        if method == "model" and guard and k:
            chosen, errors, note = _guard(tried, work, work_hole, target, tile, overlap, multiple, 2**k, guard)
            report.notes.append(note)
        fn = model_fn if chosen == "model" else fills[chosen]

        def on_window(top, left, window_target, k=k, scale=scale):
            if rendered:
                report.runs.append(Run(k, scale, top, left, window_target.clone(), rendered.pop()))

        filled, windows = _fill_scale(fn, work, work_hole.float(), target, tile, overlap, multiple, on_window)
        banded = band if chosen == "model" and work.shape[-2] * work.shape[-1] <= BAND_MAX_PIXELS else None
        if banded:
            source = _classical(banded, work[None], work_hole[None, None].float())[0]
            filled = torch.where(target, swap_band(filled, source, BAND_SCALE, band_weight).clamp(0, 1), filled)
        blocks = 0
        if k:
            filled = F.interpolate(filled[None], size=(H, W), mode="bilinear", align_corners=False)[0]
            blocks = transfer_detail(result, filled, remaining, here, 2**k, detail)
        result[:, here] = filled[:, here]
        remaining &= ~here
        report.scales.append({"scale": 2.0**-k, "holes": int((hole_levels == k).sum()),
                              "pixels": int(here.sum()), "working_size": list(work.shape[-2:]),
                              "windows": windows, "method": chosen, "probe_mse": errors,
                              "detail_blocks": blocks, "band": banded})  # fmt: skip
    return result.clamp(0, 1), report


@dataclass(frozen=True)
class Guard:
    """What the guard at reduced scales weighs and how (`inpaint(guard=Guard(...))`;
    `guard=True` is `Guard()`)."""

    fills: tuple[str, ...] = ("model", "blend")  # the fills weighed (more: docs/model.md, "The guard")
    # how far ahead of the network on the probe another fill must be to replace it: above
    # the largest lead seen where the probe was a coin toss, 0.61 dB (docs/model.md, "The
    # guard's margin"; bench/guard_margin.py)
    margin_db: float = 1.0
    shrinks: tuple[int, ...] = (1, 2)  # the sizes of the holes' copy tried, whole first
    copies: int = 4  # copies of the holes on known pixels that the fills are scored on, together

    def __post_init__(self):
        if isinstance(self.fills, str) or not all(isinstance(f, str) for f in self.fills):
            raise ValueError(f"guard.fills: expected a tuple of fill names, got {self.fills!r}")
        object.__setattr__(self, "fills", tuple(self.fills))
        if "model" not in self.fills:
            raise ValueError(f"guard.fills: expected 'model' among the fills weighed, got {self.fills}")
        unknown = [f for f in self.fills if f not in ("model", "blend", *PREFILLS)]
        if unknown:
            raise ValueError(f"guard.fills: expected 'model', 'blend' or {', '.join(map(repr, PREFILLS))}, "
                             f"got {', '.join(map(repr, unknown))}")  # fmt: skip
        if not self.margin_db >= 0:  # NaN too
            raise ValueError(f"guard.margin_db: expected a lead in dB >= 0, got {self.margin_db}")
        if self.copies < 1:
            raise ValueError(f"guard.copies: expected 1 or more copies of the holes, got {self.copies}")
        if not self.shrinks or min(self.shrinks) < 1:
            raise ValueError(f"guard.shrinks: expected one or more sizes >= 1 (1: whole), got {self.shrinks}")
        object.__setattr__(self, "shrinks", tuple(self.shrinks))


GUARD_MARGIN_DB = Guard.margin_db  # the default margin, for the documentation and the tests
GUARD_WORDS = {"model": "the model", "blend": "the blend", "telea": "Telea's fill",
               "navier-stokes": "the Navier-Stokes fill", "biharmonic": "the biharmonic fill", "fsr": "the FSR fill"}


def _classical(name: str, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """A classical fill (a key of PREFILLS) of [1, 3, h, w] with [1, 1, h, w] holes."""
    return fill_batch([name], x * (1 - m), m)[0]


def _guard(tried: dict, work: torch.Tensor, work_hole: torch.Tensor, target: torch.Tensor, tile: int, overlap: int,
           multiple: int, factor: int, guard: Guard = Guard()) -> tuple[str, dict | None, str]:  # fmt: skip
    """(the fill that fills the holes `target` at this scale, every tried fill's squared
    error on the probe, the note that says so): each fill in `tried` fills a copy of the
    holes on known pixels (`probe_mask`, at half size where the whole copy has no room),
    and the network ("model", always among them) fills unless another fill is nearer the
    known truth there by more than `guard.margin_db`."""
    assert "model" in tried, "the guard weighs the network against other fills"
    if len(tried) == 1:  # the network alone: nothing to weigh it against
        why = ("the network has no classical blend to fall back on" if guard.fills != ("model",)
               else "the guard was given no other fill to weigh")  # fmt: skip
        return "model", None, (
            f"guard at scale 1/{factor}: the model fills its holes ({why}, so there is nothing to test it against)"
        )
    probe, shrink = None, 1
    for shrink in guard.shrinks:
        probe = probe_mask(target, work_hole, shrink=shrink, copies=guard.copies)
        if probe is not None:
            break
    if probe is None and "blend" not in tried:  # no evidence, and no blend to fall back on: the network
        return "model", None, (
            f"guard at scale 1/{factor}: the model fills its holes (no copy of them fits on known pixels to "
            "test the network against the other fills, and the blend is not among those weighed)"
        )
    if probe is None:  # no evidence for the network: the fill built never to do worse than the classical ones
        return "blend", None, (
            f"guard at scale 1/{factor}: the blend fills its holes (no copy of them fits on known pixels to "
            "test the network against it, and the blend is the fill that never does worse than the classical one)"
        )
    errors = {name: _probe_error(f, work, work_hole, probe, tile, overlap, multiple) for name, f in tried.items()}
    best = min(errors, key=errors.get)
    lead = _psnr(errors[best]) - _psnr(errors["model"])
    chosen = best if lead > guard.margin_db else "model"
    size = " (the holes at half size)" if shrink == 2 else f" (the holes at 1/{shrink} size)" if shrink > 1 else ""
    words = {name: GUARD_WORDS.get(name, f"the {name} fill") for name in errors}
    scores = ", ".join(f"{_psnr(e):.2f} dB for {words[name]}" for name, e in errors.items())
    if chosen != "model":
        why = f"ahead of the model by more than {guard.margin_db:g} dB"
    elif best == "model":
        why = "the best"
    else:
        why = f"{words[best]} ahead by only {lead:.2f} dB, within the {guard.margin_db:g} dB margin"
    return chosen, errors, (f"guard at scale 1/{factor}: {words[chosen]} fills its holes ({why}, on a probe of "
                            f"{int(probe.sum())} known pixels{size}: PSNR {scores})")  # fmt: skip


def _psnr(mse: float) -> float:
    return 10 * math.log10(1 / max(mse, 1e-12))


def inpaint_picture(net: InpaintNet, picture: Picture, weight: torch.Tensor, *, method: str = "model",
                    tile: int = 256, keep_gaussians: bool = False, detail: float = DETAIL, band: str | None = BAND,
                    band_weight: float = BAND_WEIGHT) -> tuple[np.ndarray, Report]:  # fmt: skip
    """A photograph and its hole weights as `images.read_pair` gives them -> (the
    photograph's own array with the hole filled, in its own mode and bits, known pixels
    exactly as stored: what `python -m model.inpaint` writes; what was done)."""
    filled, report = inpaint(net, picture.rgb, weight > 0, method=method, tile=tile, keep_gaussians=keep_gaussians,
                             detail=detail, band=band, band_weight=band_weight)  # fmt: skip
    return compose(picture, filled, weight.numpy() if isinstance(weight, torch.Tensor) else weight), report
