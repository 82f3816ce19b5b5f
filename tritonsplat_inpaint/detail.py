"""Fine detail for holes filled at a reduced scale.

A hole filled at scale `1/f` and brought back bilinearly carries nothing finer than `f`
pixels: on grass, bark or water a smooth smudge. `transfer_detail` gives it the
photograph's own fine detail. The hole is covered by blocks `4f` pixels wide at a stride
of `2f`. For each block, the known blocks near the hole most like it by their `4 x 4`
pixels at the working scale (the fill there) are the candidates; of these, the one whose
detail band (its full-resolution pixels minus their own `1/f`-scale version brought back
the same way) best agrees with what the block's pixels already hold (weighed on at most
16 x 16 of its pixels: all of them for blocks of 16 px or less) is copied: the
photograph's own detail where they are known, the blocks placed before where they are
not. The blocks are placed from the hole's edge inwards, so the copied texture agrees
with the texture around the hole and with itself, instead of repeating the one best
match in a grid. The chosen band is added to the fill under a Hann window, so that
blocks meet without seams, and blended so that the detail keeps most of its amplitude
where blocks overlap.

The idea is image quilting's (Efros and Freeman, "Image quilting for texture synthesis
and transfer", 2001: texture copied patch by patch from the image itself, matched to a
guide and to the overlap with the patches placed before it) applied to one band of a
Laplacian pyramid (Burt and Adelson, 1983), filled from the hole's edge inwards as
exemplar-based inpainting fills (Criminisi, Perez and Toyama, 2004; here simply by the
distance from the known pixels). The learned (or classical) fill decides the colours and
shapes at the working scale, the copied band only the texture under them.

This adds texture at the price of pixel accuracy: copied detail is not the truth's, so
it raises the squared error by about the added detail's own energy (which scales with
`strength ** 2`).
`docs/model.md` gives what that trade measures on real photographs.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

CANDIDATES = 16  # transfer_detail's default: the known blocks nearest a block's guide, among which agreement decides
AGREEMENT_SAMPLES = 16  # the pixels of each axis of a block on which the candidates are weighed
MAX_CANDIDATES = 40_000  # known blocks searched per hole (a strided subset beyond)
SEARCH_MARGIN = 1.0  # the search region: the hole's bounding box grown by this many of its sizes
BAND_SCALE = 4  # swap_band's default: the band finer than 4 pixels (docs/model.md, "The classical band")


def hann(n: int) -> torch.Tensor:
    """The periodic Hann window of `n` samples, shifted half a sample: copies of it `n / 2`
    apart sum to exactly one."""
    t = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    return 0.5 - 0.5 * torch.cos(2 * math.pi * t)


def low_band(image: torch.Tensor, f: int) -> torch.Tensor:
    """`image` ([..., C, H, W]) with nothing finer than `f` pixels: its `1/f` version (means
    of `f x f` cells, partial cells at the bottom and right edges) brought back bilinearly,
    as `transfer_detail` separates a band."""
    H, W = image.shape[-2:]
    cells = F.avg_pool2d(image.reshape(-1, *image.shape[-3:]), f, f, ceil_mode=True)
    up = F.interpolate(cells, scale_factor=f, mode="bilinear", align_corners=False)[..., :H, :W]
    return up.view(image.shape)


def swap_band(fill: torch.Tensor, source: torch.Tensor, f: int = BAND_SCALE, weight: float = 1.0) -> torch.Tensor:
    """`fill`'s coarse part under `source`'s fine detail: `fill` below `1/f` scale (`low_band`)
    plus `source`'s band finer than `f` pixels, mixed with `fill`'s own band at `1 - weight`
    (`weight` 1: `source`'s band alone; 0: `fill` unchanged). Where a smooth fill (a network
    trained on squared error) is right about the colours and shapes but flat, and `source` (a
    classical fill that continues edges and texture from the hole's border, such as FSR) is
    wrong about them but carries detail that agrees with the photograph, the sum takes the
    better of each; a mix of the two bands is nearer the truth by PSNR and SSIM, the source's
    alone by the DINOv2 judge (docs/model.md, "The classical band"). The same split of an
    image into bands as a Laplacian pyramid's (Burt and Adelson, 1983)."""
    if fill.shape != source.shape:
        raise ValueError(f"source: expected the fill's shape {tuple(fill.shape)}, got {tuple(source.shape)}")
    if not 0 <= weight <= 1:
        raise ValueError(f"weight: expected a weight from 0 to 1, got {weight}")
    low = low_band(fill, f)
    return low + weight * (source - low_band(source, f)) + (1 - weight) * (fill - low)


def transfer_detail(result: torch.Tensor, filled: torch.Tensor, hole: torch.Tensor, here: torch.Tensor, f: int,
                    strength: float, candidates: int = CANDIDATES) -> int:  # fmt: skip
    """Add the photograph's fine detail to `filled` over the hole pixels `here`, in place.

    result: [3, H, W], the photograph (its known pixels are the detail's source).
    filled: [3, H, W], the fill brought back from the working scale (its pixels outside
        `hole` are set to `result`'s here; the caller copies only `here` from it).
    hole: [H, W] bool, every pixel not known yet (never a source), `here` among them.
    here: [H, W] bool, the pixels whose fill gets the detail.
    f: the working scale's factor (2 ** level); strength: the detail's weight (0: none).
    candidates: the known blocks nearest each block's guide among which agreement decides
        (1: the guide alone).

    Works on the grid of `f x f` cells from the top-left corner (`ceil(H / f)` rows), each
    connected hole apart with the known blocks near it. Returns the number of blocks given
    detail (0 when there is nothing to do)."""
    if candidates < 1:
        raise ValueError(f"candidates: expected at least 1, got {candidates}")
    if strength <= 0 or f < 2 or not bool(here.any()):
        return 0
    torch.where(hole, filled, result, out=filled)  # the photograph with its holes filled
    cells = F.avg_pool2d(filled[None], f, f, ceil_mode=True)[0]  # [3, h, w]: its 1/f version
    cell_hole = F.max_pool2d(hole[None, None].float(), f, f, ceil_mode=True)[0, 0] > 0
    cell_here = F.max_pool2d(here[None, None].float(), f, f, ceil_mode=True)[0, 0] > 0
    n, labels = cv2.connectedComponents(cell_here.numpy().astype(np.uint8), connectivity=8)
    done = 0
    for label in range(1, n):
        done += _one_hole(filled, cells, cell_hole, torch.from_numpy(labels == label), here, f, strength, candidates)
    return done


def _bands(image: torch.Tensor, padded_cells: torch.Tensor, top: torch.Tensor, left: torch.Tensor, f: int,
           pix: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The detail bands of the blocks at cells (`top`, `left`) at the pixel offsets `pix` of
    each axis (all 4f of them, or `_samples`): each block's pixels minus their 1/f version
    brought back bilinearly from its 6 x 6 cells (one cell of margin, so that the block's
    edges are interpolated as inside the photograph). `padded_cells`: the 1/f image with 3
    cells of margin on top and left (edge-replicated); pixels outside the photograph read its
    nearest edge pixel. [n, 3, len(pix), len(pix)]"""
    H, W = image.shape[-2:]
    rows, cols = top[:, None] * f + pix, left[:, None] * f + pix
    span = torch.arange(2, 8)  # cells top - 1 .. top + 4, 3 rows down in padded_cells
    around = padded_cells[:, (top[:, None] + span)[:, :, None], (left[:, None] + span)[:, None, :]]
    pixels = image[:, rows.clamp(0, H - 1)[:, :, None], cols.clamp(0, W - 1)[:, None, :]].permute(1, 0, 2, 3)
    return pixels - _low(around, f, pix)


def _low(around: torch.Tensor, f: int, pix: torch.Tensor) -> torch.Tensor:
    """The 1/f version of blocks brought back to full resolution at the pixel offsets `pix`
    of each axis: their 6 x 6 cells (`around`, [3, n, 6, 6], one cell of margin)
    interpolated bilinearly as `F.interpolate(scale_factor=f, align_corners=False)` would,
    at the block's pixels (the middle 4f of 6f). [n, 3, len(pix), len(pix)]"""
    lerp = _lerp(f, pix)
    return torch.einsum("pi,cnij,qj->ncpq", lerp, around, lerp)


def _lerp(f: int, pix: torch.Tensor) -> torch.Tensor:
    """The bilinear weights of the 6 cells for each pixel offset `pix` of a block, the
    pixel sitting at `f + pix` of the 6f upsampled ones: [len(pix), 6]."""
    src = (pix.double() + f + 0.5) / f - 0.5  # in cells, between 0.5 and 4.5: no clamping
    lo = src.floor().long()
    t = (src - lo).float()
    weights = torch.zeros(len(pix), 6)
    rows = torch.arange(len(pix))
    weights[rows, lo] = 1 - t
    weights[rows, lo + 1] += t
    return weights


def _samples(size: int) -> torch.Tensor:
    """The pixel offsets of each axis of a `size` px block at which candidates are weighed
    (`AGREEMENT_SAMPLES` of them, every `size / AGREEMENT_SAMPLES`-th pixel from the middle
    of the first step; every pixel for blocks that small)."""
    step = max(1, size // AGREEMENT_SAMPLES)
    return torch.arange(step // 2, size, step)


def _seen(known: torch.Tensor, top: torch.Tensor, left: torch.Tensor, f: int, pix: torch.Tensor,
          size: tuple[int, int]) -> torch.Tensor:  # fmt: skip
    """Where the blocks at cells (`top`, `left`) hold the photograph's own pixels at the
    offsets `pix`: [n, p, p] bool, the pixel's cell known (`known`: the cells with 2 of
    margin on top and left) and inside the photograph (`size`: H, W)."""
    H, W = size
    rows, cols = top[:, None] * f + pix, left[:, None] * f + pix
    inside = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
    cell = pix // f  # the block's cell under each offset
    return known[(top[:, None] + 2 + cell)[:, :, None], (left[:, None] + 2 + cell)[:, None, :]] & inside


def _sources(cell_hole: torch.Tensor, component: torch.Tensor, H: int, W: int, f: int) -> tuple | None:
    """The known blocks that may give a hole (`component`, on the cell grid) its detail:
    the cells (rows, cols) where blocks lie near the hole (within `SEARCH_MARGIN` of its
    size), wholly inside the photograph, their one-cell margin (6 x 6 cells) known too; a
    strided subset beyond `MAX_CANDIDATES`. None where there is none."""
    h, w = cell_hole.shape
    ys, xs = torch.nonzero(component, as_tuple=True)
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
    my, mx = int((y1 - y0 + 1) * SEARCH_MARGIN) + 4, int((x1 - x0 + 1) * SEARCH_MARGIN) + 4
    a_lo, a_hi = max(1, y0 - my), min(h - 5, (H - 4 * f) // f, y1 + my)
    b_lo, b_hi = max(1, x0 - mx), min(w - 5, (W - 4 * f) // f, x1 + mx)
    if a_hi < a_lo or b_hi < b_lo:
        return None
    stride = max(1, math.ceil(math.sqrt((a_hi - a_lo + 1) * (b_hi - b_lo + 1) / MAX_CANDIDATES)))
    aa, bb = torch.meshgrid(torch.arange(a_lo, a_hi + 1, stride), torch.arange(b_lo, b_hi + 1, stride), indexing="ij")
    bad = F.max_pool2d(cell_hole[None, None].float(), 6, 1)[0, 0] > 0  # index (a - 1, b - 1): cells a-1 .. a+4
    free = ~bad[aa - 1, bb - 1]
    aa, bb = aa[free], bb[free]
    if len(aa) == 0:
        return None
    return aa, bb


def _quilt(image: torch.Tensor, cells: torch.Tensor, cell_hole: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor,
           cand_rows: torch.Tensor, cand_cols: torch.Tensor, guide_err: torch.Tensor, f: int,
           box: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Choose each block's detail among its candidates and accumulate it. `image`: the
    photograph with its holes filled (only its known pixels are read: the truth under a
    hole, where a caller has it, is out of reach). The blocks lie at cells (`tops`,
    `lefts`), their candidates are the known blocks at cells (`cand_rows`, `cand_cols`)
    ([blocks, k] each) with the guide's mean squared error `guide_err`. Returns the
    windowed detail summed over `box` (top, left, bottom, right in pixels) and the
    windows' squares summed: ([3, h, w], [h, w])."""
    size = 4 * f
    window = hann(size)[:, None] * hann(size)[None]
    by0, bx0, by1, bx1 = box
    h, w = cells.shape[-2:]
    k = cand_rows.shape[1]
    acc = torch.zeros(3, by1 - by0, bx1 - bx0)
    wsum = torch.zeros(by1 - by0, bx1 - bx0)
    power = torch.zeros(by1 - by0, bx1 - bx0)
    # (blocks start from cell -2 and end at most 4 cells past the last)
    known = ~F.pad(cell_hole, (2, 4, 2, 4), value=True)  # cell (a, b) at (a + 2, b + 2); outside: not known
    padded_cells = F.pad(cells[None], (3, 4, 3, 4), mode="replicate")[0]  # cell (a, b) at (a + 3, b + 3)
    # the blocks nearest the known pixels first (their centres' distance from them, in
    # cells), so that each agrees with the photograph's own detail at the hole's edge or
    # with blocks placed before it
    depth = torch.from_numpy(cv2.distanceTransform(cell_hole.numpy().astype(np.uint8), cv2.DIST_L2, 3))
    depth = depth[(tops + 1).clamp(0, h - 1), (lefts + 1).clamp(0, w - 1)]  # at the block's cell (1, 1)
    # blocks 2 apart on both axes (a stride of 4 cells, their width) never overlap: those of
    # one depth and one parity are chosen together, as they would be one after the other
    wave = depth.floor().long() * 4 + (tops // 2 % 2) * 2 + lefts // 2 % 2
    pix, some = torch.arange(size), _samples(size)

    def in_box(n: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows [len(n), p, 1] and columns [len(n), 1, p] in the bounding box of the
        blocks `n`'s pixels at `offsets` (p of them) on each axis."""
        return (tops[n, None] * f - by0 + offsets)[:, :, None], (lefts[n, None] * f - bx0 + offsets)[:, None, :]

    # blocks whose candidates' samples and chosen bands take about 4 MB
    per_chunk = max(1, 2**20 // (3 * (k * len(some) ** 2 + size**2)))
    for g in torch.unique(wave).tolist():
        for n in torch.nonzero(wave == g)[:, 0].split(per_chunk):
            pick = torch.zeros(len(n), dtype=torch.long)
            if k > 1:
                # each candidate's band and what the block holds, on the samples
                bands = _bands(image, padded_cells, cand_rows[n].flatten(), cand_cols[n].flatten(), f, some)
                bands = bands.view(len(n), k, 3, len(some), len(some))
                rows, cols = in_box(n, some)
                own = _bands(image, padded_cells, tops[n], lefts[n], f, some)  # the photograph's own, where seen
                seen = _seen(known, tops[n], lefts[n], f, some, image.shape[-2:])
                placed = wsum[rows, cols]  # [n, p, p]
                mean = acc[:, rows, cols].permute(1, 0, 2, 3) / placed.clamp_min(1e-6)[:, None]
                held = torch.where(seen[:, None], own, mean)[:, None]  # [n, 1, 3, p, p]
                weight = torch.where(seen, 1.0, placed.clamp(max=1.0))[:, None, None]  # [n, 1, 1, p, p]
                # the disagreement relative to the two bands' energy: 0 for the same detail,
                # 1 for unrelated detail or none (so a flat block is not preferred for
                # disagreeing least in absolute terms), 2 for opposite detail
                energy = ((bands.square() + held.square()) * weight).sum((2, 3, 4))  # [n, k]
                disagree = ((bands - held).square() * weight).sum((2, 3, 4)) / energy.clamp_min(1e-12)
                # where something is held the agreement decides, the guide only where nothing is
                pick = torch.where(energy > 0, disagree, guide_err[n]).argmin(1)
            chosen = _bands(image, padded_cells, cand_rows[n, pick], cand_cols[n, pick], f, pix)  # [n, 3, size, size]
            rows, cols = in_box(n, pix)
            acc[:, rows, cols] += (chosen * window).permute(1, 0, 2, 3)
            wsum[rows, cols] += window
            power[rows, cols] += window.square()
    return acc, power


def _one_hole(filled: torch.Tensor, cells: torch.Tensor, cell_hole: torch.Tensor, component: torch.Tensor,
              here: torch.Tensor, f: int, strength: float, candidates: int) -> int:  # fmt: skip
    """`transfer_detail` for one connected hole, `component` ([h, w] bool) on the cell grid.
    Reads the photograph from `filled` alone (its holes filled), never the caller's own."""
    H, W = here.shape
    h, w = cells.shape[-2:]
    # the blocks (4 x 4 cells, at a stride of 2) that touch the hole: every cell of it lies
    # in two blocks per axis; block (i, j) starts at cell (2i - 2, 2j - 2)
    padded = F.pad(component[None, None].float(), (2, 2 + w % 2, 2, 2 + h % 2))
    touched = F.max_pool2d(padded, 4, 2)[0, 0] > 0
    bi, bj = torch.nonzero(touched, as_tuple=True)
    tops, lefts = 2 * bi - 2, 2 * bj - 2  # in cells
    # their guides: the filled image's 4 x 4 cells under each (edge-replicated outside)
    grid = F.pad(cells[None], (4, 4, 4, 4), mode="replicate")[0].unfold(1, 4, 1).unfold(2, 4, 1)
    guides = grid[:, tops + 4, lefts + 4].permute(1, 0, 2, 3).reshape(len(tops), -1)
    found = _sources(cell_hole, component, H, W, f)
    if found is None:
        return 0
    aa, bb = found
    sources = grid[:, aa + 4, bb + 4].permute(1, 0, 2, 3).reshape(len(aa), -1)
    k = min(candidates, len(aa))
    near = [torch.cdist(g, sources).topk(k, largest=False) for g in guides.split(256)]
    guide_err = torch.cat([d for d, _ in near]).square() / guides.shape[1]  # [blocks, k]: mean squared
    choices = torch.cat([i for _, i in near])
    size = 4 * f
    # the blocks' bounding box, over which the chosen detail is accumulated
    by0, bx0 = int(tops.min()) * f, int(lefts.min()) * f
    by1, bx1 = int(tops.max()) * f + size, int(lefts.max()) * f + size
    acc, power = _quilt(
        filled, cells, cell_hole, tops, lefts, aa[choices], bb[choices], guide_err, f, (by0, bx0, by1, bx1)
    )
    # blocks of unrelated detail averaged with weights that sum to one lose up to half their
    # amplitude where they overlap; divided by the root of the weights' squares they would
    # keep it (variance-preserving blending, as in Heitz and Neyret, "High-performance
    # by-example noise using a histogram-preserving blending operator", 2018) but aligned
    # ones (stripes) would double. The fourth root sits between: unrelated detail keeps
    # 71-100% of its amplitude, aligned detail gains at most 41%.
    acc /= power.sqrt().sqrt().clamp_min(1e-6)
    ct, cl, cb, cr = max(by0, 0), max(bx0, 0), min(by1, H), min(bx1, W)
    # onto this hole's own pixels (ct and cl are multiples of f: whole cells)
    cells_here = component[ct // f : -(-cb // f), cl // f : -(-cr // f)]
    mine = cells_here.repeat_interleave(f, 0).repeat_interleave(f, 1)[: cb - ct, : cr - cl] & here[ct:cb, cl:cr]
    region = filled[:, ct:cb, cl:cr]
    region += strength * acc[:, ct - by0 : cb - by0, cl - bx0 : cr - bx0] * mine
    return len(tops)
