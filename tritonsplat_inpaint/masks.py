"""Hole masks (1 = hole): free-form brush strokes, random lines, circles, ellipses and
boxes (the families of the paper's code and of LaMa's); a curriculum of hole ratios; and
fixed-seed evaluation sets in the buckets 10-20%, 20-40% and 40-60%."""

from __future__ import annotations

import math

import cv2
import numpy as np

BUCKETS = {"10-20%": (0.1, 0.2), "20-40%": (0.2, 0.4), "40-60%": (0.4, 0.6)}


def _stroke(mask: np.ndarray, rng: np.random.Generator) -> None:
    """A free-form brush stroke: a random walk of thick segments (LaMa-style)."""
    h, w = mask.shape
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    angle = rng.uniform(0, 2 * math.pi)
    width = int(rng.uniform(0.03, 0.08) * max(h, w)) + 1
    for _ in range(int(rng.integers(4, 10))):
        angle += rng.uniform(-1.0, 1.0)
        length = rng.uniform(0.05, 0.25) * max(h, w)
        nx = float(np.clip(x + length * math.cos(angle), 0, w - 1))
        ny = float(np.clip(y + length * math.sin(angle), 0, h - 1))
        cv2.line(mask, (int(x), int(y)), (int(nx), int(ny)), 1, width)
        cv2.circle(mask, (int(nx), int(ny)), width // 2, 1, -1)
        x, y = nx, ny


def _shape(mask: np.ndarray, rng: np.random.Generator) -> None:
    h, w = mask.shape
    s = max(h, w)
    kind = rng.integers(0, 4)
    cx, cy = int(rng.uniform(0, w)), int(rng.uniform(0, h))
    if kind == 0:  # line
        ex, ey = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        cv2.line(mask, (cx, cy), (ex, ey), 1, int(rng.uniform(0.02, 0.06) * s) + 1)
    elif kind == 1:  # circle
        cv2.circle(mask, (cx, cy), int(rng.uniform(0.05, 0.2) * s), 1, -1)
    elif kind == 2:  # ellipse
        axes = (int(rng.uniform(0.05, 0.25) * s), int(rng.uniform(0.03, 0.15) * s))
        cv2.ellipse(mask, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:  # box
        bw, bh = int(rng.uniform(0.1, 0.4) * w), int(rng.uniform(0.1, 0.4) * h)
        cv2.rectangle(mask, (cx - bw // 2, cy - bh // 2), (cx + bw // 2, cy + bh // 2), 1, -1)


def random_mask(height: int, width: int, target_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """[H, W] float32 mask whose hole ratio grows to about `target_ratio` (never 0 or 1):
    brush strokes and shapes are added until the ratio is reached."""
    mask = np.zeros((height, width), np.uint8)
    for _ in range(200):
        (_stroke if rng.random() < 0.6 else _shape)(mask, rng)
        if mask.mean() >= target_ratio:
            break
    if mask.all():  # a full mask leaves nothing to inpaint from
        mask[: height // 2] = 0
    return mask.astype(np.float32)


def curriculum_ratio(step: int, total: int, start: float, end: float, rng: np.random.Generator) -> float:
    """Target hole ratio at `step`: the upper end grows linearly from `start` to `end`,
    and each mask draws its target uniformly from [0.05, upper]."""
    upper = start + (end - start) * min(1.0, step / max(1, total))
    return float(rng.uniform(0.05, upper))


def bucket_mask(height: int, width: int, bucket: str, rng: np.random.Generator) -> np.ndarray:
    """A mask whose hole ratio lies in `bucket` (rejection sampling)."""
    lo, hi = BUCKETS[bucket]
    for _ in range(1000):
        mask = random_mask(height, width, float(rng.uniform(lo, hi)), rng)
        if lo <= mask.mean() < hi:
            return mask
    raise RuntimeError(f"bucket: could not draw a mask in {bucket} at {height}x{width}")


def evaluation_masks(height: int, width: int, per_bucket: int, seed: int = 1234) -> dict[str, np.ndarray]:
    """Fixed-seed evaluation sets: {bucket: [per_bucket, H, W]}; the same on every call."""
    out = {}
    for i, bucket in enumerate(BUCKETS):
        rng = np.random.default_rng([seed, i])
        out[bucket] = np.stack([bucket_mask(height, width, bucket, rng) for _ in range(per_bucket)])
    return out
