"""The inpainting network: a LaMa-style ResNet U-Net encoder that sees the masked image
and the mask, residual bottleneck blocks with AdaLN conditioned on the adapted DINO
vector, and a head that gives every patch its K Gaussians, rendered by
`tritonsplat.rasterize_patches` with overlap feathering (docs/design.md, section 6).

With `prefill` (the CPU preset: biharmonic, Navier-Stokes and Telea) the encoder also sees
classical fills of the masked image, coarse priors computed from the same inputs, and the
Gaussians render, besides an RGB residual, per-pixel logits that mix the fills: the model
starts out as a fixed blend (`prefill_prior`) and training learns where each fill is right
and what they all miss. Measured on the held-out set: rendering the whole hole from
scratch, a 1,200-step run on 2 CPU cores scored 1.9 dB below Telea; a residual over a
single fill stayed within 0.01 dB of that fill.

With `encoder="efficientnet_lite0"` the encoder starts from EfficientNet-Lite0's ImageNet
stages down to the bottleneck's resolution (`PretrainedEncoder`).

Ablations (`ModelConfig`): `use_dino=False` conditions AdaLN on a pooled encoder feature
instead of DINO; `use_adaln=False` uses plain residual blocks and adds the DINO vector as
a per-channel bias after them; `decoder="conv"` decodes to RGB with convolutions instead
of Gaussians.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tritonsplat import rasterize_patches

from .blocks import Bottleneck
from .classical import PREFILLS, fill_batch
from .config import Config, ModelConfig
from .dino import Adapter, FrozenDINO
from .pretrained import LITE0_MEAN, LITE0_STD, efficientnet_lite0

GEOMETRY = 2 + 3  # offset, Cholesky; then `channels` colors (+ 1 where opacity is learnt)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(8, cout), nn.GELU())


class Up(nn.Module):
    """Upsample x2, concatenate the skip, fuse."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.fuse = nn.Sequential(_conv(cin + cskip, cout), _conv(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.fuse(torch.cat((x, skip), 1))


