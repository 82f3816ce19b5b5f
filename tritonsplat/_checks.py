"""Validation at the public boundary: every message names the argument, what was
given and what was expected. Shape checks are free; the value checks (finiteness, an
invertible Cholesky diagonal) cost one device sync together, run in eager mode only,
are skipped while torch.compile traces (a data-dependent branch there would break the
graph), and are skipped with `validate=False` (no sync at all: CUDA-graph capture)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

MODES = ("sum", "alpha", "normalized")
WINDOWS = ("linear", "cosine", "box")
BACKENDS = ("auto", "triton", "torch")
FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _fmt(shape: Sequence[int | str | None]) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"


def check_tensor(name: str, t, expected: Sequence[int | None]) -> None:
    """`expected` lists the required size of every axis; None means any size."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    if t.dim() != len(expected) or any(e is not None and s != e for s, e in zip(t.shape, expected, strict=True)):
        raise ValueError(f"{name}: expected shape {_fmt(expected)}, got {_fmt(tuple(t.shape))}")


def check_choice(name: str, value, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")


def _odd_one_out(values: dict) -> tuple[str, str] | None:
    """(the argument whose value differs, one that has the common value), or None when all
    agree. The common value is the most frequent one (the first argument's on a tie), so
    a float16 `means` beside float32 others names `means`."""
    counts: dict = {}
    for v in values.values():
        counts[v] = counts.get(v, 0) + 1
    if len(counts) == 1:
        return None
    first = next(iter(values.values()))
    common = max(counts, key=lambda v: (counts[v], v == first))
    odd = next(n for n, v in values.items() if v != common)
    return odd, next(n for n, v in values.items() if v == common)


def check_same_device_dtype(ref_name: str, ref: torch.Tensor, **others) -> None:
    """All tensors on one device and of one dtype; a mismatch names the odd one out."""
    if ref.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{ref_name}: expected float32, float64, bfloat16 or float16, got {ref.dtype}")
    given = {ref_name: ref, **{n: t for n, t in others.items() if t is not None}}
    devices = _odd_one_out({n: t.device for n, t in given.items()})
    if devices:
        odd, other = devices
        raise ValueError(f"{odd}: on {given[odd].device}, but {other} is on {given[other].device}")
    dtypes = _odd_one_out({n: t.dtype for n, t in given.items()})
    if dtypes:
        odd, other = dtypes
        raise TypeError(f"{odd}: dtype {given[odd].dtype}, but {other} is {given[other].dtype}")


def check_values(cholesky_name: str, factor: torch.Tensor, **tensors) -> None:
    """Finite values everywhere and an invertible Cholesky diagonal, in one device sync:
    every count is gathered on the device and read back once. A zero diagonal entry is a
    Gaussian of zero width: its conic is infinite."""
    if torch.compiler.is_compiling():
        return
    named = [(n, t) for n, t in tensors.items() if t is not None]
    counts = [(~torch.isfinite(t)).sum() for _, t in named]
    counts.append((factor[..., 0::2] == 0).sum())  # (l11, l22)
    values = torch.stack(counts).tolist()  # the sync
    for (name, _), bad in zip(named, values, strict=False):
        if bad:
            raise ValueError(f"{name}: {bad} non-finite value(s) (NaN or inf) would poison the output")
    if values[-1]:
        raise ValueError(
            f"{cholesky_name}: {values[-1]} zero diagonal entries (l11 or l22); a Cholesky "
            "factor must be invertible (see tritonsplat.params for clamped conversions)"
        )


def check_scalars(*, alpha_max: float, alpha_min: float) -> None:
    if not 0.0 < alpha_max <= 1.0:
        raise ValueError(f"alpha_max: expected 0 < alpha_max <= 1, got {alpha_max}")
    if not 0.0 <= alpha_min < alpha_max:
        raise ValueError(f"alpha_min: expected 0 <= alpha_min < alpha_max ({alpha_max}), got {alpha_min}")
