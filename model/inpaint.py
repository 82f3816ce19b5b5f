"""Inpaint images with a trained checkpoint.

    python -m model.inpaint --image IN --mask MASK --out OUT [--ckpt PATH]

IN, MASK and OUT are files, or folders paired by file name. In a mask, white (> 127) is
a hole. The image is processed at its own size, padded to a multiple of the patch size
(reflect); known pixels are kept exactly. Without --ckpt the released checkpoint that
ships in the repository is used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .classical import to_uint8
from .data import IMAGE_SUFFIXES
from .evaluate import DEFAULT_CKPT, load_model


def read_pair(image_path: Path, mask_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    for name, path in (("--image", image_path), ("--mask", mask_path)):
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no such file: {path}")
    try:
        img = Image.open(image_path)
        img.load()
    except Exception as e:  # noqa: BLE001 - PIL raises several kinds
        raise ValueError(f"--image: cannot read {image_path} as an image ({e})") from e
    if img.mode not in ("RGB", "RGBA", "L", "P"):
        raise ValueError(f"--image: expected an RGB, RGBA, grayscale or palette image, got mode {img.mode!r}")
    mask_img = Image.open(mask_path)
    if mask_img.mode not in ("L", "1", "RGB", "RGBA", "P"):
        raise ValueError(f"--mask: expected a grayscale or RGB mask, got mode {mask_img.mode!r}")
    if mask_img.size != img.size:
        raise ValueError(f"--mask: size {mask_img.size} differs from the image's {img.size} ({mask_path})")
    image = torch.from_numpy(np.asarray(img.convert("RGB"), np.float32) / 255).permute(2, 0, 1)
    mask = torch.from_numpy((np.asarray(mask_img.convert("L")) > 127).astype(np.float32))[None]
    if mask.sum() == 0:
        raise ValueError(f"--mask: empty (no white pixel) in {mask_path}: nothing to inpaint")
    if mask.sum() == mask.numel():
        raise ValueError(f"--mask: full (every pixel a hole) in {mask_path}: nothing to inpaint from")
    return image, mask


def inpaint(net, image: torch.Tensor, mask: torch.Tensor, multiple: int) -> torch.Tensor:
    """[3, H, W], [1, H, W] -> [3, H, W] with the known pixels exactly as given."""
    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    x = F.pad(image[None], (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    m = F.pad(mask[None], (0, pw, 0, ph), value=0.0)
    with torch.no_grad():
        out = net(x, m)["pred"][0, :, :h, :w].clamp(0, 1)
    return torch.where(mask.bool(), out, image)


def write_png(image: torch.Tensor, path: Path) -> None:
    """[C, H, W] in [0, 1] (C = 3, or 1 for a mask) -> an 8-bit PNG."""
    array = to_uint8(image)
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


def _pairs(image: Path, mask: Path, out: Path) -> list[tuple[Path, Path, Path]]:
    if image.is_dir():
        if not mask.is_dir():
            raise ValueError(f"--mask: expected a folder when --image is one, got {mask}")
        pairs = []
        for p in sorted(q for q in image.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES):
            matches = [q for q in mask.iterdir() if q.stem == p.stem]
            if not matches:
                raise FileNotFoundError(f"--mask: no mask named {p.stem}.* in {mask} for {p.name}")
            pairs.append((p, matches[0], out / (p.stem + ".png")))
        if not pairs:
            raise ValueError(f"--image: no images in {image}")
        return pairs
    return [(image, mask, out / (image.stem + ".png") if out.suffix == "" else out)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--mask", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT)
    args = parser.parse_args(argv)
    pairs = _pairs(args.image, args.mask, args.out)
    loaded = [(read_pair(i, m), o) for i, m, o in pairs]  # check every input before any work
    net, cfg = load_model(args.ckpt)
    for (image, mask), out in loaded:
        result = inpaint(net, image, mask, cfg.model.patch_size)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_png(result, out)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
