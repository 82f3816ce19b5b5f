"""Pictures of 2D Gaussians: each one's k-sigma ellipse drawn over an image, filled with a
color or outlined, for both rasterizers' parameter layouts.

    patches: means [B, Hp, Wp, K, 2] patch-local, as `rasterize_patches` takes them
             (patch (u, v)'s origin is the image pixel corner (v * P, u * P));
    free:    means [B, N, 2] in image pixels, as `rasterize` takes them;

with cholesky [..., 3] = (l11, l21, l22) beside them in both. Pixel (row r, column c) has
its centre at (x, y) = (c + 0.5, r + 0.5), the rasterizers' convention, and a pixel
belongs to a Gaussian's k-sigma ellipse when its centre has Mahalanobis distance at most
k: q = |L^-1 (p - mu)|^2 <= k^2. An outline is the ellipse's boundary pixels (inside, with
a 4-neighbour outside). Where ellipses overlap, a pixel takes the mean of their colors,
so the picture does not depend on the order of the Gaussians.
"""

from __future__ import annotations

import numpy as np
import torch

STYLES = ("outline", "fill")
OUTLINE = (255, 214, 0)  # the default color of outlines: a yellow that reads on photographs
_BUDGET = 1 << 22  # box pixels computed at once


def _numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected a tensor or an array of numbers, got {type(x).__name__}") from e


def image_means(means, patch_size: int | None = None) -> np.ndarray:
    """Means in image pixels: [B, N, 2] as given, or [B, Hp, Wp, K, 2] patch-local shifted
    by each patch's origin (needs `patch_size`) and flattened to [B, Hp*Wp*K, 2]."""
    m = _numpy(means, "means")
    if m.ndim == 3 and m.shape[-1] == 2:
        return m
    if m.ndim == 5 and m.shape[-1] == 2:
        if not isinstance(patch_size, int) or isinstance(patch_size, bool) or patch_size < 1:
            raise ValueError(f"patch_size: the patches layout needs a positive int, got {patch_size!r}")
        b, hp, wp, k, _ = m.shape
        u, v = np.meshgrid(np.arange(hp), np.arange(wp), indexing="ij")
        origin = np.stack((v, u), -1)[None, :, :, None, :] * patch_size  # (x, y) of each patch
        return (m + origin).reshape(b, hp * wp * k, 2)
    raise ValueError(f"means: expected [B, N, 2] (free) or [B, Hp, Wp, K, 2] (patches), got shape {tuple(m.shape)}")


def _lead(x, means_shape: tuple, trailing: int | None, name: str) -> np.ndarray:
    """x shaped like the Gaussians (means' leading axes), flattened to [B, N, trailing]."""
    a = _numpy(x, name)
    lead = means_shape[:-1]
    if trailing is None:
        if a.shape != lead:
            raise ValueError(f"{name}: expected shape {lead}, got {tuple(a.shape)}")
        return a.reshape(lead[0], -1)
    if a.shape[:-1] != lead or a.shape[-1] != trailing:
        raise ValueError(f"{name}: expected shape {lead + (trailing,)}, got {tuple(a.shape)}")
    return a.reshape(lead[0], -1, trailing)


