"""tritonsplat: a differentiable 2D Gaussian splatting rasterizer with fused Triton kernels
and a fast PyTorch path (see docs/design.md)."""

from .api import gaussians_at, rasterize, rasterize_patches
from .params import (
    cholesky_from_conic,
    cholesky_from_covariance,
    cholesky_from_scale_rotation,
    conic_from_cholesky,
    covariance_from_cholesky,
    scale_rotation_from_cholesky,
)

__all__ = [
    "rasterize_patches",
    "rasterize",
    "gaussians_at",
    "cholesky_from_conic",
    "cholesky_from_covariance",
    "cholesky_from_scale_rotation",
    "conic_from_cholesky",
    "covariance_from_cholesky",
    "scale_rotation_from_cholesky",
]
__version__ = "0.1.0"
