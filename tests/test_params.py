"""Conversions between covariance forms and the Cholesky factor."""

import math

import pytest
import torch

import tritonsplat as ts


def _random_cholesky(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack(
        (torch.rand(n, generator=g) * 3 + 0.2, torch.randn(n, generator=g), torch.rand(n, generator=g) * 3 + 0.2), -1
    ).double()


def _matrix(sym3):  # (s_xx, s_xy, s_yy) -> [..., 2, 2]
    a, b, c = sym3.unbind(-1)
    return torch.stack((torch.stack((a, b), -1), torch.stack((b, c), -1)), -2)


def test_covariance_is_l_lt():
    chol = _random_cholesky()
    lower = torch.zeros(len(chol), 2, 2, dtype=chol.dtype)
    lower[:, 0, 0], lower[:, 1, 0], lower[:, 1, 1] = chol.unbind(-1)
    torch.testing.assert_close(_matrix(ts.covariance_from_cholesky(chol)), lower @ lower.mT)


def test_conic_is_the_inverse_covariance():
    chol = _random_cholesky()
    conic = _matrix(ts.conic_from_cholesky(chol))
    torch.testing.assert_close(
        conic @ _matrix(ts.covariance_from_cholesky(chol)), torch.eye(2).double().expand(50, 2, 2)
    )


@pytest.mark.parametrize("form", ["covariance", "conic"])
def test_round_trips_recover_the_factor(form):
    chol = _random_cholesky()
    if form == "covariance":
        back = ts.cholesky_from_covariance(ts.covariance_from_cholesky(chol))
    else:
        back = ts.cholesky_from_conic(ts.conic_from_cholesky(chol))
    torch.testing.assert_close(back, chol)


def test_scale_rotation_round_trip():
    scale = torch.tensor([[3.0, 1.0], [2.0, 0.5], [1.0, 1.0]], dtype=torch.float64)
    angle = torch.tensor([0.3, -1.2, 0.0], dtype=torch.float64)
    chol = ts.cholesky_from_scale_rotation(scale, angle)
    rot = torch.stack((torch.stack((angle.cos(), -angle.sin()), -1), torch.stack((angle.sin(), angle.cos()), -1)), -2)
    expected = rot @ torch.diag_embed(scale**2) @ rot.mT
    torch.testing.assert_close(_matrix(ts.covariance_from_cholesky(chol)), expected)
    s2, a2 = ts.scale_rotation_from_cholesky(chol)
    torch.testing.assert_close(s2, scale)
    # the angle of an isotropic Gaussian is arbitrary; the others come back modulo pi
    torch.testing.assert_close(
        torch.remainder(a2[:2] - angle[:2] + math.pi / 2, math.pi) - math.pi / 2, torch.zeros(2).double()
    )


@pytest.mark.parametrize(
    "cov",
    [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 2.0, 1.0], [-1.0, 0.0, 2.0], [4.0, -9.0, 1.0]],
    ids=["zero", "rank-1", "indefinite", "negative variance", "indefinite, negative correlation"],
)
def test_degenerate_covariance_becomes_a_thin_gaussian(cov):
    given = torch.tensor(cov, dtype=torch.float64)
    chol = ts.cholesky_from_covariance(given)
    assert torch.isfinite(chol).all()
    assert (chol[..., 0] > 0).all() and (chol[..., 2] > 0).all()
    back = ts.covariance_from_cholesky(chol)
    eps = ts.params.EPS
    # thin: det(Sigma) = (l11 l22)^2 >= eps^2 ...
    assert (chol[..., 0] * chol[..., 2]) ** 2 >= eps**2 * 0.999
    # ... and no wider than asked along either axis (variances at least eps)
    for axis in (0, 2):
        assert back[axis] <= max(given[axis].item(), eps) + 2 * eps
    assert abs(back[1]) <= torch.sqrt(back[0] * back[2]) + 1e-12


@pytest.mark.parametrize(
    "conic", [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1e-12, 0.0, 5.0], [-3.0, 0.5, -1.0]],
    ids=["zero", "rank-1", "nearly flat", "negative definite"],
)  # fmt: skip
def test_degenerate_conic_is_no_wider_than_max_sigma(conic):
    chol = ts.cholesky_from_conic(torch.tensor(conic, dtype=torch.float64))
    assert torch.isfinite(chol).all()
    cov = ts.covariance_from_cholesky(chol)
    limit = ts.params.MAX_SIGMA**2
    assert cov[0] <= limit * (1 + 1e-9) and cov[2] <= limit * (1 + 1e-9) + 2 * ts.params.EPS
    assert (chol[..., 0] > 0).all() and (chol[..., 2] > 0).all()
