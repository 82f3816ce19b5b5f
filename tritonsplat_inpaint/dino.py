"""The frozen DINO backbone (a timm ViT) and the light adapter that maps the masked
image's CLS feature toward the complete image's.

Weights come from a local file (`--dino-weights PATH`) or from timm's hub when it can be
reached. With neither, as on a machine with no network, the model refuses unless random
weights were asked for (`--dino-random`); then it says so once, loudly, seeds them, and
`source` records it, so that every saved configuration and results table shows that no
figure was made with real DINO. A checkpoint records the source its weights were trained
with, and loading it rebuilds that same DINO (`checkpoint.load_model`).
"""

from __future__ import annotations

import socket
import sys

import torch
import torch.nn.functional as F
from torch import nn

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """A quick probe: the hub client retries for about a minute before giving up."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


class FrozenDINO(nn.Module):
    """CLS token of a frozen timm ViT; input [B, 3, H, W] in [0, 1]."""

    def __init__(self, name: str, input_size: int, weights: str | None = None, allow_random: bool = False,
                 seed: int = 0, hub: bool = True):  # fmt: skip
        super().__init__()
        import timm

        kw = dict(img_size=input_size, num_classes=0)
        if weights is not None:
            self.vit = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights)), **kw)
            self.source = f"file:{weights}"
        elif hub and _hub_reachable():
            self.vit = timm.create_model(name, pretrained=True, **kw)
            self.source = "hub"
        elif allow_random and not hub:  # asked for by name (a checkpoint trained with them): no alarm
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                self.vit = timm.create_model(name, pretrained=False, **kw)
            self.source = f"random:seed={seed}"
        elif allow_random:
            print(
                f"\n{'!' * 78}\n!! DINO: no weights for {name} (no --dino-weights file, hub unreachable).\n"
                f"!! Using RANDOM weights (seed {seed}): the semantic branch carries no semantics,\n"
                f"!! and every figure from this run is marked dino=random.\n{'!' * 78}\n",
                file=sys.stderr,
            )
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                self.vit = timm.create_model(name, pretrained=False, **kw)
            self.source = f"random:seed={seed}"
        else:
            raise RuntimeError(
                f"dino: no weights for {name}: pass --dino-weights PATH (a timm checkpoint file), make the "
                "timm hub reachable, or pass --dino-random to run with seeded random weights (recorded as such)"
            )
        self.vit.requires_grad_(False)
        self.vit.eval()
        self.input_size = input_size
        self.dim = self.vit.num_features
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):  # frozen: always in eval mode
        super().train(mode)
        self.vit.eval()
        return self

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, D]
        x = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear", antialias=True,
                          align_corners=False)  # fmt: skip
        return self.vit.forward_features((x - self.mean) / self.std)[:, 0]


class FeatureCache:
    """The complete images' DINO features, kept by crop: the adapter's target costs a
    frozen ViT forward per image per step, but a crop that comes round again (a finite
    crop pool, `train.crop_pool`) has the same feature, so it is computed once."""

    def __init__(self) -> None:
        self.store: dict[int, torch.Tensor] = {}
        self.hits = self.misses = 0

    def __call__(self, dino: FrozenDINO, images: torch.Tensor, keys: list[int]) -> torch.Tensor:
        missing = [i for i, k in enumerate(keys) if k not in self.store]
        if missing:
            for i, feature in zip(missing, dino(images[missing]), strict=True):
                self.store[keys[i]] = feature.clone()
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        return torch.stack([self.store[k] for k in keys])


class Adapter(nn.Module):
    """MLP D -> 4D -> D (GELU) from the masked image's CLS feature toward the complete
    image's; trained with a negative cosine loss (docs/design.md, section 6)."""

    def __init__(self, dim: int, hidden_mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden_mult * dim), nn.GELU(), nn.Linear(hidden_mult * dim, dim))

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return feature + self.net(feature)
