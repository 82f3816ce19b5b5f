"""Configuration: one dataclass tree with defaults that run, presets, printed in full at
the start of every run and saved beside every checkpoint."""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class ModelConfig:
    image_size: int = 128
    base_channels: int = 32  # encoder width at full resolution, doubled per downsample
    max_channels: int = 128
    downsamples: int = 3  # LaMa-style: to 1/8
    # "scratch" (convolutions from random weights), or "efficientnet_lite0": the encoder
    # starts from EfficientNet-Lite0's ImageNet stages (`network.PretrainedEncoder`)
    encoder: str = "scratch"
    bottleneck_blocks: int = 4  # residual blocks with AdaLN at 1/8
    patch_size: int = 16  # one Gaussian token per patch
    gaussians_per_side: int = 8  # K = side^2 Gaussians per patch on a grid (paper: 18 -> 324)
    overlap: int = 1
    window: str = "box"
    offset_range: float = 1.0  # tanh offsets, in grid cells
    learn_opacity: bool = False  # the paper fixes opacity to 1
    dino_model: str = "vit_small_patch14_dinov2"
    dino_input: int = 56  # DINO sees the image resized to this (a multiple of 14; 4x4 tokens)
    adapter_mult: int = 2  # adapter hidden width = mult x DINO width (paper: 4)
    # classical coarse fills (keys of model.classical.PREFILLS) as more encoder inputs: the
    # smooth-continuation prior that a model trained for minutes on 2 CPU cores cannot learn
    # (none in the paper). The decoder renders, beside the RGB residual, per-pixel logits
    # that mix the fills, starting from the mixing weights `prefill_prior`: the best fixed
    # blend on training crops (`python -m model.prior`; Telea only lowered it there)
    prefill: list[str] = field(default_factory=lambda: ["biharmonic", "navier-stokes"])
    prefill_prior: list[float] = field(default_factory=lambda: [0.8, 0.2])
    # with two or more fills: whether the Gaussians also render an RGB residual over the
    # mixed fills (else they render the per-pixel mixing logits alone)
    residual: bool = True
    use_dino: bool = True  # ablation: no semantic branch
    use_adaln: bool = True  # ablation: plain residual blocks
    decoder: str = "gaussian"  # "gaussian" (rasterizer) or "conv" (ablation: plain decoder)
    # the condition (the adapted DINO feature, or the pooled encoder feature) reaches AdaLN
    # layer-normalised: the real DINOv2's CLS feature is ~5x the norm of a random DINO's and
    # varies from image to image, and at the AdaLN layers' zero start it made the first
    # thousand steps learn about half as much (docs/model.md, "Ablation"). False: as the
    # release was trained.
    cond_norm: bool = False

    @property
    def gaussians_per_patch(self) -> int:
        return self.gaussians_per_side**2


@dataclass
class TrainConfig:
    # the default run must end within 15 minutes on 2 cores of an AMD EPYC (no native
    # bfloat16), which took 930 s for 800 steps of the catalogue of 2026-12-03; with 251
    # training photographs and 48 held-out ones to load, 600 steps: 428 s on 2 Intel Xeon
    # cores from a fresh clone, 2026-12-06 (docs/benchmarks.md)
    steps: int = 600
    batch_size: int = 8
    lr: float = 5e-4
    schedule: str = "cosine"  # "constant", or "cosine": decay to lr * lr_final from decay_start to the run's end
    lr_final: float = 0.1
    decay_start: int = 0  # cosine: the rate holds at lr until this step, then falls to lr * lr_final at `steps`
    head_lr: float = 0.01  # the decoder head's last layer learns at this fraction of lr
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    # the loss. cpu-small trains on log_mse alone (with the DINO adapter's own term): in
    # 100-300-step runs from the starting blend, held-out PSNR minus the blend's was -0.01
    # to 0.00 dB with it, and -0.03 to -0.6 dB with L1 + L2 + structure (the weights below,
    # the first settings), with L2 + structure, or without structure (measured, 2026-12-03)
    l1_hole: float = 0.0  # L1 weighted toward the holes
    l1_valid: float = 0.0
    l2_hole: float = 0.0  # squared error, also weighted toward the holes (first setting: 30)
    l2_valid: float = 0.0
    perceptual: float = 0.0  # structure_loss: multi-scale SSIM and edges (first setting: 1)
    log_mse: float = 1.0  # the mean over crops of log10 MSE: minus a tenth of evaluation's mean PSNR
    # losses.FeatureLoss: squared distance of frozen EfficientNet-Lite0 feature maps (LaMa's
    # perceptual loss on another network; DINOv2 stays the evaluation's judge alone)
    feature_loss: float = 0.0
    dino_cosine: float = 1.0
    gan: float = 0.0  # hinge PatchGAN weight (0: off on the CPU preset)
    gan_start: int = 500
    hole_ratio_start: float = 0.2  # curriculum of hole ratios
    hole_ratio_end: float = 0.6
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    # and at the latest this many minutes after the last save (0: by steps alone), so that
    # a long run stopped with its machine loses at most that much
    checkpoint_minutes: float = 10.0
    # the optimisers' moments saved in bfloat16 (`training.compact_moments`): half the
    # checkpoint, for runs kept in the repository; a resume is then close to, not bit-equal
    # with, the uninterrupted run
    compact_moments: bool = False
    # 0: every training crop is fresh (none comes round again, so nothing can be cached);
    # N: cycle through N fixed crops and cache the complete images' DINO features by crop
    crop_pool: int = 0
    # "auto": bfloat16 autocast for the convolutions where the processor computes bfloat16
    # natively (AVX-512 BF16 or AMX on the CPU; any CUDA GPU that has it), float32
    # elsewhere; or "bfloat16" / "float32" (`training.autocast_dtype`)
    precision: str = "auto"
    channels_last: bool = True  # NHWC activations: oneDNN's fast layout on the CPU
    prefetch: bool = True  # make the next batch and its classical fills on a thread meanwhile
    # the learning curve: every `curve_every` steps, held-out PSNR of the model minus its
    # starting blend per bucket, on `curve_per_image` fixed crops of each held-out photograph
    curve_every: int = 150
    curve_per_image: int = 4  # 192 crops of the 48 held-out photographs a point


