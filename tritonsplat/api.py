"""The public rasterizers: argument checks (once, here), then dispatch to a custom op."""

from __future__ import annotations

import os

import torch
from torch import Tensor

from . import _checks as chk
from .ops.patches import rasterize_patches_op


def resolve_backend(backend: str, device: torch.device) -> str:
    """ "auto" is Triton on CUDA, the torch path elsewhere. Triton on CPU tensors runs only
    under the interpreter (TRITON_INTERPRET=1, set before tritonsplat is imported)."""
    chk.check_choice("backend", backend, chk.BACKENDS)
    if backend == "auto":
        return "triton" if device.type == "cuda" else "torch"
    if backend == "triton" and device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(
            f"backend='triton' with tensors on {device}: the Triton kernels need a CUDA device, "
            "or TRITON_INTERPRET=1 in the environment before tritonsplat is imported (slow; for tests)"
        )
    return backend


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
) -> Tensor:  # [B, C, Hp*P, Wp*P]
    """Render a grid of patches of 2D Gaussians, feathering where canvases overlap.

    Patch (u, v) owns the P x P core whose top-left pixel is (row u*P, column v*P); its
    Gaussians live in patch-local pixels ((0, 0) = the core's top-left corner) and are
    rendered on the core extended by `overlap` pixels on every side. Where canvases
    overlap, pixels are the `window`-weighted mean of the patches covering them.
    See DESIGN.md sections 1-3 for the maths of each `mode` and `window`.
    """
    chk.check_tensor("means", means, (None, None, None, None, 2))
    b, hp, wp, k, _ = means.shape
    chk.check_tensor("cholesky", cholesky, (b, hp, wp, k, 3))
    chk.check_tensor("colors", colors, (b, hp, wp, k, None))
    if opacity is not None:
        chk.check_tensor("opacity", opacity, (b, hp, wp, k))
    if not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"patch_size: expected a positive int, got {patch_size!r}")
    if not isinstance(overlap, int) or not 0 <= overlap <= patch_size // 2:
        raise ValueError(f"overlap: expected an int in [0, patch_size // 2 = {patch_size // 2}], got {overlap!r}")
    chk.check_choice("mode", mode, chk.MODES)
    chk.check_choice("window", window, chk.WINDOWS)
    chk.check_scalars(alpha_max=alpha_max, alpha_min=alpha_min)
    if background is not None:
        if mode != "alpha":
            raise ValueError(f"background: only used by mode='alpha', got it with mode={mode!r}")
        chk.check_tensor("background", background, (colors.shape[-1],))
    chk.check_same_device_dtype(
        "means", means, cholesky=cholesky, colors=colors, opacity=opacity, background=background
    )
    chk.check_finite(means=means, cholesky=cholesky, colors=colors, opacity=opacity, background=background)
    chk.check_cholesky_diagonal("cholesky", cholesky)
    backend = resolve_backend(backend, means.device)
    if backend == "triton" and means.dtype != torch.float32:
        raise TypeError(f"means: backend='triton' takes float32, got {means.dtype} (use backend='torch')")
    contiguous = [None if t is None else t.contiguous() for t in (means, cholesky, colors, opacity, background)]
    return rasterize_patches_op(
        *contiguous, patch_size, overlap, mode, window, float(alpha_max), float(alpha_min), backend
    )