def _image(image) -> np.ndarray:
    """-> [H, W, 3] uint8: a uint8 [H, W, 3] (or [H, W]) array as it is, or a float
    [3, H, W] / [1, 3, H, W] tensor or [H, W, 3] array in [0, 1], rounded to 8 bits."""
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim != 3 or t.shape[0] not in (1, 3):
            raise ValueError(f"image: expected a [3, H, W] tensor, got shape {tuple(image.shape)}")
        if t.dtype != torch.uint8:
            t = (t.float().clamp(0, 1) * 255).round().to(torch.uint8)
        return t.expand(3, -1, -1).permute(1, 2, 0).contiguous().numpy()
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, -1)
    if a.ndim != 3 or a.shape[-1] not in (3, 4):
        raise ValueError(f"image: expected an [H, W, 3] array, got shape {a.shape}")
    a = a[..., :3]
    return a.copy() if a.dtype == np.uint8 else (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


def sample_colors(image, means_xy: np.ndarray) -> np.ndarray:
    """The image's color (0-255, as float) at the pixel under each mean: [N, 2] ->
    [N, 3]; means off the image take the nearest edge pixel."""
    return _sample(_image(image), means_xy)


def _sample(img: np.ndarray, means_xy) -> np.ndarray:
    h, w = img.shape[:2]
    xy = np.asarray(means_xy, np.float64)
    cols = np.clip(np.floor(xy[:, 0]), 0, w - 1).astype(np.int64)
    rows = np.clip(np.floor(xy[:, 1]), 0, h - 1).astype(np.int64)
    return img[rows, cols].astype(np.float64)


def ellipse_pixels(mean_xy, cholesky, sigma: float, height: int, width: int, outline: bool = False):
    """(rows, columns, owner) of the pixels in the `sigma`-sigma ellipses of N Gaussians
    ([N, 2] means in image pixels, [N, 3] Cholesky factors), clipped to the image; `owner`
    is each pixel's Gaussian. With `outline`, only the boundary pixels."""
    mu = np.asarray(mean_xy, np.float64).reshape(-1, 2)
    chol = np.asarray(cholesky, np.float64).reshape(-1, 3)
    if not (np.isfinite(mu).all() and np.isfinite(chol).all()):
        raise ValueError("means, cholesky: expected finite values")
    if (chol[:, 0] <= 0).any() or (chol[:, 2] <= 0).any():
        raise ValueError("cholesky: expected a positive diagonal (l11 > 0, l22 > 0)")
    k2 = float(sigma) ** 2
    # the ellipse's half extents: k sqrt(Sigma_xx), k sqrt(Sigma_yy)
    ex = sigma * chol[:, 0]
    ey = sigma * np.sqrt(chol[:, 1] ** 2 + chol[:, 2] ** 2)
    # each ellipse's box of pixels with a ring around it (for the outline's neighbour
    # test), clipped to the image and one pixel beyond, so a huge Gaussian costs no more
    # than the image
    lo = lambda centre, extent, size: np.clip(np.floor(centre - extent - 0.5) - 1, -1, size).astype(np.int64)
    hi = lambda centre, extent, size: np.clip(np.ceil(centre + extent - 0.5) + 1, -1, size).astype(np.int64)
    c0, r0 = lo(mu[:, 0], ex, width), lo(mu[:, 1], ey, height)
    sw = hi(mu[:, 0], ex, width) - c0 + 1
    sh = hi(mu[:, 1], ey, height) - r0 + 1
    # drop what lies wholly off the image, then work in chunks of similar box sizes
    on = (c0 + sw > 0) & (c0 < width) & (r0 + sh > 0) & (r0 < height) & (sw > 0) & (sh > 0)
    idx = np.nonzero(on)[0]
    idx = idx[np.argsort(np.maximum(sw[idx], sh[idx]), kind="stable")]
    rows, cols, owner = [], [], []
    start = 0
    while start < len(idx):
        side = int(max(sw[idx[start]], sh[idx[start]]))
        stop = start + 1
        while stop < len(idx):  # grow while the chunk's largest box fits the budget
            s = int(max(sw[idx[stop]], sh[idx[stop]]))
            if (stop - start + 1) * s * s > _BUDGET:
                break
            side, stop = s, stop + 1
        g = idx[start:stop]
        start = stop
        d = np.arange(side)
        col = c0[g, None, None] + d[None, None, :]  # [n, 1, S]
        row = r0[g, None, None] + d[None, :, None]  # [n, S, 1]
        l11, l21, l22 = (chol[g, i, None, None] for i in range(3))
        u = (col + 0.5 - mu[g, 0, None, None]) / l11
        v = (row + 0.5 - mu[g, 1, None, None] - l21 * u) / l22
        inside = u * u + v * v <= k2  # [n, S, S]
        inside &= (d[None, None, :] < sw[g, None, None]) & (d[None, :, None] < sh[g, None, None])
        if outline:
            pad = np.pad(inside, ((0, 0), (1, 1), (1, 1)))
            interior = pad[:, :-2, 1:-1] & pad[:, 2:, 1:-1] & pad[:, 1:-1, :-2] & pad[:, 1:-1, 2:]
            inside &= ~interior
        inside &= (col >= 0) & (col < width) & (row >= 0) & (row < height)
        n, y, x = np.nonzero(inside)
        rows.append(r0[g][n] + y)
        cols.append(c0[g][n] + x)
        owner.append(g[n])
    if not rows:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(owner)


def draw_gaussians(
    image,
    means,
    cholesky,
    colors=None,
    *,
    patch_size: int | None = None,
    sigma: float = 1.0,
    style: str = "outline",
    keep=None,
    alpha: float | None = None,
    index: int = 0,
) -> np.ndarray:
    """Draw image `index` of a batch of Gaussians over `image`; returns [H, W, 3] uint8.

    means/cholesky: either layout (see the module docstring; `patch_size` for patches).
    colors: None (fill: each Gaussian takes the image's color under its mean; outline:
    OUTLINE), one RGB triple for all, or per-Gaussian RGB shaped like the Gaussians
    ([..., 3]); values in [0, 1] when float, [0, 255] when uint8. sigma: which ellipse
    (1 = one standard deviation, 3 = the rasterizers' support). keep: an optional boolean
    array shaped like the Gaussians (means' leading axes) choosing which to draw.
    alpha: the drawn color's weight over the image (default 0.5 filled, 1 outlined).
    """
    if style not in STYLES:
        raise ValueError(f"style: expected one of {STYLES}, got {style!r}")
    if not (isinstance(sigma, (int, float)) and 0 < sigma <= 10):
        raise ValueError(f"sigma: expected a number in (0, 10], got {sigma!r}")
    alpha = (0.5 if style == "fill" else 1.0) if alpha is None else float(alpha)
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha: expected a number in [0, 1], got {alpha!r}")
    shape = tuple(_numpy(means, "means").shape)
    xy = image_means(means, patch_size)
    chol = _lead(cholesky, shape, 3, "cholesky")
    if not 0 <= index < xy.shape[0]:
        raise ValueError(f"index: expected an int in [0, {xy.shape[0]}), got {index!r}")
    base = _image(image)
    h, w = base.shape[:2]
    xy, chol = xy[index], chol[index]
    picked = np.arange(len(xy))
    if keep is not None:
        picked = np.nonzero(_lead(keep, shape, None, "keep")[index] > 0)[0]
    if colors is None:
        palette = _sample(base, xy[picked]) if style == "fill" else np.tile(OUTLINE, (len(picked), 1))
    else:
        raw = colors if isinstance(colors, torch.Tensor) else np.asarray(colors)
        is_byte = (raw.dtype == torch.uint8) if isinstance(raw, torch.Tensor) else (raw.dtype == np.uint8)
        c = _numpy(raw, "colors")
        c = c if is_byte else np.clip(c, 0, 1) * 255
        if c.shape == (3,):
            palette = np.tile(c, (len(picked), 1))
        else:
            palette = _lead(c, shape, 3, "colors")[index][picked]
    rows, cols, owner = ellipse_pixels(xy[picked], chol[picked], sigma, h, w, outline=style == "outline")
    # composite on the drawn pixels only: a picture of a few Gaussians costs what they cover
    pixels, slot = np.unique(rows * w + cols, return_inverse=True)
    count = np.bincount(slot, minlength=len(pixels)).astype(np.float64)
    total = np.stack([np.bincount(slot, palette[owner, i], minlength=len(pixels)) for i in range(3)], -1)
    out = base.reshape(-1, 3)
    mixed = (1 - alpha) * out[pixels] + alpha * total / count[:, None]
    out[pixels] = np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    return out.reshape(h, w, 3)
