"""The non-tensor arguments of each operation, as one frozen value: checked at the public
boundary (`api.py`), carried through the custom op as plain fields, and handed to the
backends whole."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RasterizePatchesSettings:
    patch_size: int
    overlap: int
    mode: str
    window: str
    alpha_max: float
    alpha_min: float


@dataclass(frozen=True)
class RasterizeSettings:
    height: int
    width: int
    mode: str
    tile_size: int
    alpha_max: float
    alpha_min: float