@dataclass
class DataConfig:
    folder: str | None = None  # None: the default catalogue of photographs (data.py)
    holdout: float = 0.2  # with --data: fraction of its images never seen in training
    split_seed: int = 0  # with --data (the default catalogue holds out a fixed list: data.HELD_OUT)


@dataclass
class Config:
    preset: str = "cpu-small"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    dino_weights: str | None = None  # a local file with the DINO backbone's weights; "random": seeded random ones
    # accept seeded random DINO weights when neither a file nor the hub can be had: the
    # CPU preset asks for it (so it trains on a machine with no network), loudly and on
    # record; the paper preset refuses
    dino_random: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.dumps() + "\n")

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """A configuration from its dict, missing fields at their defaults, fields this
        version does not have left out with a warning (so older saves still load)."""
        sections = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig}
        top = {k: v for k, v in d.items() if k not in sections}
        values = _known(cls, top, ignore=set(sections) | _RECORDS)
        values.setdefault("preset", "custom")
        return cls(**values, **{name: kind(**_known(kind, d.get(name, {}))) for name, kind in sections.items()})

    @classmethod
    def load(cls, path: str | Path) -> Config:
        return cls.from_dict(json.loads(Path(path).read_text()))


# what a run folder's config.json records beside the configuration (not fields of it)
_RECORDS = {"dino_source", "dino_provenance", "world_size", "command", "commands", "precision", "init"}


def _known(kind: type, values: dict, ignore: set[str] = frozenset()) -> dict:
    """The entries of `values` that are fields of `kind`, warning about the others (bar
    `ignore`): fields that this version no longer has."""
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - names - set(ignore))
    if unknown:
        warnings.warn(f"configuration: ignoring {kind.__name__} fields this version does not have: {unknown}",
                      stacklevel=3)  # fmt: skip
    return {k: v for k, v in values.items() if k in names}


def preset(name: str) -> Config:
    if name == "cpu-small":
        return Config()
    if name == "paper":  # 256 px, LaMa-sized encoder, 16 x 16 patches of 324 Gaussians, ViT-B/14 DINOv2
        return Config(
            preset="paper",
            model=ModelConfig(
                image_size=256, base_channels=64, max_channels=512, downsamples=3, bottleneck_blocks=9,
                patch_size=16, gaussians_per_side=18, dino_model="vit_base_patch14_dinov2", dino_input=224,
                adapter_mult=4, prefill=[], prefill_prior=[],
            ),
            train=TrainConfig(
                steps=200_000, batch_size=16, lr=2e-4, schedule="constant", head_lr=1.0, gan=0.3, perceptual=3.0,
                l1_hole=1.0, l1_valid=1.0, l2_hole=0.0, log_mse=0.0,
            ),
            dino_random=False,
        )  # fmt: skip
    raise ValueError(f"preset: expected one of 'cpu-small', 'paper', got {name!r}")


def override(cfg: Config, assignments: list[str]) -> Config:
    """Apply `section.field=value` assignments (value parsed as JSON, else a string)."""
    for item in assignments:
        key, sep, raw = item.partition("=")
        section, _, name = key.partition(".")
        target = getattr(cfg, section, None) if name else cfg
        name = name or section
        if not sep or target is None or not dataclasses.is_dataclass(target) or not hasattr(target, name):
            raise ValueError(f"--set: expected section.field=value with a known field, got {item!r}")
        current = getattr(target, name)
        if dataclasses.is_dataclass(current):
            raise ValueError(f"--set: expected section.field=value with a known field, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,), list: (list,)}
        expected = kinds.get(type(current))
        if expected and not (isinstance(value, expected) and not (isinstance(value, bool) and bool not in expected)):
            raise ValueError(f"--set: {key} expected a {type(current).__name__} (now {current!r}), got {raw!r}")
        setattr(target, name, float(value) if isinstance(current, float) else value)
    return cfg
