"""Conversions between the forms a 2D covariance comes in and the Cholesky factor
the rasterizers take.

The Cholesky factor is the last axis `(l11, l21, l22)` of `L = [[l11, 0], [l21, l22]]`,
`Sigma = L @ L.T`. Covariance is `(s_xx, s_xy, s_yy)`, conic is `Sigma^-1 = [[a, b], [b, c]]`
stored as `(a, b, c)`, rotation angles are in radians (counter-clockwise from +x).

Degenerate input is clamped to documented bounds on both sides, never NaN:
- a covariance with a variance at or below `eps`, or a correlation beyond +-1, becomes a
  thin Gaussian: variances at least `eps` (pixels^2), the correlation cut to +-1, the
  conditional variance at least `eps`, and neither variance above the one given;
- a conic that is not positive definite (an unbounded covariance) becomes a Gaussian no
  wider than `max_sigma` (default MAX_SIGMA = 64 pixels) along either axis.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-6  # in pixels^2 for variances, pixels^4 for determinants
MAX_SIGMA = 64.0  # pixels: the widest Gaussian a degenerate conic becomes


def covariance_from_cholesky(cholesky: Tensor) -> Tensor:  # [..., 3] -> [..., 3]
    """(l11, l21, l22) -> (s_xx, s_xy, s_yy) of Sigma = L L^T, in pixels^2."""
    l11, l21, l22 = cholesky.unbind(-1)
    return torch.stack((l11 * l11, l11 * l21, l21 * l21 + l22 * l22), dim=-1)


def cholesky_from_covariance(covariance: Tensor, eps: float = EPS) -> Tensor:  # [..., 3] -> [..., 3]
    """(s_xx, s_xy, s_yy) -> (l11, l21, l22), clamped as the module docstring says."""
    sxx, sxy, syy = covariance.unbind(-1)
    sxx = sxx.clamp_min(eps)
    syy = syy.clamp_min(eps)
    bound = torch.sqrt(sxx * syy)
    sxy = torch.maximum(torch.minimum(sxy, bound), -bound)
    l11 = sxx.sqrt()
    l21 = sxy / l11
    l22 = (syy - l21 * l21).clamp_min(eps).sqrt()
    return torch.stack((l11, l21, l22), dim=-1)


def conic_from_cholesky(cholesky: Tensor) -> Tensor:  # [..., 3] -> [..., 3]
    """(l11, l21, l22) -> (a, b, c) of Sigma^-1 = [[a, b], [b, c]], in pixels^-2:
    Sigma^-1 = L^-T L^-1, and with M = L^-1 = [[m11, 0], [m21, m22]] it is M^T M."""
    l11, l21, l22 = cholesky.unbind(-1)
    m11, m22 = 1.0 / l11, 1.0 / l22
    m21 = -l21 * m11 * m22
    return torch.stack((m11 * m11 + m21 * m21, m21 * m22, m22 * m22), dim=-1)


def cholesky_from_conic(
    conic: Tensor, eps: float = EPS, max_sigma: float = MAX_SIGMA
) -> Tensor:  # [..., 3] -> [..., 3]
    """(a, b, c) of Sigma^-1 -> (l11, l21, l22). A conic must be positive definite: its
    diagonal and determinant are clamped first so that the inverse stays finite, then the
    covariance's variances to at most max_sigma^2 (its correlation kept)."""
    a, b, c = conic.unbind(-1)
    a = a.clamp_min(eps)
    c = c.clamp_min(eps)
    det = (a * c - b * b).clamp_min(eps * eps)
    sxx, sxy, syy = c / det, -b / det, a / det
    limit = max_sigma * max_sigma
    shrink = torch.sqrt(sxx.clamp_max(limit) * syy.clamp_max(limit) / (sxx * syy))
    return cholesky_from_covariance(torch.stack((sxx.clamp_max(limit), sxy * shrink, syy.clamp_max(limit)), -1), eps)


def cholesky_from_scale_rotation(scale: Tensor, rotation: Tensor, eps: float = EPS) -> Tensor:
    """scale: [..., 2] standard deviations (pixels) along the rotated axes; rotation: [...]
    radians, counter-clockwise from +x -> (l11, l21, l22) [..., 3], clamped like
    `cholesky_from_covariance`."""
    cos, sin = rotation.cos(), rotation.sin()
    v0, v1 = scale[..., 0] ** 2, scale[..., 1] ** 2
    sxx = cos * cos * v0 + sin * sin * v1
    syy = sin * sin * v0 + cos * cos * v1
    sxy = cos * sin * (v0 - v1)
    return cholesky_from_covariance(torch.stack((sxx, sxy, syy), dim=-1), eps)


def scale_rotation_from_cholesky(cholesky: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse of `cholesky_from_scale_rotation`: ([..., 2] scales, largest first; [...] angle
    of the first axis in (-pi/2, pi/2])."""
    sxx, sxy, syy = covariance_from_cholesky(cholesky).unbind(-1)
    half_trace = 0.5 * (sxx + syy)
    radius = torch.sqrt((0.5 * (sxx - syy)) ** 2 + sxy * sxy)
    v0 = half_trace + radius
    v1 = (half_trace - radius).clamp_min(0.0)
    angle = 0.5 * torch.atan2(2.0 * sxy, sxx - syy)
    return torch.stack((v0.sqrt(), v1.sqrt()), dim=-1), angle
