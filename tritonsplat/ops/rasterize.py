"""`tritonsplat::rasterize` (free, tile-binned Gaussians) and its backward. Inputs arrive
checked and contiguous from `tritonsplat.api`. The op returns the image and the forward's
binning (`SavedBinning`, saved by name for the backward)."""

from __future__ import annotations

from ..binning import SavedBinning
from ..settings import RasterizeSettings
from . import define_op


def _backend(name: str):
    if name == "triton":  # Triton is imported only when its kernels are used
        from ..backends.triton import rasterize as impl
    else:
        from ..backends.torch import rasterize as impl
    return impl


def _image_shape(colors, cfg: RasterizeSettings):  # [B, C, H, W]
    return (colors.shape[0], colors.shape[-1], cfg.height, cfg.width)


rasterize_op = define_op("rasterize", RasterizeSettings, _image_shape, _backend, saved=SavedBinning)
