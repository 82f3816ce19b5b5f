"""Images for training and evaluation.

`--data DIR` takes any folder of images. With none, the default set is the photographs
that ship inside installed packages (scikit-image's, scikit-learn's and matplotlib's
sample images). A fixed, seeded split by image keeps a held-out set that training never
sees. When Debian's plasma-workspace-wallpapers is installed, one picture of each
wallpaper joins the training side only, so the held-out set (and every figure measured
on it) is the same with or without them.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
# RGB photographs among the packages' sample images (not drawings, text or binary masks)
_SKIMAGE = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
            "motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "ihc.png", "camera.png",
            "brick.png", "grass.png", "gravel.png", "moon.png", "coins.png"]  # fmt: skip
WALLPAPERS = Path("/usr/share/wallpapers")


def wallpaper_paths(root: Path = WALLPAPERS) -> list[Path]:
    """One picture per installed wallpaper: of its light variants, the smallest whose
    short side is at least 1,000 px (names are WIDTHxHEIGHT), else the largest."""
    chosen = []
    for folder in sorted(p for p in root.glob("*/contents/images") if p.is_dir()):
        sized = []
        for p in folder.iterdir():
            w, _, h = p.stem.partition("x")
            if p.suffix.lower() in IMAGE_SUFFIXES and w.isdigit() and h.isdigit():
                sized.append((int(w) * int(h), min(int(w), int(h)), p))
        big = sorted(s for s in sized if s[1] >= 1000)
        if big or sized:
            chosen.append(big[0][2] if big else max(sized)[2])
    return chosen


def default_image_paths() -> list[Path]:
    paths: list[Path] = []
    try:
        import skimage.data

        root = Path(skimage.data.__file__).parent
        paths += [root / name for name in _SKIMAGE if (root / name).is_file()]
    except ImportError:
        pass
    try:
        import sklearn.datasets

        root = Path(sklearn.datasets.__file__).parent / "images"
        paths += sorted(root.glob("*.jpg"))
    except ImportError:
        pass
    import matplotlib.cbook

    paths.append(Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return paths


def folder_image_paths(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--data: no such folder: {folder}")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"--data: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return paths


def split(paths: list[Path], holdout: float, seed: int) -> tuple[list[Path], list[Path]]:
    """(train, held-out): a seeded shuffle by image, at least one image on each side."""
    if len(paths) < 2:
        raise ValueError(f"data: need at least 2 images to hold one out, got {len(paths)}")
    order = sorted(paths)
    random.Random(seed).shuffle(order)
    n_test = min(len(order) - 1, max(1, round(holdout * len(order))))
    return order[n_test:], order[:n_test]


def load_rgb(path: Path, min_side: int, max_side: int | None = None) -> torch.Tensor:
    """[3, H, W] float in [0, 1], grayscale made RGB, rescaled so that its short side
    lies in [min_side, max_side]."""
    img = Image.open(path)
    short = min(img.size)
    target = min_side if short < min_side else max_side if max_side and short > max_side else None
    if target is not None:
        scale = target / short
        size = (max(target, round(img.width * scale)), max(target, round(img.height * scale)))
        img.draft("RGB", size)  # JPEG: decode at a reduced scale when shrinking
        img = img.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    img = img.convert("RGB")
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


class RandomCrops(torch.utils.data.Dataset):
    """Random square crops (at a random scale of 1 to 2x the crop per short side) with
    horizontal flips; `length` items per epoch. Images are held shrunk to a short side of
    at most `max_scale` crops, so a 5K wallpaper gives scenes rather than flat details
    (and does not take 170 MB as floats)."""

    def __init__(self, paths: list[Path], size: int, length: int = 100_000, seed: int = 0, max_scale: int = 4):
        self.images = [load_rgb(p, size, max_scale * size) for p in paths]
        self.size, self.length, self.seed = size, length, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        img = self.images[int(torch.randint(len(self.images), (1,), generator=g))]
        return random_crop(img, self.size, g)


def random_crop(img: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    side = min(img.shape[-2:])
    crop = int(torch.randint(size, min(side, 2 * size) + 1, (1,), generator=g))
    top = int(torch.randint(img.shape[-2] - crop + 1, (1,), generator=g))
    left = int(torch.randint(img.shape[-1] - crop + 1, (1,), generator=g))
    patch = img[:, top : top + crop, left : left + crop][None]
    patch = torch.nn.functional.interpolate(patch, size=(size, size), mode="area")[0]
    if torch.rand((), generator=g) < 0.5:
        patch = patch.flip(-1)
    return patch.clamp(0, 1)


def fixed_crops(paths: list[Path], size: int, per_image: int, seed: int = 0) -> torch.Tensor:
    """[len(paths) * per_image, 3, size, size]: deterministic crops of every image in turn,
    for evaluation."""
    crops = []
    for j, path in enumerate(paths):
        img = load_rgb(path, size)
        g = torch.Generator().manual_seed(seed * 1_000_003 + j)
        crops += [random_crop(img, size, g) for _ in range(per_image)]
    return torch.stack(crops)


def data_paths(cfg) -> tuple[list[Path], list[Path]]:
    """(train, held-out) images of a `Config`. The default set's held-out side never
    depends on whether the optional wallpapers are installed: they only extend the
    training side."""
    if cfg.data.folder:
        return split(folder_image_paths(cfg.data.folder), cfg.data.holdout, cfg.data.split_seed)
    train, held_out = split(default_image_paths(), cfg.data.holdout, cfg.data.split_seed)
    return train + wallpaper_paths(), held_out
