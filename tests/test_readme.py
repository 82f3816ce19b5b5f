"""The examples in README.md run as written (each block continues the one before)."""

import re
from pathlib import Path

import torch


def test_readme_examples_run():
    text = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2
    scope: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)  # rasterize_patches
    assert scope["image"].shape == (1, 3, 64, 64)
    grad = scope["colors"].grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    exec(compile(blocks[1], "README.md", "exec"), scope)  # rasterize, gaussians_at
    assert scope["image"].shape == (1, 3, 64, 64) and scope["image"].sum() > 0
    touching = scope["touching"]
    assert len(touching) == 1 and touching[0].dtype == torch.int64 and len(touching[0]) > 0
