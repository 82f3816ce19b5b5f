"""The non-tensor arguments of each operation, as one frozen value: checked at the public
boundary (`api.py`), carried through the custom op as keyword-only fields (its schema
has no positional settings), and handed to the backends whole. Every field is
keyword-only here too, so that two settings of one type (`patch_size` and `overlap`,
both ints) can never trade places on the way."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class RasterizePatchesSettings:
    patch_size: int
    overlap: int
    mode: str
    window: str
    alpha_max: float
    alpha_min: float


@dataclass(frozen=True, kw_only=True)
class RasterizeSettings:
    height: int
    width: int
    mode: str
    tile_size: int
    alpha_max: float
    alpha_min: float
