"""Images for training and evaluation.

`--data DIR` takes any folder of images, split by a seeded shuffle of whole images.

With none, the default set is a catalogue of natural photographs, looked at one by one
(drawings, renders, abstract art and pictures that are not of scenes left out):

- the photographs that ship inside Python packages (scikit-image's, scikit-learn's and
  matplotlib's sample images), always there;
- the photographs among Debian's wallpaper packages, there once installed with

      apt-get install plasma-workspace-wallpapers lomiri-wallpapers

  (ukui-wallpapers, gnome-backgrounds and sway-backgrounds were looked at too: they ship
  drawings and abstract art only). The package mate-backgrounds is reserved for an
  independent evaluation and is never read.

The held-out photographs are a fixed list of whole photographs (`HELD_OUT`, drawn once by
a seeded shuffle of the catalogue and written down, so that adding photographs later
never moves one across): training never sees them, evaluation uses only them. Crops of
a held-out photograph never reach training, since the split is by photograph.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
WALLPAPERS = Path("/usr/share/wallpapers")  # plasma-workspace-wallpapers: NAME/contents/images/WxH.ext
BACKGROUNDS = Path("/usr/share/backgrounds")  # lomiri-wallpapers: flat files
INSTALL = "apt-get install plasma-workspace-wallpapers lomiri-wallpapers"

# photographs of scenes (motorcycle_left and _right are one scene: the split keeps them together)
_SKIMAGE = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
            "motorcycle_right.png", "camera.png"]  # fmt: skip
# photographs, but of textures or objects on a plain ground rather than scenes: training only
_SKIMAGE_TRAIN_ONLY = ["brick.png", "grass.png", "gravel.png", "coins.png"]
# left out: moon.png, hubble_deep_field.jpg (astronomy), retina.jpg, ihc.png (microscopy)
_SKLEARN = ["china.jpg", "flower.jpg"]
_PLASMA = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
           "OneStandsOut", "Path", "Volna", "summer_1am"]  # fmt: skip
_LOMIRI = ["Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Kleiber_by_Lukas_Baubkus.jpg",
           "Picture_0B_by_freespace.jpg", "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg",
           "aitzgorri_by_Aitzol_Berasategi.jpg", "friends_by_Aitzol_Berasategi.jpg", "free_by_Peter_Nerlich.jpg",
           "greentock_by_Peter_Nerlich.jpg", "life_by_Aitzol_Berasategi.jpg",
           "picosdeeuropa_by_Aitzol_Berasategi.jpg", "seeding_by_Clements_Engelhardt.jpg",
           "sunset_by_Aitzol_Berasategi.jpg"]  # fmt: skip
# random.Random(0).sample(sorted(scenes), 9) of the 34 scenes above, motorcycles as one
HELD_OUT = ("ColdRipple", "Grey", "Kleiber_by_Lukas_Baubkus", "Picture_0B_by_freespace", "Wine_by_Jakkub_Mede",
            "aitzgorri_by_Aitzol_Berasategi", "friends_by_Aitzol_Berasategi", "grace_hopper",
            "greentock_by_Peter_Nerlich")  # fmt: skip


def photograph_name(path: Path) -> str:
    """A catalogue photograph's name: a Plasma wallpaper's folder name, else the file's stem."""
    return path.parents[2].name if path.parent.name == "images" and path.parent.parent.name == "contents" else path.stem


def wallpaper_paths(root: Path = WALLPAPERS, names: list[str] | None = None) -> list[Path]:
    """One picture per installed Plasma wallpaper (of `names`, or all): of its light
    variants, the smallest whose short side is at least 1,000 px (names are
    WIDTHxHEIGHT), else the largest."""
    chosen = []
    for folder in sorted(p for p in root.glob("*/contents/images") if p.is_dir()):
        if names is not None and folder.parent.parent.name not in names:
            continue
        sized = []
        for p in folder.iterdir():
            w, _, h = p.stem.partition("x")
            if p.suffix.lower() in IMAGE_SUFFIXES and w.isdigit() and h.isdigit():
                sized.append((int(w) * int(h), min(int(w), int(h)), p))
        big = sorted(s for s in sized if s[1] >= 1000)
        if big or sized:
            chosen.append(big[0][2] if big else max(sized)[2])
    return chosen


