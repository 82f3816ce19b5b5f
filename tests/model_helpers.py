"""A tiny configuration of the inpainting model for fast tests."""

from tritonsplat_inpaint.config import Config, ModelConfig, TrainConfig

TINY_SET = [
    "model.image_size=32", "model.base_channels=8", "model.max_channels=16", "model.bottleneck_blocks=1",
    "model.gaussians_per_side=4", "model.dino_input=28", "train.batch_size=2", "train.log_every=1",
]  # fmt: skip


def tiny_config(**train) -> Config:
    return Config(
        preset="tiny",
        model=ModelConfig(image_size=32, base_channels=8, max_channels=16, bottleneck_blocks=1, gaussians_per_side=4,
                          dino_input=28),
        train=TrainConfig(batch_size=2, log_every=1, **train),
    )  # fmt: skip
