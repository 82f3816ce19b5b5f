"""Fine detail for holes filled at a reduced scale.

A hole filled at scale `1/f` and brought back bilinearly carries nothing finer than `f`
pixels: on grass, bark or water a smooth smudge. `transfer_detail` gives it the
photograph's own fine detail: the hole is covered by blocks `4f` pixels wide at a stride
of `2f`; each block is matched, by its `4 x 4` pixels at the working scale (the fill
there), to the most similar block of known pixels near the hole; and the matched block's
detail band (its full-resolution pixels minus their own `1/f`-scale version brought back
the same way) is added to the fill, weighted by a Hann window so that blocks meet without
seams, and blended so that the detail keeps its amplitude where blocks overlap.

The idea is image quilting's (Efros and Freeman, "Image quilting for texture synthesis
and transfer", 2001: texture copied patch by patch from the image itself, matched to a
guide) applied to one band of a Laplacian pyramid (Burt and Adelson, 1983): the learned
(or classical) fill decides the colours and shapes at the working scale, the copied
band only the texture under them.

This adds texture at the price of pixel accuracy: copied detail is not the truth's, so
it raises the squared error by up to its own energy times `strength ** 2`.
`docs/model.md` gives what that trade measures on real photographs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAX_CANDIDATES = 40_000  # known blocks searched per scale (a strided subset beyond)
SEARCH_MARGIN = 1.0  # the search region: the hole's bounding box grown by this many of its sizes


def hann(n: int) -> torch.Tensor:
    """The periodic Hann window of `n` samples, shifted half a sample: copies of it `n / 2`
    apart sum to exactly one."""
    t = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    return 0.5 - 0.5 * torch.cos(2 * math.pi * t)


def _lowpass_block(work: torch.Tensor, a: int, b: int, f: int) -> torch.Tensor:
    """The working image's `4 x 4` block at (a, b) brought back to full resolution
    bilinearly, `[3, 4f, 4f]` (computed with one working pixel of margin, so that it equals
    the whole image's bilinear enlargement there)."""
    patch = work[None, :, a - 1 : a + 5, b - 1 : b + 5]
    up = F.interpolate(patch, scale_factor=f, mode="bilinear", align_corners=False)[0]
    return up[:, f : 5 * f, f : 5 * f]


def transfer_detail(result: torch.Tensor, filled: torch.Tensor, work: torch.Tensor, work_hole: torch.Tensor,
                    here: torch.Tensor, f: int, strength: float) -> int:  # fmt: skip
    """Add the photograph's fine detail to `filled` over the hole pixels `here`, in place.

    result: [3, H, W], the photograph (its known pixels are the detail's source).
    filled: [3, H, W], the fill of `here` brought back from the working scale.
    work: [3, h, w], the working-scale image with its holes filled (`h = ceil(H / f)`).
    work_hole: [h, w] bool, every working pixel that touches a hole (never a source).
    here: [H, W] bool, the pixels whose fill gets the detail.
    f: the working scale's factor (2 ** level); strength: the detail's weight (0: none).

    Returns the number of blocks given detail (0 when there is nothing to do)."""
    H, W = here.shape
    h, w = work.shape[-2:]
    if strength <= 0 or f < 2 or not bool(here.any()):
        return 0
    size, step = 4 * f, 2 * f
    ys, xs = torch.nonzero(here, as_tuple=True)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    # the blocks that touch `here`: every pixel of it lies in two blocks per axis
    tops = range(step * (y0 // step) - step, y1 + 1, step)
    lefts = range(step * (x0 // step) - step, x1 + 1, step)
    blocks = [(t, c) for t in tops for c in lefts
              if bool(here[max(t, 0) : t + size, max(c, 0) : c + size].any())]  # fmt: skip
    if not blocks:
        return 0
    # their guides: the working image's 4 x 4 pixels under each (edge-replicated outside)
    pad = 4
    padded = F.pad(work[None], (pad, pad, pad, pad), mode="replicate")[0]
    guides = torch.stack([padded[:, t // f + pad : t // f + pad + 4, c // f + pad : c // f + pad + 4].reshape(-1)
                          for t, c in blocks])  # fmt: skip
    # the sources: known working blocks near the hole, whose one-pixel margin is known too
    wy0, wy1, wx0, wx1 = y0 // f, y1 // f, x0 // f, x1 // f
    my, mx = int((wy1 - wy0 + 1) * SEARCH_MARGIN) + 4, int((wx1 - wx0 + 1) * SEARCH_MARGIN) + 4
    a_lo, a_hi = max(1, wy0 - my), min(h - 5, (H - size) // f, wy1 + my)
    b_lo, b_hi = max(1, wx0 - mx), min(w - 5, (W - size) // f, wx1 + mx)
    if a_hi < a_lo or b_hi < b_lo:
        return 0
    # a working block with its margin (6 x 6 from a-1, b-1) free of holes
    bad = F.max_pool2d(work_hole[None, None].float(), 6, 1)[0, 0] > 0  # [h-5, w-5], index a-1, b-1
    count = (a_hi - a_lo + 1) * (b_hi - b_lo + 1)
    stride = max(1, math.ceil(math.sqrt(count / MAX_CANDIDATES)))
    a = torch.arange(a_lo, a_hi + 1, stride)
    b = torch.arange(b_lo, b_hi + 1, stride)
    aa, bb = torch.meshgrid(a, b, indexing="ij")
    free = ~bad[aa - 1, bb - 1]
    aa, bb = aa[free], bb[free]
    if len(aa) == 0:
        return 0
    windows = work.unfold(1, 4, 1).unfold(2, 4, 1)  # [3, h-3, w-3, 4, 4]
    sources = windows[:, aa, bb].permute(1, 0, 2, 3).reshape(len(aa), -1)
    best = torch.cat([torch.cdist(g, sources).argmin(1) for g in guides.split(1024)])
    window = hann(size)[:, None] * hann(size)[None]
    # accumulated over the blocks' bounding box: the weighted detail and the weights' squares
    by0, bx0 = blocks[0][0], min(c for _, c in blocks)
    by1, bx1 = blocks[-1][0] + size, max(c for _, c in blocks) + size
    acc = torch.zeros(3, by1 - by0, bx1 - bx0)
    power = torch.zeros(by1 - by0, bx1 - bx0)
    for (t, c), k in zip(blocks, best.tolist(), strict=True):
        sa, sb = int(aa[k]), int(bb[k])
        detail = result[:, sa * f : sa * f + size, sb * f : sb * f + size] - _lowpass_block(work, sa, sb, f)
        acc[:, t - by0 : t - by0 + size, c - bx0 : c - bx0 + size] += detail * window
        power[t - by0 : t - by0 + size, c - bx0 : c - bx0 + size] += window.square()
    # variance-preserving blending: blocks of unrelated detail, averaged with weights that sum
    # to one, would lose up to half their amplitude where they overlap; divided by the root
    # of the weights' squares they keep it (the blending of Heitz and Neyret, "High-performance
    # by-example noise using a histogram-preserving blending operator", 2018)
    acc /= power.sqrt().clamp_min(1e-6)
    ct, cl, cb, cr = max(by0, 0), max(bx0, 0), min(by1, H), min(bx1, W)
    filled[:, ct:cb, cl:cr] += strength * acc[:, ct - by0 : cb - by0, cl - bx0 : cr - bx0]
    return len(blocks)