def package_photographs(train_only: bool = True) -> list[Path]:
    """The catalogue's photographs that ship inside Python packages (with `train_only`,
    also the texture photographs that only training uses)."""
    paths: list[Path] = []
    try:
        import skimage.data

        root = Path(skimage.data.__file__).parent
        names = _SKIMAGE + (_SKIMAGE_TRAIN_ONLY if train_only else [])
        paths += [root / name for name in names if (root / name).is_file()]
    except ImportError:
        pass
    try:
        import sklearn.datasets

        root = Path(sklearn.datasets.__file__).parent / "images"
        paths += [root / name for name in _SKLEARN if (root / name).is_file()]
    except ImportError:
        pass
    import matplotlib.cbook

    paths.append(Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return paths


def debian_photographs() -> list[Path]:
    """The catalogue's photographs among the installed Debian wallpaper packages."""
    return wallpaper_paths(WALLPAPERS, _PLASMA) + [BACKGROUNDS / n for n in _LOMIRI if (BACKGROUNDS / n).is_file()]


def default_image_paths() -> list[Path]:
    """Every installed photograph of the default catalogue, training and held-out."""
    return package_photographs() + debian_photographs()


def default_split() -> tuple[list[Path], list[Path]]:
    """(train, held-out) of the default catalogue: held out by name (`HELD_OUT`)."""
    paths = default_image_paths()
    held_out = [p for p in paths if photograph_name(p) in HELD_OUT]
    missing = len(HELD_OUT) - len(held_out)
    if missing:
        warnings.warn(
            f"data: {missing} of the {len(HELD_OUT)} held-out photographs are not installed ({INSTALL}): "
            f"evaluation uses {len(held_out)}, and its figures are not comparable with the full set's",
            stacklevel=2,
        )
    return [p for p in paths if photograph_name(p) not in HELD_OUT], held_out


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


# evaluation crops come from images shrunk to a short side of at most MAX_SCALE crops: a 5K
# wallpaper then gives scenes rather than flat details. Evaluating on crops of the
# full-size photographs instead scored flat, nearly noiseless patches (biharmonic at 42 dB
# on 10-20% holes), where any residual at all only costs PSNR.
MAX_SCALE = 4
# training holds its images at twice that (a short side of up to 8 crops) and crops 1 to 4
# crops wide: the evaluation's scales and finer ones. Held at MAX_SCALE and cropped 1 to 2
# crops wide, 30 photographs gave about a thousand distinct crops, and a 300-step run
# already scored +0.1 dB over its starting blend on training crops and -0.1 dB on
# held-out ones (measured): it learnt the photographs, not inpainting.
TRAIN_SCALE, TRAIN_ZOOM = 8, 4


class RandomCrops(torch.utils.data.Dataset):
    """Random square crops (1 to `max_zoom` crops wide, resized to the crop) with
    horizontal flips; `length` items per epoch, from images shrunk to a short side of at
    most `max_scale` crops."""

    def __init__(self, paths: list[Path], size: int, length: int = 100_000, seed: int = 0,
                 max_scale: int = TRAIN_SCALE, max_zoom: int = TRAIN_ZOOM):  # fmt: skip
        self.images = [load_rgb(p, size, max_scale * size) for p in paths]
        self.size, self.length, self.seed, self.max_zoom = size, length, seed, max_zoom

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        img = self.images[int(torch.randint(len(self.images), (1,), generator=g))]
        return random_crop(img, self.size, g, self.max_zoom)


def random_crop(img: torch.Tensor, size: int, g: torch.Generator, max_zoom: int = 2) -> torch.Tensor:
    side = min(img.shape[-2:])
    crop = int(torch.randint(size, min(side, max_zoom * size) + 1, (1,), generator=g))
    top = int(torch.randint(img.shape[-2] - crop + 1, (1,), generator=g))
    left = int(torch.randint(img.shape[-1] - crop + 1, (1,), generator=g))
    patch = img[:, top : top + crop, left : left + crop][None]
    patch = torch.nn.functional.interpolate(patch, size=(size, size), mode="area")[0]
    if torch.rand((), generator=g) < 0.5:
        patch = patch.flip(-1)
    return patch.clamp(0, 1)


def fixed_crops(
    paths: list[Path], size: int, per_image: int, seed: int = 0, max_scale: int = MAX_SCALE
) -> torch.Tensor:
    """[len(paths) * per_image, 3, size, size]: deterministic crops of every image in turn,
    for evaluation, at the scales training sees."""
    crops = []
    for j, path in enumerate(paths):
        img = load_rgb(path, size, max_scale * size)
        g = torch.Generator().manual_seed(seed * 1_000_003 + j)
        crops += [random_crop(img, size, g) for _ in range(per_image)]
    return torch.stack(crops)


def data_paths(cfg) -> tuple[list[Path], list[Path]]:
    """(train, held-out) images of a `Config`: a `--data` folder split by a seeded shuffle
    (`data.holdout`, `data.split_seed`), else the default catalogue's fixed split."""
    if cfg.data.folder:
        return split(folder_image_paths(cfg.data.folder), cfg.data.holdout, cfg.data.split_seed)
    return default_split()
