"""Reading photographs and masks as a photo viewer shows them, and writing the result
back in the photograph's own format.

- EXIF orientation is applied to the image and to the mask (`PIL.ImageOps.exif_transpose`
  for 8-bit files, the same eight transposes for 16-bit ones); the result is written
  upright, without the orientation tag.
- An image keeps its mode: 8- or 16-bit RGB, RGBA (the alpha is untouched outside the
  hole and continued into it), grayscale (8 or 16 bits) and grayscale with alpha. A
  palette image is written back as RGB (RGBA when it has a transparent colour), a 1-bit
  one as 8-bit grayscale. CMYK and floating-point images are refused with the command
  that converts them.
- A mask marks the hole in white or in any colour: a pixel's hole weight is its
  brightest channel (times its alpha, for a mask painted on a transparent layer),
  relative to the brightest pixel of the mask (so a mask painted in red is all hole
  where it is red), with values below 4% counted as black (JPEG noise) and above 96% as
  white. Pixels of weight
  between 0 and 1 (an anti-aliased, soft edge) are filled, and the fill is blended over
  them in that proportion: `out = w * fill + (1 - w) * photograph`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import (
    EmptyMask,
    FullMask,
    InvertedMask,
    MaskSizeMismatch,
    MissingFile,
    UnreadableImage,
    UnsupportedMode,
    UnwritableImage,
)

BLACK, WHITE = 0.04, 0.96  # mask values at or below BLACK are no hole, at or above WHITE all hole
TRAINED_RATIO = 0.6  # the largest hole ratio of the training curriculum
INVERTED_RATIO = 0.7  # above this, the mask is taken to be inverted unless told otherwise
ORIENTATION = 0x0112  # the EXIF tag
# the array transposes of EXIF orientations 2-8, as exif_transpose does them
_TRANSPOSES = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
_CONVERT_HINT = (
    'convert it to RGB first, for example `python -c "from PIL import Image; '
    "Image.open('IN').convert('RGB').save('OUT.png')\"`"
)


@dataclass
class Picture:
    """An image as read: `array` [H, W, C] as stored (uint8 or uint16; C = 1 gray, 2 gray
    + alpha, 3 RGB, 4 RGBA), upright; `rgb` [3, H, W] float32 in [0, 1] for the model."""

    array: np.ndarray
    path: Path
    orientation: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def bits(self) -> int:
        return 16 if self.array.dtype == np.uint16 else 8

    @property
    def has_alpha(self) -> bool:
        return self.array.shape[-1] in (2, 4)

    @property
    def color(self) -> np.ndarray:  # [H, W, 1 or 3], without the alpha
        return self.array[..., :1] if self.array.shape[-1] <= 2 else self.array[..., :3]

    @property
    def size(self) -> tuple[int, int]:  # (width, height), as PIL says it
        return self.array.shape[1], self.array.shape[0]

    @property
    def rgb(self) -> torch.Tensor:
        c = self.color.astype(np.float32) / (65535.0 if self.bits == 16 else 255.0)
        if c.shape[-1] == 1:
            c = np.repeat(c, 3, axis=-1)
        return torch.from_numpy(np.ascontiguousarray(c)).permute(2, 0, 1).contiguous()


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(ORIENTATION, 1)) or 1
    except Exception:  # noqa: BLE001 - a broken EXIF block: as stored
        return 1


def _open(path: Path, arg: str) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise MissingFile(f"{arg}: no such file: {path}", arg=arg, path=path)
    try:
        img = Image.open(path)
        img.load()
    except Exception as e:  # noqa: BLE001 - PIL raises several kinds
        raise UnreadableImage(f"{arg}: cannot read {path} as an image ({e})", arg=arg, path=path) from e
    return img


def _sixteen_bit(path: Path) -> np.ndarray | None:
    """The pixels of a 16-bit PNG or TIFF as [H, W, C] uint16 RGB(A)/gray, else None
    (PIL reads 16-bit RGB as 8-bit, so OpenCV reads those)."""
    if path.suffix.lower() not in (".png", ".tif", ".tiff"):
        return None
    if path.suffix.lower() == ".png":
        with open(path, "rb") as f:
            header = f.read(25)
        if len(header) == 25 and header[24] != 16:  # the IHDR bit depth: an 8-bit PNG is PIL's to read
            return None
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        return None
    if arr.ndim == 2:
        return arr[..., None]
    if arr.shape[-1] == 3:
        return arr[..., ::-1]
    if arr.shape[-1] == 4:
        return arr[..., [2, 1, 0, 3]]
    return None


def read_image(path: Path, arg: str = "--image") -> Picture:
    path = Path(path)
    img = _open(path, arg)
    orientation = _orientation(img)
    notes = [f"EXIF orientation {orientation} applied (written back upright)"] if orientation != 1 else []
    if img.mode == "CMYK":
        raise UnsupportedMode(f"{arg}: {path} is a CMYK image, which this model does not read; {_CONVERT_HINT}",
                              arg=arg, path=path)  # fmt: skip
    deep = _sixteen_bit(path)
    if deep is not None:
        if orientation in _TRANSPOSES:
            deep = _TRANSPOSES[orientation](deep)
        return Picture(np.ascontiguousarray(deep), path, orientation, notes)
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode == "P":
        mode = "RGBA" if "transparency" in img.info else "RGB"
        notes.append(f"palette image: written back as {mode}")
        img = img.convert(mode)
    elif mode == "1":
        notes.append("1-bit image: written back as 8-bit grayscale")
        img = img.convert("L")
    elif mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img)
        if arr.min() < 0 or arr.max() > 65535:
            raise UnsupportedMode(f"{arg}: {path} has 32-bit integer pixels outside 0-65535; save it as a 16-bit PNG",
                                  arg=arg, path=path)  # fmt: skip
        return Picture(np.ascontiguousarray(arr.astype(np.uint16)[..., None]), path, orientation, notes)
    if mode not in ("RGB", "RGBA", "L", "LA"):
        raise UnsupportedMode(
            f"{arg}: expected an 8- or 16-bit RGB, RGBA, grayscale or palette image, got mode {img.mode!r} in "
            f"{path}; {_CONVERT_HINT}",
            arg=arg,
            path=path,
        )
    arr = np.asarray(img)
    return Picture(np.ascontiguousarray(arr if arr.ndim == 3 else arr[..., None]), path, orientation, notes)


def read_mask(path: Path, size: tuple[int, int], image_orientation: int = 1, arg: str = "--mask",
              invert: bool = False) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """[H, W] float32 hole weights in [0, 1] (module docstring: any non-black colour is
    hole, soft edges in proportion), upright, for an image of `size` (width, height)."""
    path = Path(path)
    img = _open(path, arg)
    notes = []
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        value = np.asarray(img).astype(np.float32)
        value = value / (65535.0 if value.max() > 255 else 255.0)
    elif img.mode in ("L", "1", "RGB", "RGBA", "LA", "P"):
        rgba = np.asarray(img.convert("RGBA")).astype(np.float32) / 255
        value = rgba[..., :3].max(-1) * rgba[..., 3]
        spread = rgba[..., :3].max(-1) - rgba[..., :3].min(-1)
        if float((spread > 0.1).mean()) > 0.001:
            notes.append("mask in colour: every non-black pixel counts as hole")
    else:
        raise UnsupportedMode(f"{arg}: expected a grayscale, RGB or RGBA mask (white = hole), got mode {img.mode!r} "
                              f"in {path}", arg=arg, path=path)  # fmt: skip
    if img.size != tuple(size):
        hint = ""
        if image_orientation in (5, 6, 7, 8) and img.size == tuple(size)[::-1]:
            hint = (
                f"; the image carries EXIF orientation {image_orientation} and is read rotated, as a viewer "
                "shows it: the mask matches its stored, unrotated pixels, so rotate the mask the same way"
            )
        raise MaskSizeMismatch(f"--mask: size {img.size} differs from the image's {tuple(size)} ({path}){hint}",
                               arg=arg, path=path)  # fmt: skip
    if invert:
        value = 1 - value
    peak = float(value.max())
    if BLACK < peak < 1:  # a mask painted in a darker colour: its brightest pixels are the full hole
        value = value / peak
    weight = np.clip((value - BLACK) / (WHITE - BLACK), 0, 1).astype(np.float32)
    soft = int(((weight > 0) & (weight < 1)).sum())
    if soft:
        notes.append(f"soft mask: {soft} pixels between black and white; the fill is blended over them in proportion")
    return weight, notes


def read_pair(image_path: Path, mask_path: Path, invert: bool = False, allow_large: bool = False,
              ) -> tuple[Picture, torch.Tensor, list[str]]:  # fmt: skip
    """(picture, hole weights [H, W] in [0, 1], notes) after every check on the pair: what
    `python -m model.inpaint` and the inpainting page read. Raises `errors.EmptyMask` and
    `errors.FullMask` (ValueErrors) for an empty or full mask, and `errors.InvertedMask`
    for one that is mostly hole (likely inverted) unless `invert` or `allow_large`; a hole
    above the training range is a note starting with "warning:"."""
    picture = read_image(image_path)
    weight, notes = read_mask(mask_path, picture.size, picture.orientation, invert=invert)
    ratio = float((weight > 0).mean())
    if ratio == 0:
        raise EmptyMask(f"--mask: empty (every pixel black) in {mask_path}: nothing to inpaint; white marks the hole",
                        arg="--mask", path=mask_path)  # fmt: skip
    if ratio == 1:
        raise FullMask(f"--mask: full (every pixel a hole) in {mask_path}: nothing to inpaint from", arg="--mask",
                       path=mask_path)  # fmt: skip
    if ratio > INVERTED_RATIO and not allow_large:
        raise InvertedMask(
            f"--mask: {ratio:.0%} of {mask_path} is hole (white = hole): is the mask inverted? Pass --invert-mask "
            f"if white marks what to keep, or --allow-large-hole to fill {ratio:.0%} of the image anyway",
            ratio=ratio,
            arg="--mask",
            path=mask_path,
        )
    if ratio > TRAINED_RATIO:
        notes.append(f"warning: the hole is {ratio:.0%} of the image, above the {TRAINED_RATIO:.0%} the model was "
                     "trained on; expect a smooth, blurry fill")  # fmt: skip
    return picture, torch.from_numpy(weight), picture.notes + notes


def compose(picture: Picture, fill: torch.Tensor, weight: np.ndarray) -> np.ndarray:
    """The photograph's own array with `fill` ([3, H, W] in [0, 1]) blended in by `weight`
    ([H, W]): pixels of weight 0 exactly as stored, of weight 1 all fill. Grayscale takes
    the fill's channel mean; an alpha channel is continued into the hole (OpenCV's Telea
    on the alpha alone, held within the alpha's range on the hole's rim) and untouched
    outside it."""
    peak = 65535.0 if picture.bits == 16 else 255.0
    f = fill.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    if picture.color.shape[-1] == 1:
        f = f.mean(-1, keepdims=True)
    w = weight[..., None]
    base = picture.color.astype(np.float32)
    color = w * (f * peak) + (1 - w) * base
    parts = [color]
    if picture.has_alpha:
        alpha = picture.array[..., -1:]
        hole = (weight > 0).astype(np.uint8)
        a8 = (alpha[..., 0] >> 8).astype(np.uint8) if picture.bits == 16 else alpha[..., 0]
        filled = cv2.inpaint(a8, hole, 3, cv2.INPAINT_TELEA).astype(np.float32) * (257.0 if picture.bits == 16 else 1)
        ring = (cv2.dilate(hole, np.ones((3, 3), np.uint8)) > 0) & (hole == 0)
        if ring.any():  # within the alpha's range around the hole: an opaque picture stays opaque
            filled = filled.clip(float(alpha[ring].min()), float(alpha[ring].max()))
        parts.append(w * filled[..., None] + (1 - w) * alpha.astype(np.float32))
    out = np.concatenate(parts, -1).round().clip(0, peak).astype(picture.array.dtype)
    keep = weight == 0
    out[keep] = picture.array[keep]  # bit-exact, whatever the float round trip did
    return out


_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_EIGHT_BIT_ONLY = {".jpg", ".jpeg", ".webp", ".bmp"}


def write_image(array: np.ndarray, path: Path, arg: str = "--out") -> None:
    """[H, W, C] uint8 or uint16 -> an image file in that mode (16 bits: PNG or TIFF)."""
    path = Path(path)
    suffix = path.suffix.lower()
    channels = array.shape[-1]
    if array.dtype == np.uint16:
        if suffix not in (".png", ".tif", ".tiff"):
            raise UnwritableImage(f"{arg}: {path.name} cannot hold the image's 16 bits per channel: write .png or .tif",
                                  arg=arg, path=path)  # fmt: skip
        if channels == 2:
            raise UnwritableImage(f"{arg}: 16-bit grayscale with alpha is not written; convert the image to RGBA first",
                                  arg=arg, path=path)  # fmt: skip
        bgr = array[..., 0] if channels == 1 else array[..., [2, 1, 0, 3][:channels]]
        if not cv2.imwrite(str(path), np.ascontiguousarray(bgr)):
            raise OSError(f"{arg}: could not write {path}")
        return
    if suffix in _EIGHT_BIT_ONLY - {".webp"} and channels in (2, 4):
        raise UnwritableImage(
            f"{arg}: {path.name} cannot hold the image's alpha channel: write .png", arg=arg, path=path
        )
    Image.fromarray(array[..., 0] if channels == 1 else array, _MODES[channels]).save(path)
