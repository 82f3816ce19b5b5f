"""The inpainting model's speed on the CPU: inference of one 256 x 256 image, training
images per second of the default preset, and what torch.compile gains on the AdaLN
blocks and the DINO adapter (eager against compiled, forward + backward)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tritonsplat_inpaint.checkpoint import RELEASED as DEFAULT_CKPT
from tritonsplat_inpaint.checkpoint import load_model
from tritonsplat_inpaint.classical import fill_batch
from tritonsplat_inpaint.config import preset
from tritonsplat_inpaint.data import RandomCrops, default_image_paths
from tritonsplat_inpaint.dino import FeatureCache
from tritonsplat_inpaint.masks import bucket_mask
from tritonsplat_inpaint.network import build_model
from tritonsplat_inpaint.training import autocast_dtype, batch_at, crop_indices, optimiser_step

from .common import environment


def _inference_net():
    if (DEFAULT_CKPT / "model.safetensors").is_file():
        return load_model(DEFAULT_CKPT)[0], "released checkpoint"
    return build_model(preset("cpu-small")).eval(), "cpu-small, untrained (no released checkpoint yet)"


def bench_inference_256(benchmark):
    net, what = _inference_net()
    image = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    mask = torch.from_numpy(bucket_mask(256, 256, "20-40%", np.random.default_rng(0)))[None, None]

    def run():
        with torch.no_grad():
            return net(image, mask)["output"]

    run()
    benchmark.extra_info.update(model=what, **environment())
    benchmark.pedantic(run, rounds=10, warmup_rounds=2)


@pytest.mark.parametrize("dino_cache", [False, True], ids=["fresh-crops", "cached-dino"])
def bench_train_step(benchmark, dino_cache):
    """One optimizer step of the default preset (eager; its precision and layout as
    training sets them, the batch's fills made beforehand: `python -m bench.train_speed`
    times the whole loop). With the cache (a crop pool that comes round again) the
    complete images' DINO features are looked up, not computed."""
    cfg = preset("cpu-small")
    layout = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    net = build_model(cfg).to(memory_format=layout)
    data = RandomCrops(default_image_paths()[:4], cfg.model.image_size)
    images, masks = batch_at(data, cfg, 0, 0, 1)
    batch = (images.contiguous(memory_format=layout), masks, fill_batch(net.fills, images * (1 - masks), masks))
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.train.lr)
    cache, keys = FeatureCache(), crop_indices(cfg, 0, 0, 1)
    dtype = autocast_dtype(cfg, torch.device("cpu"))

    def step():
        complete = cache(net.dino, images, keys) if dino_cache else None
        optimiser_step(net, opt, params, cfg, batch, dtype, complete=complete)

    step()
    benchmark.group = "train step"
    benchmark.extra_info.update(batch=cfg.train.batch_size, compiled=False, dino_cache=dino_cache,
                                autocast=str(dtype), **environment())  # fmt: skip
    benchmark.pedantic(step, rounds=5, warmup_rounds=1)
    benchmark.extra_info["images_per_s"] = cfg.train.batch_size / benchmark.stats.stats.mean


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("part", ["adaln_blocks", "adapter"])
def bench_compile_gain(benchmark, part, compiled):
    torch._dynamo.reset()
    cfg = preset("cpu-small")
    net = build_model(cfg)
    b, c, s = cfg.train.batch_size, min(cfg.model.base_channels * 8, cfg.model.max_channels), cfg.model.image_size // 8
    if part == "adaln_blocks":
        module = net.bottleneck
        args = (torch.randn(b, c, s, s, requires_grad=True), torch.randn(b, net.adapter.net[0].in_features))
    else:
        module = net.adapter
        args = (torch.randn(b, net.adapter.net[0].in_features, requires_grad=True),)
    fn = torch.compile(module) if compiled else module

    def run():
        fn(*args).square().mean().backward()

    for _ in range(3):  # compile and warm up
        run()
    benchmark.group = f"compile gain: {part}"
    benchmark.extra_info.update(part=part, compiled=compiled, **environment())
    benchmark.pedantic(run, rounds=20, warmup_rounds=2)
