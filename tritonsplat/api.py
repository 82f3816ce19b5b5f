"""The public rasterizers: argument checks (once, here), then dispatch to a custom op."""

from __future__ import annotations

import os

import torch
from torch import Tensor

from . import _checks as chk
from .binning import support_radius
from .ops import settings_of
from .ops.rasterize import rasterize_op
from .ops.rasterize_patches import rasterize_patches_op
from .params import conic_from_cholesky
from .settings import RasterizePatchesSettings, RasterizeSettings

LOW_PRECISION = (torch.bfloat16, torch.float16)


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """ "auto" is Triton for float32 on CUDA (the kernels compute in float32), the torch
    path elsewhere: on the CPU, and for float64 on CUDA. Triton on CPU tensors runs only
    under the interpreter (TRITON_INTERPRET=1, set before tritonsplat is imported)."""
    chk.check_choice("backend", backend, chk.BACKENDS)
    if backend == "auto":
        return "triton" if device.type == "cuda" and dtype != torch.float64 else "torch"
    if backend == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(
            f"backend='triton' with tensors on {device}: the Triton kernels need a CUDA device, "
            "or TRITON_INTERPRET=1 in the environment before tritonsplat is imported (slow; for tests)"
        )
    return backend


def _check_gaussians(means, cholesky, colors, opacity, lead: int) -> None:
    """Shapes of the per-Gaussian tensors (colors may be None), whose first `lead` axes
    index Gaussians."""
    chk.check_tensor("means", means, (None,) * lead + (2,))
    dims = tuple(means.shape[:-1])
    chk.check_tensor("cholesky", cholesky, dims + (3,))
    if colors is not None:
        chk.check_tensor("colors", colors, dims + (None,))
    if opacity is not None:
        chk.check_tensor("opacity", opacity, dims)


def _check_and_prepare(means, cholesky, colors, opacity, background, mode, alpha_max, alpha_min, backend, validate):
    """The checks both rasterizers share; returns the resolved backend and the contiguous
    tensors, bfloat16 and float16 ones as float32 (both backends compute in float32 or
    float64; the caller casts the image back)."""
    chk.check_choice("mode", mode, chk.MODES)
    chk.check_scalars(alpha_max=alpha_max, alpha_min=alpha_min)
    if background is not None:
        if mode != "alpha":
            raise ValueError(f"background: only used by mode='alpha', got it with mode={mode!r}")
        chk.check_tensor("background", background, (colors.shape[-1],))
    tensors = dict(cholesky=cholesky, colors=colors, opacity=opacity, background=background)
    chk.check_same_device_dtype("means", means, **tensors)
    if validate:
        chk.check_values("cholesky", cholesky, means=means, **tensors)
    backend = resolve_backend(backend, means.device, means.dtype)
    if backend == "triton" and means.dtype == torch.float64:
        raise TypeError(f"means: backend='triton' takes float32, got {means.dtype} (use backend='torch')")
    work = torch.float32 if means.dtype in LOW_PRECISION else means.dtype
    given = (means, cholesky, colors, opacity, background)
    return backend, [None if t is None else t.to(work).contiguous() for t in given]


def _positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")


def rasterize_patches(
    means: Tensor,  # [B, Hp, Wp, K, 2] patch-local (x, y) in pixels
    cholesky: Tensor,  # [B, Hp, Wp, K, 3] (l11, l21, l22)
    colors: Tensor,  # [B, Hp, Wp, K, C]
    opacity: Tensor | None = None,  # [B, Hp, Wp, K]
    *,
    patch_size: int,
    overlap: int = 0,
    mode: str = "sum",
    window: str = "linear",
    alpha_max: float = 1.0,
    alpha_min: float = 0.0,
    background: Tensor | None = None,  # [C], mode "alpha" only
    backend: str = "auto",
    validate: bool = True,
) -> Tensor:  # [B, C, Hp*P, Wp*P]
    """Render a grid of patches of 2D Gaussians, feathering where canvases overlap.

    Shapes: means [B, Hp, Wp, K, 2] patch-local (x, y) in pixels, (0, 0) the top-left
    corner of the patch's core, pixel (row i, column j) centred at (j + 0.5, i + 0.5);
    cholesky [B, Hp, Wp, K, 3] the factor (l11, l21, l22) of Sigma = L L^T; colors
    [B, Hp, Wp, K, C], any C; opacity [B, Hp, Wp, K] or None (1); background [C] or None
    (mode "alpha" only). Returns [B, C, Hp * P, Wp * P].

    alpha = min(alpha_max, opacity * exp(-q / 2)), q = |L^-1 (p - mean)|^2, and 0 below
    alpha_min. mode "sum": sum of color * alpha; "alpha": front-to-back over-compositing
    in index order over `background`; "normalized": sum of color * alpha over sum of
    alpha (+ 1e-6). Patch (u, v) owns the P x P core whose top-left pixel is (row u P,
    column v P) and renders it extended by `overlap` pixels on every side; where canvases
    overlap a pixel is their `window`-weighted mean ("linear", "cosine" ramps across the
    2 * overlap band, "box" a plain average).

    backend "auto" runs the Triton kernels on CUDA (float32; float64 takes the torch
    path), the torch path on the CPU. bfloat16 and float16 inputs are computed in float32
    and the image is returned in their dtype. validate=False skips the value checks
    (finite inputs, invertible Cholesky diagonal) and so the call's only host sync: the
    Triton path can then be captured in a CUDA graph. docs/design.md states the contract.
    """
    _check_gaussians(means, cholesky, colors, opacity, lead=4)
    _positive_int("patch_size", patch_size)
    if not isinstance(overlap, int) or not 0 <= overlap <= patch_size // 2:
        raise ValueError(f"overlap: expected an int in [0, patch_size // 2 = {patch_size // 2}], got {overlap!r}")
    chk.check_choice("window", window, chk.WINDOWS)
    backend, tensors = _check_and_prepare(
        means, cholesky, colors, opacity, background, mode, alpha_max, alpha_min, backend, validate
    )
    cfg = RasterizePatchesSettings(patch_size=patch_size, overlap=overlap, mode=mode, window=window,
                                   alpha_max=float(alpha_max), alpha_min=float(alpha_min))  # fmt: skip
    image = rasterize_patches_op(*tensors, **settings_of(cfg), backend=backend)
    return image.to(means.dtype)