class PretrainedEncoder(nn.Module):
    """EfficientNet-Lite0's ImageNet stem and stages down to 1/2^D (D = `downsamples`, 1 to
    3: its stages at 1/2, 1/4 and 1/8 give 16, 24 and 40 channels), adapted to the scratch
    encoder's widths by 1x1 convolutions, as the encoder's skips. The image enters
    normalised with mean = std = 0.5 as in ImageNet training; the mask and the classical
    fills enter the stem through weights that start at zero, so that the pretrained
    weights start as they were trained (the BatchNorms are trained too: in training mode
    they normalise by the batch, and their running statistics move to the masked inputs).
    With `full_res` (the conv decoder), a scratch convolution of the inputs gives the skip
    at full resolution, where EfficientNet has none.
    `pretrained=False` builds the same modules without reading the weights (a checkpoint
    then provides them)."""

    STAGE_CHANNELS = (16, 24, 40)

    def __init__(self, inputs: int, channels: list[int], full_res: bool, pretrained: bool = True):
        super().__init__()
        depth = len(channels) - 1
        if not 1 <= depth <= len(self.STAGE_CHANNELS):
            raise ValueError(f"model.downsamples: expected 1 to 3 with encoder='efficientnet_lite0', got {depth}")
        import timm

        net = efficientnet_lite0() if pretrained else timm.create_model("tf_efficientnet_lite0", pretrained=False)
        self.stem = self.widened_stem(net.conv_stem, inputs)
        self.bn, self.stages = net.bn1, net.blocks[:depth]
        self.adapt = nn.ModuleList(
            nn.Conv2d(c, w, 1) for c, w in zip(self.STAGE_CHANNELS[:depth], channels[1:], strict=True)
        )
        self.full = _conv(inputs, channels[0]) if full_res else None

    @staticmethod
    def widened_stem(stem: nn.Conv2d, inputs: int) -> nn.Conv2d:
        """The stem convolution taking `inputs` channels: the RGB weights as trained, zero
        weights for the others."""
        wide = type(stem)(inputs, stem.out_channels, stem.kernel_size, stride=stem.stride, padding=stem.padding,
                          bias=stem.bias is not None)  # fmt: skip
        with torch.no_grad():
            wide.weight.zero_()
            wide.weight[:, :3] = stem.weight
        return wide

    def forward(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """inputs [B, C, H, W]: the masked image (RGB in [0, 1]) first -> skips, full
        resolution (or None) to the bottleneck's."""
        x = self.bn(self.stem(self.normalise(inputs)))
        skips = [self.full(inputs) if self.full is not None else None]
        for stage, adapt in zip(self.stages, self.adapt, strict=True):
            x = stage(x)
            skips.append(adapt(x))
        return skips

    @staticmethod
    def normalise(inputs: torch.Tensor) -> torch.Tensor:
        """RGB normalised as EfficientNet-Lite0 was trained (mean = std = 0.5)."""
        return torch.cat(((inputs[:, :3] - LITE0_MEAN) / LITE0_STD, inputs[:, 3:]), 1)


class GaussianHead(nn.Module):
    """Features at 1/4 resolution -> per patch K Gaussians: grid positions plus tanh
    offsets (bounded by `offset_range` grid cells), Cholesky factors with a positive
    diagonal, `channels` colors, opacity; the head's last layer starts at zero, so every
    Gaussian starts on its grid point, round, mid-grey (or zero when it renders a residual
    and mixing logits)."""

    def __init__(self, cin: int, cfg: ModelConfig, channels: int, residual: bool):
        super().__init__()
        self.color_bias = 0.0 if residual else 0.5
        self.channels = channels
        if cfg.patch_size % 4:
            raise ValueError(f"model.patch_size: expected a multiple of 4, got {cfg.patch_size}")
        self.cfg = cfg
        k = cfg.gaussians_per_patch
        self.params = GEOMETRY + channels + int(cfg.learn_opacity)
        self.proj = nn.Conv2d(cin, k * self.params, kernel_size=cfg.patch_size // 4, stride=cfg.patch_size // 4)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        side, p = cfg.gaussians_per_side, cfg.patch_size
        self.cell = p / side
        t = (torch.arange(side) + 0.5) * self.cell
        gy, gx = torch.meshgrid(t, t, indexing="ij")
        self.register_buffer("grid", torch.stack((gx.reshape(-1), gy.reshape(-1)), -1), persistent=False)
        sigma0 = 0.6  # in cells
        # widths bounded on both sides. Below: needle-thin Gaussians miss every pixel
        # centre, get no gradient and die (seen: sigma 0.1 px with a 0.05-cell floor).
        # Above: in "sum" mode a wider Gaussian is also a brighter one, and unbounded
        # widths were seen to grow to 10 cells within 300 steps, every patch collapsing
        # to one smooth blob (the loss prefers smooth fills under uncertainty).
        self.min_sigma, self.max_sigma = 0.25, 1.5
        frac = (sigma0 - self.min_sigma) / (self.max_sigma - self.min_sigma)
        self.diag_bias = math.log(frac / (1 - frac))  # sigmoid^-1
        self.coverage = 2 * math.pi * sigma0**2  # sum over a cell's pixels of one G, per pixel

    def forward(self, feats: torch.Tensor):
        b = feats.shape[0]
        raw = self.proj(feats)  # [B, K*params, Hp, Wp]
        hp, wp = raw.shape[-2:]
        raw = raw.reshape(b, self.cfg.gaussians_per_patch, self.params, hp, wp).permute(0, 3, 4, 1, 2)
        offset, chol, color = raw[..., :2], raw[..., 2:5], raw[..., 5 : 5 + self.channels]
        means = self.grid + torch.tanh(offset) * (self.cfg.offset_range * self.cell)
        span = self.max_sigma - self.min_sigma
        diag = self.cell * (torch.sigmoid(chol[..., 0::2] + self.diag_bias) * span + self.min_sigma)
        shear = self.cell * self.max_sigma * torch.tanh(chol[..., 1])
        cholesky = torch.stack((diag[..., 0], shear, diag[..., 1]), -1)
        # opacity fixed to 1 unless learnt: a sigmoid opacity saturates at 0 and the
        # Gaussian stops learning (seen: mean opacity 0.002 after 500 steps at lr 1e-3)
        opacity = torch.sigmoid(raw[..., -1]) if self.cfg.learn_opacity else None
        scale = 0.5 if self.cfg.learn_opacity else 1.0  # the starting opacity
        colors = (color + self.color_bias) / (scale * self.coverage)
        return means, cholesky, colors, opacity


def _fills(cfg: ModelConfig) -> list[str]:
    """The configured classical fills, checked (a bare name or "none" from an older
    configuration is read as a list)."""
    fills = cfg.prefill
    if isinstance(fills, str):
        fills = [] if fills == "none" else [fills]
    unknown = [f for f in fills if f not in PREFILLS]
    if unknown:
        raise ValueError(f"model.prefill: expected names from {sorted(PREFILLS)}, got {fills!r}")
    if len(fills) > 1 and (len(cfg.prefill_prior) != len(fills) or min(cfg.prefill_prior) <= 0):
        raise ValueError(
            f"model.prefill_prior: expected {len(fills)} positive mixing weights (one per fill), "
            f"got {cfg.prefill_prior!r}"
        )
    return list(fills)


class InpaintNet(nn.Module):
    def __init__(self, cfg: ModelConfig, dino: FrozenDINO | None, pretrained: bool = True):
        """`pretrained=False`: a pretrained encoder's modules are built without reading its
        weights (a checkpoint about to be loaded provides them)."""
        super().__init__()
        self.cfg = cfg
        if cfg.image_size % cfg.patch_size or cfg.image_size % 8:
            raise ValueError(f"model.image_size: expected a multiple of 8 and of patch_size, got {cfg.image_size}")
        ch = [min(cfg.base_channels * 2**i, cfg.max_channels) for i in range(cfg.downsamples + 1)]
        self.fills = _fills(cfg)
        inputs = 4 + 3 * len(self.fills)
        # rendered channels: RGB (a residual when there are fills), then mixing logits
        out = 3 + len(self.fills) * (len(self.fills) > 1)
        if len(self.fills) > 1:
            self.register_buffer("prior_logits", torch.tensor(cfg.prefill_prior).log()[:, None, None], persistent=False)
        if cfg.encoder == "scratch":
            self.stem = nn.Sequential(nn.Conv2d(inputs, ch[0], 7, padding=3), nn.GELU())
            self.down = nn.ModuleList(_conv(ch[i], ch[i + 1], stride=2) for i in range(cfg.downsamples))
        elif cfg.encoder == "efficientnet_lite0":
            self.encoder = PretrainedEncoder(inputs, ch, full_res=cfg.decoder == "conv", pretrained=pretrained)
        else:
            raise ValueError(f"model.encoder: expected 'scratch' or 'efficientnet_lite0', got {cfg.encoder!r}")
        self.dino = dino if cfg.use_dino else None
        cond_dim = dino.dim if (cfg.use_dino and dino is not None) else ch[-1]
        self.adapter = Adapter(cond_dim, cfg.adapter_mult) if self.dino is not None else None
        self.pool_cond = nn.Linear(ch[-1], cond_dim) if self.dino is None else None
        self.bottleneck = Bottleneck(ch[-1], cond_dim if cfg.use_adaln else 0, cfg.bottleneck_blocks)
        self.bias_cond = nn.Linear(cond_dim, ch[-1]) if not cfg.use_adaln else None
        self.cond_norm = nn.LayerNorm(cond_dim, elementwise_affine=False) if cfg.cond_norm else nn.Identity()
        # decode from 1/2^D up to 1/4 with skips; the conv ablation continues to full size
        self.up = nn.ModuleList(Up(ch[i + 1], ch[i], ch[i]) for i in reversed(range(2, cfg.downsamples)))
        if cfg.decoder == "gaussian":
            self.head = GaussianHead(ch[2], cfg, out, residual=bool(self.fills))
        elif cfg.decoder == "conv":
            self.to_full = nn.ModuleList((Up(ch[2], ch[1], ch[1]), Up(ch[1], ch[0], ch[0])))
            self.head = nn.Conv2d(ch[0], out, 3, padding=1)
            if self.fills:  # the residual and the logits start at zero
                nn.init.zeros_(self.head.weight)
                nn.init.zeros_(self.head.bias)
        else:
            raise ValueError(f"model.decoder: expected 'gaussian' or 'conv', got {cfg.decoder!r}")

    @property
    def dino_source(self) -> str:
        """Where the DINO weights came from (`FrozenDINO.source`), or "none" without DINO."""
        return self.dino.source if self.dino is not None else "none"

    @property
    def dino_provenance(self) -> dict:
        """The DINO weights' record (`FrozenDINO.provenance`: package, version, sha256,
        caveat), empty for random weights or without DINO."""
        return self.dino.provenance if self.dino is not None else {}

    def blend(self, fills: list[torch.Tensor]) -> torch.Tensor:
        """The starting blend: the classical fills mixed at their prior weights, what the
        network outputs before any training (its residual and mixing logits start at 0)."""
        if not fills:
            raise ValueError("fills: the starting blend needs a network with classical fills (model.prefill)")
        if len(fills) == 1:
            return fills[0]
        weights = torch.softmax(self.prior_logits[:, 0, 0], 0)
        return sum(w * f for w, f in zip(weights, fills, strict=True))

    def encode(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """Encoder skips from full resolution (None where unused) down to the bottleneck's."""
        if self.cfg.encoder != "scratch":
            return self.encoder(inputs)
        x = self.stem(inputs)
        skips = [x]
        for down in self.down:
            x = down(x)
            skips.append(x)
        return skips

    def condition(self, masked: torch.Tensor, bottom: torch.Tensor):
        """(conditioning vector, masked-image DINO feature or None)."""
        if self.dino is None:
            return self.pool_cond(bottom.mean((-2, -1))), None
        feature = self.dino(masked)
        return self.adapter(feature), feature

    def forward(self, image: torch.Tensor, mask: torch.Tensor, fills: list[torch.Tensor] | None = None) -> dict:
        """image [B, 3, H, W] in [0, 1] (holes may hold anything), mask [B, 1, H, W], 1 = hole;
        `fills`: the classical fills of `self.fills` when already computed (training makes
        them off the main thread: `classical.fill_batch` of the masked image), else made here.
        Returns the prediction, the composite with the known pixels, the DINO features, and
        `gaussians`: the rendered Gaussians as `rasterize_patches` took them (means
        [B, Hp, Wp, K, 2] patch-local, cholesky [..., 3], colors [..., C], opacity or None),
        or None for the conv decoder.

        Under `torch.autocast` the convolutions run in the autocast dtype; the head, the
        rasterizer and the blend of the fills always run in float32 (Gaussian positions and
        a residual of a few hundredths are where bfloat16's 8 bits would show)."""
        masked = image * (1 - mask)
        inputs = [masked, mask]
        if fills is None:
            fills = fill_batch(self.fills, masked, mask)
        elif len(fills) != len(self.fills):
            raise ValueError(f"fills: expected {len(self.fills)} fills ({self.fills}), got {len(fills)}")
        inputs += fills
        skips = self.encode(torch.cat(inputs, 1))
        x = skips[-1]
        cond, dino_masked = self.condition(masked, x)
        c = self.cond_norm(cond)  # `cond` itself, unnormalised, is what the adapter's loss compares
        x = self.bottleneck(x, c if self.cfg.use_adaln else None)
        if self.bias_cond is not None:
            x = x + self.bias_cond(c)[:, :, None, None]
        for up, skip in zip(self.up, reversed(skips[2:-1]), strict=True):
            x = up(x, skip)
        gaussians = None
        if self.cfg.decoder == "gaussian":
            with torch.autocast(x.device.type, enabled=False):
                pred, gaussians = self._render(x.float())
        else:
            x = self.to_full[0](x, skips[1])
            x = self.to_full[1](x, skips[0])
            pred = self.head(x).float()
            pred = pred if fills else torch.sigmoid(pred)
        with torch.autocast(pred.device.type, enabled=False):
            if len(fills) == 1:
                pred = fills[0] + pred
            elif fills:  # per-pixel softmax over the fills, from the prior's weights
                weights = torch.softmax(self.prior_logits + pred[:, 3:], 1)  # [B, n, H, W]
                mixed = torch.einsum("bnhw,bnchw->bchw", weights, torch.stack(fills, 1))
                pred = mixed + pred[:, :3] if self.cfg.residual else mixed
            output = pred * mask + image * (1 - mask)
        return dict(pred=pred, output=output, cond=cond, dino_masked=dino_masked, gaussians=gaussians)

    def _render(self, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Features at 1/4 resolution -> (rendered channels [B, C, H, W], the Gaussians)."""
        means, chol, colors, opacity = self.head(x)
        gaussians = dict(means=means, cholesky=chol, colors=colors, opacity=opacity)
        pred = rasterize_patches(
            means, chol, colors, opacity, patch_size=self.cfg.patch_size, overlap=self.cfg.overlap,
            mode="sum", window=self.cfg.window,
        )  # fmt: skip
        return pred, gaussians


def build_model(cfg: Config, pretrained: bool = True) -> InpaintNet:
    """The network of `cfg`, with its frozen DINO (weights as `cfg` says where to find them).
    `pretrained=False`: a pretrained encoder is not read (its weights are about to come from
    a checkpoint)."""
    dino = None
    if cfg.model.use_dino:
        dino = FrozenDINO(cfg.model.dino_model, cfg.model.dino_input, cfg.dino_weights, cfg.dino_random, cfg.train.seed)
    return InpaintNet(cfg.model, dino, pretrained=pretrained)
