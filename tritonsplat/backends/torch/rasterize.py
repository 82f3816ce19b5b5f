"""The torch path of `rasterize`: free Gaussians, tile-binned.

After binning (`tritonsplat.binning`), every tile is a "patch" of T x T pixels with no
overlap whose Gaussians are its binning entries, so the patch path's machinery does the
work: tiles are grouped into chunks of similar entry counts (padding rows to the chunk's
largest tile), each chunk's Gaussians are moved into tile-local coordinates, and the
same two GEMMs, `exp2` and compositing run on it, with the 3-sigma cut of
docs/design.md section 4. Gradients of the padded rows are scattered back to their
Gaussians with `index_add_` (deterministic on the CPU).

The forward bins and returns the binning (a `SavedBinning`) for the backward, which
reuses it. Host syncs: two per forward (the binning's entry count, the chunk plan's
tile counts), one per backward (the chunk plan again).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...binning import Bins, SavedBinning, bin_gaussians, host_sync
from ...settings import RasterizeSettings
from .common import (
    CHUNK_ELEMENTS,
    Workspace,
    alpha_of,
    chunk_grads,
    coefficients_backward,
    composite,
    gaussian_values,
    linear_coefficients,
    pixel_features,
)

_FAR = 1e6  # padding rows sit this far away: their G underflows and the cut zeroes it


class _Tiles(Workspace):
    """The binned call: gathers chunks of tiles and moves pixels between tiles and image."""

    def __init__(self, bins: Bins, means, cholesky, colors, opacity, height, width):
        super().__init__(colors)
        self.b, self.n, self.c = colors.shape
        self.h, self.w, self.t = height, width, bins.tile_size
        self.bins = bins
        self.flat = [x.reshape(self.b * self.n, x.shape[-1]) for x in (means, cholesky, colors)]
        self.op = None if opacity is None else opacity.reshape(-1)

    def chunks(self):
        """(tile ids [n_t], rows [n_t, maxc] with -1 for padding), tiles of similar counts
        together: sorted by count, cut where n_t * maxc * T^2 would pass the chunk budget."""
        counts = self.bins.counts()
        order = torch.argsort(counts, descending=True, stable=True)
        sorted_counts = host_sync(counts[order])
        pix = self.t * self.t
        i = 0
        while i < len(sorted_counts) and sorted_counts[i] > 0:
            maxc = sorted_counts[i]
            take = max(1, CHUNK_ELEMENTS // (maxc * pix))
            tiles = order[i : i + take]
            tiles = tiles[counts[tiles] > 0]
            k = torch.arange(maxc, device=counts.device)
            rows = self.bins.tile_start[tiles, None] + k[None, :]
            rows = torch.where(k[None, :] < counts[tiles, None], rows, -1)
            yield tiles, rows
            i += take

    def gather(self, tiles: Tensor, rows: Tensor):
        """Tile-local means (pads far away), Cholesky factors, colors, opacity, Gaussian ids."""
        pad = rows < 0
        gid = torch.where(pad, 0, self.bins.pair_gaussian[rows.clamp_min(0)])
        tile = tiles % self.bins.num_tiles
        origin = torch.stack(((tile % self.bins.tiles_x) * self.t, (tile // self.bins.tiles_x) * self.t), -1)
        means = self.flat[0][gid] - origin[:, None, :].to(self.flat[0].dtype)
        means = torch.where(pad[..., None], _FAR, means)
        chol = torch.where(pad[..., None], torch.ones((), dtype=means.dtype), self.flat[1][gid])
        col = torch.where(pad[..., None], 0.0, self.flat[2][gid])
        op = None if self.op is None else torch.where(pad, 0.0, self.op[gid])
        return means, chol, col, op, torch.where(pad, self.b * self.n, gid)

    def to_image(self, tiles: Tensor) -> Tensor:  # [B * tiles, C, T*T] -> [B, C, H, W]
        ty, tx, t = self.bins.tiles_y, self.bins.tiles_x, self.t
        img = tiles.reshape(self.b, ty, tx, self.c, t, t).permute(0, 3, 1, 4, 2, 5)
        return img.reshape(self.b, self.c, ty * t, tx * t)[..., : self.h, : self.w]

    def from_image(self, image: Tensor) -> Tensor:  # [B, C, H, W] -> [B * tiles, C, T*T]
        ty, tx, t = self.bins.tiles_y, self.bins.tiles_x, self.t
        padded = torch.nn.functional.pad(image, (0, tx * t - self.w, 0, ty * t - self.h))
        tiles = padded.reshape(self.b, self.c, ty, t, tx, t).permute(0, 2, 4, 1, 3, 5)
        return tiles.reshape(self.b * ty * tx, self.c, t * t)


def forward(
    means: Tensor,  # [B, N, 2]
    cholesky: Tensor,  # [B, N, 3]
    colors: Tensor,  # [B, N, C]
    opacity: Tensor | None,  # [B, N]
    background: Tensor | None,  # [C]
    cfg: RasterizeSettings,
) -> tuple[Tensor, SavedBinning]:  # [B, C, H, W] and the binning
    bins = bin_gaussians(means, cholesky, opacity, cfg.height, cfg.width, cfg.tile_size, cfg.alpha_min)
    tl = _Tiles(bins, means, cholesky, colors, opacity, cfg.height, cfg.width)
    feats = pixel_features(cfg.tile_size, 0, colors.device, colors.dtype)
    out = colors.new_zeros(tl.b * tl.bins.num_tiles, tl.c, cfg.tile_size * cfg.tile_size)
    if cfg.mode == "alpha" and background is not None:
        out += background[:, None]  # tiles no Gaussian touches show the background
    for tiles, rows in tl.chunks():
        m, ch, col, op, _ = tl.gather(tiles, rows)
        coef_u, coef_v = linear_coefficients(m, ch, cfg.tile_size)
        g = gaussian_values(coef_u, coef_v, feats, tl, cut=True)
        out[tiles] = composite(alpha_of(g, op, cfg.alpha_max, cfg.alpha_min), col, cfg.mode, background)
    return tl.to_image(out), SavedBinning.of(bins, colors)


def backward(
    grad_image: Tensor,  # [B, C, H, W]
    means: Tensor,
    cholesky: Tensor,
    colors: Tensor,
    opacity: Tensor | None,
    background: Tensor | None,
    cfg: RasterizeSettings,
    *,
    saved: SavedBinning,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    tl = _Tiles(saved.bins(cfg), means, cholesky, colors, opacity, cfg.height, cfg.width)
    feats = pixel_features(cfg.tile_size, 0, colors.device, colors.dtype)
    grad_tiles = tl.from_image(grad_image)
    total = tl.b * tl.n
    d_means = means.new_zeros(total + 1, 2)  # the extra row takes the padding's (zero) gradients
    d_chol = means.new_zeros(total + 1, 3)
    d_col = colors.new_zeros(total + 1, tl.c)
    d_op = None if opacity is None else colors.new_zeros(total + 1)
    d_bg = None
    if background is not None:  # tiles without Gaussians pass the gradient straight to the background
        empty = tl.bins.counts() == 0
        d_bg = grad_tiles[empty].sum((0, 2))
    for tiles, rows in tl.chunks():
        m, ch, col, op, gid = tl.gather(tiles, rows)
        coef_u, coef_v = linear_coefficients(m, ch, cfg.tile_size)
        du, dv, dc, do, db = chunk_grads(
            coef_u,
            coef_v,
            feats,
            col,
            op,
            background,
            grad_tiles[tiles],
            cfg.mode,
            cfg.alpha_max,
            cfg.alpha_min,
            tl,
            cut=True,
        )
        dm, dch = coefficients_backward(m, ch, du, dv, cfg.tile_size)
        flat = gid.reshape(-1)
        d_means.index_add_(0, flat, dm.reshape(-1, 2))
        d_chol.index_add_(0, flat, dch.reshape(-1, 3))
        d_col.index_add_(0, flat, dc.reshape(-1, tl.c))
        if d_op is not None:
            d_op.index_add_(0, flat, do.reshape(-1))
        if d_bg is not None:
            d_bg += db
    return (
        d_means[:total].reshape(means.shape),
        d_chol[:total].reshape(cholesky.shape),
        d_col[:total].reshape(colors.shape),
        None if d_op is None else d_op[:total].reshape(opacity.shape),
        d_bg,
    )
