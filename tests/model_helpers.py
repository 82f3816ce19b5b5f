"""A tiny configuration of the inpainting model for fast tests, on a tiny data set: the
two photographs that ship with scikit-learn (one to train on, one held out), so that no
test spends its time decoding the optional 5K wallpapers."""

from pathlib import Path

import sklearn.datasets

from tritonsplat_inpaint.config import Config, DataConfig, ModelConfig, TrainConfig

TINY_DATA = str(Path(sklearn.datasets.__file__).parent / "images")

TINY_SET = [
    "model.image_size=32", "model.base_channels=8", "model.max_channels=16", "model.bottleneck_blocks=1",
    "model.gaussians_per_side=4", "model.dino_input=28", "train.batch_size=2", "train.log_every=1",
    f"data.folder={TINY_DATA}",
]  # fmt: skip


def tiny_config(**train) -> Config:
    return Config(
        preset="tiny",
        model=ModelConfig(image_size=32, base_channels=8, max_channels=16, bottleneck_blocks=1, gaussians_per_side=4,
                          dino_input=28),
        train=TrainConfig(batch_size=2, log_every=1, **train),
        data=DataConfig(folder=TINY_DATA),
    )  # fmt: skip
