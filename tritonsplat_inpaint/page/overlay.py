"""The overlay's geometry: which Gaussians of each network run rendered the fill, where
they lie in the photograph's full-resolution pixels (windows and working scales alike),
and the picture that draws them over the result (`tritonsplat.viz`); also the PNG and
data-URL encodings the page's answers carry."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..classical import to_uint8
from ..infer import Run
from .fill import Result


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def drawn_gaussians(run: Run, patch_size: int, overlap: int) -> torch.Tensor:
    """[1, Hp, Wp, K] True for the Gaussians of one network run whose patch canvas (core
    plus overlap) touches that run's written-back hole (`run.target`): the ones that
    rendered the fill (the others are replaced by known pixels, or by another scale's fill)."""
    means = run.gaussians["means"]
    _, hp, wp, k, _ = means.shape
    p, o = patch_size, overlap
    h, w = run.target.shape[-2:]
    mask = F.pad(run.target.float()[None, None], (0, wp * p - w, 0, hp * p - h))
    touched = F.max_pool2d(mask, p + 2 * o, stride=p, padding=o)[0, 0] > 0  # [Hp, Wp]
    return touched[None, :, :, None].expand(1, hp, wp, k)


def gathered_gaussians(runs: list[Run], patch_size: int, overlap: int) -> dict | None:
    """The drawn Gaussians of every network run, in the photograph's full-resolution pixels
    (free layout): means [N, 2] (x, y), cholesky [N, 3], `checker` [N] (0/1, alternating
    over each patch's grid, for outlines), `run` [N] (which run); None without runs."""
    if not runs:
        return None
    from tritonsplat.viz import image_means

    out = dict(means=[], cholesky=[], checker=[], run=[])
    for i, run in enumerate(runs):
        g = run.gaussians
        keep = drawn_gaussians(run, patch_size, overlap).reshape(-1).numpy()
        k = g["means"].shape[-2]
        side = max(1, round(k**0.5))
        sy, sx = run.scale
        xy = image_means(g["means"].float(), patch_size)[0]  # in the window's working pixels
        xy = (xy + np.array([run.left, run.top])) * np.array([sx, sy])
        chol = g["cholesky"].float().reshape(-1, 3).numpy() * np.array([sx, sy, sy])  # diag(sx, sy) @ L
        checker = np.broadcast_to((np.arange(k) // side + np.arange(k) % side) % 2, g["means"].shape[:-1]).reshape(-1)
        out["means"].append(xy[keep])
        out["cholesky"].append(chol[keep])
        out["checker"].append(checker[keep])
        out["run"].append(np.full(int(keep.sum()), i))
    return {key: np.concatenate(v) for key, v in out.items()}


OUTLINES = np.array([(255, 214, 0), (0, 220, 255)], np.uint8)  # neighbouring Gaussians alternate


def overlay_png(result: Result, sigma: float, style: str) -> bytes:
    """The Gaussians that rendered the fill, from every network run (windows and working
    scales alike, mapped to the photograph's pixels), drawn over it, zoomed so that one
    grid cell of Gaussians at the finest scale spans 8 pixels or more (at most 4x, 12
    Mpixels): a patch holds K of them in a few pixels. Outlines alternate two colors like
    a checkerboard over each patch's grid, so neighbours stay apart; fills are opaque, in
    the result's color under each mean (the network's own colors are a residual over the
    classical fills and mixing logits, not a color to show), over the hole darkened so
    that the gaps between them show."""
    from tritonsplat.viz import draw_gaussians, sample_colors

    output = result.output
    h, w = output.shape[-2:]
    g = gathered_gaussians(result.runs, result.patch_size, result.overlap)
    k = result.runs[0].gaussians["means"].shape[-2]
    side = max(1, round(k**0.5))
    cell = result.patch_size / side * min(min(run.scale) for run in result.runs)
    zoom = int(max(1, min(4, math.ceil(8 / cell), math.isqrt(12_000_000 // (h * w)))))
    big = F.interpolate(output[None], scale_factor=zoom, mode="nearest")[0]
    means, chol = g["means"] * zoom, g["cholesky"] * zoom
    if style == "outline":
        colors = OUTLINES[g["checker"]]
    else:
        colors = sample_colors(big, means).round().astype(np.uint8)
        hole = F.interpolate((result.weight > 0).float()[None, None], scale_factor=zoom, mode="nearest")[0].bool()
        big = torch.where(hole, big * 0.3, big)
    if not len(means):  # nothing drawn: the picture as it is
        return png_bytes(to_uint8(big))
    picture = draw_gaussians(big, means[None], chol[None], colors[None], sigma=sigma, style=style, alpha=1.0)
    return png_bytes(picture)


def summary(result: Result) -> dict | None:
    """What the page says of the Gaussians behind a fill: how many were drawn (their patch
    touches the hole) of how many, in how many runs, at which scales; None without runs."""
    if not result.runs:
        return None
    total = sum(int(np.prod(run.gaussians["means"].shape[:-1])) for run in result.runs)
    drawn = sum(int(drawn_gaussians(run, result.patch_size, result.overlap).sum()) for run in result.runs)
    scales = sorted({run.level for run in result.runs})
    return dict(drawn=drawn, total=total, runs=len(result.runs), patch_size=result.patch_size,
                scales=[f"1/{2**level}" for level in scales])  # fmt: skip
