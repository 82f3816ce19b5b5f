"""Inpaint photographs with a trained checkpoint: white (or any non-black colour) in the mask is the hole.

    python -m model.inpaint --image IN --mask MASK --out OUT [--ckpt PATH]

IN, MASK and OUT are files, or folders paired by file name (OUT then a folder of PNGs).
The mask marks the hole in white, or in any colour on black; its soft (grey) edge pixels
are filled and the fill blended over them in proportion. Images are read as a photo
viewer shows them (EXIF orientation applied) and written back upright in their own mode:
8 or 16 bits, RGB, RGBA (alpha kept), grayscale. Known pixels are kept exactly. Each
hole is filled at the scale the network was trained for and brought back to full
resolution; large photographs are processed in windows, so memory stays bounded. Without
--ckpt the released checkpoint that ships with the package is used, with the DINO it was
trained with.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..checkpoint import RELEASED, load_model
from ..classical import PREFILLS
from ..cli import Defaults, add_debug, add_threads, entry, prog, set_threads
from ..data import IMAGE_SUFFIXES
from ..images import INVERTED_RATIO, read_pair, write_image
from ..infer import BAND, BAND_WEIGHT, DETAIL, inpaint_picture


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
            raise ValueError(f"--image: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {image}")
        return pairs
    if not out.suffix:
        out = out / (image.stem + ".png")
    elif out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"--out: expected a folder or an image file ({', '.join(sorted(IMAGE_SUFFIXES))}), got {out}")
    return [(image, mask, out)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog("inpaint"), description=__doc__.splitlines()[0],
                                     formatter_class=Defaults)
    parser.add_argument("--image", type=Path, required=True, help="a photograph, or a folder of them")
    parser.add_argument(
        "--mask",
        type=Path,
        required=True,
        help="white (or any non-black colour) = hole; a file, or a folder of masks named as the images",
    )
    parser.add_argument("--out", type=Path, required=True, help="an image file, or a folder")
    parser.add_argument("--ckpt", type=Path, default=RELEASED, help="checkpoint or run folder (default: the released)")
    parser.add_argument("--invert-mask", action="store_true", help="black marks the hole instead of white")
    parser.add_argument(
        "--allow-large-hole",
        action="store_true",
        help=f"fill holes over {round(INVERTED_RATIO * 100)}%% of the image (refused as a likely inverted mask)",
    )
    parser.add_argument(
        "--method",
        choices=("model", "blend", *PREFILLS),
        default="model",
        help="'blend': the network's classical starting fill alone, on the same plan; or a classical fill",
    )
    parser.add_argument("--tile", type=int, default=256, help="window size in working pixels (memory)")
    parser.add_argument("--detail", type=float, default=DETAIL,
                        help="weight (0-1) of the fine detail copied from the photograph into holes filled at "
                        "reduced scales (0: the smooth fill)")  # fmt: skip
    parser.add_argument("--band", choices=[*sorted(PREFILLS), "none"], default=BAND,
                        help="the classical fill whose detail finer than 4 working pixels is mixed into the network's "
                        "own ('none': the network's own)")  # fmt: skip
    parser.add_argument("--band-weight", type=float, default=BAND_WEIGHT,
                        help="the classical band's share (0-1) of that detail (1: in place of the network's, the "
                        "most texture; 0.6: the closest to the truth by PSNR and SSIM)")  # fmt: skip
    parser.add_argument("--dino-weights", help="load the checkpoint with another DINO (a timm weights file)")
    parser.add_argument(
        "--allow-other-dino",
        action="store_true",
        help="accept a DINO other than the one the checkpoint was trained with",
    )
    add_threads(parser)
    add_debug(parser)  # fmt: skip
    args = parser.parse_args(argv)
    set_threads(args.threads)
    for flag, value in (("--detail", args.detail), ("--band-weight", args.band_weight)):
        if not 0 <= value <= 1:
            raise ValueError(f"{flag}: expected a weight from 0 to 1, got {value}")
    pairs = _pairs(args.image, args.mask, args.out)
    loaded = [(read_pair(i, m, args.invert_mask, args.allow_large_hole), o) for i, m, o in pairs]  # check all first
    net, _ = load_model(args.ckpt, args.dino_weights, args.allow_other_dino)
    for (picture, weight, notes), out in loaded:
        for note in notes:
            print(f"{picture.path.name}: {note}", file=sys.stderr)
        array, report = inpaint_picture(net, picture, weight, method=args.method, tile=args.tile,
                                        detail=args.detail,
                                        band=None if args.band == "none" else args.band,
                                        band_weight=args.band_weight)  # fmt: skip
        for note in report.notes:
            print(f"{picture.path.name}: warning: {note}", file=sys.stderr)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_image(array, out)
        scales = ", ".join(f"{s['holes']} at 1/{round(1 / s['scale'])}" for s in report.scales)
        print(f"wrote {out} (holes filled: {scales})")
    return 0


def run() -> int:
    return entry(main)


if __name__ == "__main__":
    raise SystemExit(run())
