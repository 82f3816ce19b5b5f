"""The evaluation's perceptual scores: the Frechet distance against its textbook form, the
token distance and the texture ratio on cases whose answer is known, and FSR as a
classical method (known pixels kept, the hole filled from its surroundings)."""

import numpy as np
import pytest
import scipy.linalg
import torch

from tritonsplat_inpaint.classical import fsr
from tritonsplat_inpaint.perceptual import frechet_distance, hole_tokens, texture_ratio, token_distance


def _textbook_frechet(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(sa @ sb).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(sa + sb - 2 * root))


def test_frechet_distance_matches_the_textbook_formula_and_is_zero_on_itself():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 6, generator=g)
    b = torch.randn(150, 6, generator=g) @ torch.randn(6, 6, generator=g) * 0.5 + 1.0
    assert frechet_distance(a, b) == pytest.approx(_textbook_frechet(a.double().numpy(), b.double().numpy()), rel=1e-6)
    assert abs(frechet_distance(a, a)) < 1e-6
    assert frechet_distance(a, a + 1) == pytest.approx(6.0, rel=1e-6)  # a shifted mean: |mu|^2 alone
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], b)


def test_token_distance_scores_only_the_tokens_the_hole_touches():
    g = torch.Generator().manual_seed(1)
    truth = torch.randn(2, 4, 4, 8, generator=g)
    fill = truth.clone()
    fill[0, 3, 3] = -truth[0, 3, 3]  # one token opposite: distance 2 there
    masks = torch.zeros(2, 1, 32, 32)
    masks[0, :, 24:32, 24:32] = 1  # touches token (3, 3) only
    masks[1, :, 0:3, 0:3] = 1
    touched = hole_tokens(masks, (4, 4))
    assert touched[0].sum() == 1 and touched[0, 3, 3] and touched[1, 0, 0] and touched[1].sum() == 1
    d = token_distance(fill, truth, touched)
    assert d[0] == pytest.approx(2.0, abs=1e-5) and d[1] == pytest.approx(0.0, abs=1e-6)
    assert token_distance(fill, truth, torch.zeros_like(touched)).abs().max() == 0  # no token: 0, not NaN


def test_texture_ratio_is_one_for_the_truth_and_low_for_a_flat_fill():
    g = torch.Generator().manual_seed(2)
    truth = torch.rand(3, 3, 32, 32, generator=g)
    masks = torch.zeros(3, 1, 32, 32)
    masks[:, :, 8:24, 8:24] = 1
    flat = truth * (1 - masks) + truth.mean((2, 3), keepdim=True) * masks
    assert texture_ratio(truth, truth, masks) == pytest.approx(1.0)
    assert texture_ratio(flat, truth, masks) < 0.35  # only the hole's rim keeps a Laplacian
    assert texture_ratio(2 * truth, truth, masks) == pytest.approx(2.0, rel=1e-5)


def test_fsr_keeps_known_pixels_and_continues_a_smooth_ramp():
    x = torch.linspace(0, 1, 48)
    image = torch.stack([x[None].expand(48, 48), x[:, None].expand(48, 48), 0.5 * torch.ones(48, 48)])
    mask = torch.zeros(1, 48, 48)
    mask[:, 16:32, 16:32] = 1
    out = fsr(image * (1 - mask), mask)
    known = mask[0] == 0
    assert (out - image)[:, known].abs().max() <= 2 / 255  # 8-bit round trip
    assert (out - image)[:, ~known].abs().mean() < 0.03  # a ramp is continued, not left black
