"""Training losses: L1 weighted toward the holes, an offline perceptual (structure) term,
a feature loss on a frozen ImageNet network (EfficientNet-Lite0), the DINO adapter's
negative cosine, and an optional hinge PatchGAN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tritonsplat.metrics import ssim


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, w_hole: float, w_valid: float):
    weight = w_hole * mask + w_valid * (1 - mask)
    return ((pred - target).abs() * weight).mean()


def masked_l2(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, w_hole: float, w_valid: float):
    """Squared error weighted toward the holes: its minimiser is the conditional mean,
    what PSNR rewards (L1's is the median, which for an uncertain residual is zero)."""
    weight = w_hole * mask + w_valid * (1 - mask)
    return ((pred - target).square() * weight).mean()


def log_mse(output: torch.Tensor, target: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """The mean over crops of log10 of each crop's mean squared error (whole image, known
    pixels composited): minus a tenth of the mean PSNR that evaluation reports, so its
    gradient weights each crop by 1 / its MSE. An L1 or L2 loss weights crops by their
    error instead, and so learns most from textured crops, where a residual pays, and
    least from smooth ones, where any residual at all costs many dB (measured: L1 + L2
    runs scored 0.1-0.6 dB below their starting blend on held-out crops of 10-20% holes)."""
    mse = (output - target).square().flatten(1).mean(1)
    return torch.log10(mse + eps).mean()


def structure_loss(pred: torch.Tensor, target: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """A perceptual term that needs no downloaded weights: 1 - SSIM at `scales` octaves
    plus the L1 of image gradients (edges). (LPIPS needs VGG/AlexNet weights that this
    machine cannot fetch.)"""
    loss = pred.new_zeros(())
    for i in range(scales):
        if i:
            pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
        if min(pred.shape[-2:]) < 11:
            break
        loss = loss + (1 - ssim(pred, target)).mean()
        for dim in (-1, -2):
            loss = loss + (pred.diff(dim=dim) - target.diff(dim=dim)).abs().mean()
    return loss


class FeatureLoss(nn.Module):
    """A perceptual loss on the feature maps of a frozen ImageNet network: the squared
    distance between the output's and the truth's maps at strides 4, 8 and 16, each layer
    divided by the truth's mean squared activation so that every layer weighs alike. The
    idea is LaMa's high-receptive-field perceptual loss (Suvorov et al. 2022), which uses a
    pretrained segmentation network's features; here EfficientNet-Lite0's ImageNet stages
    (`pretrained.efficientnet_lite0`), kept apart from the DINOv2 that judges the
    evaluation, so that the evaluation's perceptual distance is never a trained target."""

    STAGES = (1, 2, 4)  # timm's tf_efficientnet_lite0 blocks ending at strides 4, 8, 16

    def __init__(self, backbone: nn.Module | None = None):
        super().__init__()
        if backbone is None:
            from .pretrained import efficientnet_lite0

            backbone = efficientnet_lite0()
        self.stem = nn.Sequential(backbone.conv_stem, backbone.bn1)
        self.blocks = backbone.blocks[: max(self.STAGES) + 1]
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # frozen: batch norm always in eval mode
        return super().train(False)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        from .pretrained import LITE0_MEAN, LITE0_STD

        x = self.stem((images - LITE0_MEAN) / LITE0_STD)  # the network's own ImageNet normalisation
        maps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.STAGES:
                maps.append(x)
        return maps

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            truth = self.features(target)
        loss = output.new_zeros(())
        for a, b in zip(self.features(output), truth, strict=True):
            loss = loss + (a.float() - b.float()).square().mean() / b.float().square().mean().clamp(min=1e-6)
        return loss / len(truth)


def dino_cosine(adapted: torch.Tensor, complete: torch.Tensor) -> torch.Tensor:
    """Negative cosine similarity of the adapted masked-image feature to the complete
    image's (shifted to 0 at perfect alignment)."""
    return 1 - F.cosine_similarity(adapted, complete, dim=-1).mean()


class PatchDiscriminator(nn.Module):
    """A small PatchGAN (spectral-normalised convolutions) for the hinge loss."""

    def __init__(self, channels: int = 32):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.net = nn.Sequential(
            sn(nn.Conv2d(4, channels, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(channels, 2 * channels, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * channels, 4 * channels, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(4 * channels, 1, 3, 1, 1)),
        )  # fmt: skip

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat((image, mask), 1))


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()