def rasterize(
    means: Tensor,  # [B, N, 2] image (x, y) in pixels
    cholesky: Tensor,  # [B, N, 3] (l11, l21, l22)
    colors: Tensor,  # [B, N, C]
    opacity: Tensor | None = None,  # [B, N]
    *,
    height: int,
    width: int,
    mode: str = "sum",
    tile_size: int = 16,
    alpha_max: float = 1.0,
    alpha_min: float = 0.0,
    background: Tensor | None = None,  # [C], mode "alpha" only
    backend: str = "auto",
    validate: bool = True,
) -> Tensor:  # [B, C, H, W]
    """Render N free 2D Gaussians per image.

    Shapes: means [B, N, 2] image (x, y) in pixels, pixel (row i, column j) centred at
    (j + 0.5, i + 0.5); cholesky [B, N, 3] (l11, l21, l22); colors [B, N, C]; opacity
    [B, N] or None; background [C] or None (mode "alpha"). Returns [B, C, height, width].

    The maths and modes are `rasterize_patches`'s, and each Gaussian contributes only
    inside its 3-sigma ellipse (alpha = 0 where q > 9) and where its alpha reaches
    `alpha_min`. Gaussians are binned into `tile_size` tiles for speed, with no cap on how
    many a tile holds, so the image does not depend on `tile_size`. Gaussians partly or
    wholly off the image are fine; N may be 0. backend, dtypes and `validate` as in
    `rasterize_patches`; binning needs the number of tile entries on the host, so this
    call syncs whatever `validate` says: twice in the forward (the entry count, the row
    count), never in the Triton backward, which reads the forward's saved binning.
    docs/design.md states the contract.
    """
    _check_gaussians(means, cholesky, colors, opacity, lead=2)
    _positive_int("height", height)
    _positive_int("width", width)
    _positive_int("tile_size", tile_size)
    backend, tensors = _check_and_prepare(
        means, cholesky, colors, opacity, background, mode, alpha_max, alpha_min, backend, validate
    )
    cfg = RasterizeSettings(height=height, width=width, mode=mode, tile_size=tile_size,
                            alpha_max=float(alpha_max), alpha_min=float(alpha_min))  # fmt: skip
    image, *_binning = rasterize_op(*tensors, **settings_of(cfg), backend=backend)
    return image.to(means.dtype)


def gaussians_at(
    means: Tensor,  # [N, 2] image (x, y) in pixels, one image
    cholesky: Tensor,  # [N, 3]
    pixels: Tensor,  # [M, 2] integer (row, column)
    opacity: Tensor | None = None,  # [N]
    *,
    alpha_max: float = 1.0,
    alpha_min: float = 0.0,
) -> list[Tensor]:
    """Which Gaussians touch each pixel under `rasterize`'s rules (alpha > 0 there: inside
    the 3-sigma ellipse and at or above `alpha_min`), as one int64 tensor of indices per
    pixel, in compositing order. For a batch, call it per image."""
    _check_gaussians(means, cholesky, None, opacity, lead=1)
    chk.check_tensor("pixels", pixels, (None, 2))
    chk.check_scalars(alpha_max=alpha_max, alpha_min=alpha_min)
    with torch.no_grad():
        centre = pixels.to(means.dtype).flip(-1) + 0.5  # (row, col) -> (x, y) centre
        d = centre[:, None, :] - means[None, :, :]  # [M, N, 2]
        a, b, c = conic_from_cholesky(cholesky).unbind(-1)
        q = a * d[..., 0] ** 2 + 2 * b * d[..., 0] * d[..., 1] + c * d[..., 1] ** 2
        r = support_radius(opacity, means.shape[:1], alpha_min, means.device, means.dtype)
        touch = (q <= r * r) & (r > 0)
        return [torch.nonzero(row).reshape(-1) for row in touch]
