"""`tritonsplat::rasterize_patches` and its backward. Inputs arrive checked and
contiguous from `tritonsplat.api`."""

from __future__ import annotations

from ..settings import RasterizePatchesSettings
from . import define_op


def _backend(name: str):
    if name == "triton":  # Triton is imported only when its kernels are used
        from ..backends.triton import rasterize_patches as impl
    else:
        from ..backends.torch import rasterize_patches as impl
    return impl


def _image_shape(colors, cfg: RasterizePatchesSettings):  # [B, C, Hp*P, Wp*P]
    b, hp, wp, _, c = colors.shape
    return (b, c, hp * cfg.patch_size, wp * cfg.patch_size)


rasterize_patches_op = define_op("rasterize_patches", RasterizePatchesSettings, _image_shape, _backend)
