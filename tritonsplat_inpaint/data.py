"""Images for training and evaluation.

`--data DIR` takes any folder of images, split by a seeded shuffle of whole images.

With none, the default set is a catalogue of natural photographs, looked at one by one
(drawings, renders, paintings, abstract art, objects cut out or on a plain studio ground,
and near-duplicates left out: `LEFT_OUT` names each with its reason), each with its source
package, where in it the picture lies, its licence and pixel size (`catalogue()`):

- the photographs that ship inside Python packages (scikit-image's, scikit-learn's and
  matplotlib's sample images), always there;
- the photographs in Debian packages, there once installed with `tools/install_photographs.sh`
  (the packages are `INSTALL_PACKAGES`): Plasma's and Lomiri's wallpapers (the Lomiri ones
  are in lomiri-wallpapers-16.04 and -20.04; the rest of Lomiri's are abstract art, as are
  ukui-wallpapers, gnome-backgrounds and sway-backgrounds, looked at too), the pictures of
  GCompris's activities (WebP inside Qt resource files, read by `sources.RccFile`), Tux
  Paint's photographic templates, Palapeli's puzzles and Jigzo's puzzles (a picture inside
  each puzzle's atlas, read by `sources.pzl_picture`). The package mate-backgrounds is
  reserved for an independent evaluation and is never read.

Pictures inside packaged files are extracted once into a cache folder (`cache_root()`),
keyed by the packaged file's size and modification time, so that the rest of the code
reads image paths. GCompris's 1080-px-high pictures are soft (heavily compressed): they
are halved when extracted. Photographs with a short side under `WHOLE_ONLY_BELOW` px (most
are GCompris's 320 px ones) give whole-image crops only: shrunk to one crop, never zoomed in.

The held-out photographs are a fixed list of whole photographs (`HELD_OUT`, drawn once by
a seeded shuffle and written down, so that adding photographs later never moves one
across): training never sees them, evaluation uses only them. Crops of a held-out
photograph never reach training, since the split is by photograph.
"""

from __future__ import annotations

import fnmatch
import functools
import io
import json
import os
import random
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .sources import RccFile, pzl_picture

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
WALLPAPERS = Path("/usr/share/wallpapers")  # plasma-workspace-wallpapers: NAME/contents/images/WxH.ext
BACKGROUNDS = Path("/usr/share/backgrounds")  # lomiri-wallpapers-16.04, -20.04: flat files
GCOMPRIS = Path("/usr/share/gcompris-qt/rcc")  # gcompris-qt-data: one Qt resource file per activity
TUXPAINT = Path("/usr/share/tuxpaint/templates")  # tuxpaint-data
PALAPELI = Path("/usr/share/palapeli/collection")  # palapeli-data: NAME.jpg and NAME.desktop
JIGZO = Path("/usr/share/games/jigzo/puzzles/00_default")  # jigzo-data: NAME-COLSxROWS.pzl
DOC = Path("/usr/share/doc")  # each package's copyright file: DOC/PACKAGE/copyright
INSTALL_PACKAGES = ("plasma-workspace-wallpapers", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04",
                    "gcompris-qt-data", "tuxpaint-data", "palapeli-data", "jigzo-data")  # fmt: skip
INSTALL = "tools/install_photographs.sh, or: apt-get install " + " ".join(INSTALL_PACKAGES)
_INSTALLS = {  # a path that each package installs
    "plasma-workspace-wallpapers": WALLPAPERS / "Grey",
    "lomiri-wallpapers-16.04": BACKGROUNDS / "Wine_by_Jakkub_Mede.jpg",
    "lomiri-wallpapers-20.04": BACKGROUNDS / "Kleiber_by_Lukas_Baubkus.jpg",
    "gcompris-qt-data": GCOMPRIS,
    "tuxpaint-data": TUXPAINT,
    "palapeli-data": PALAPELI,
    "jigzo-data": JIGZO,
}


def missing_packages() -> list[str]:
    """The Debian packages of the catalogue that are not installed."""
    return [package for package, path in _INSTALLS.items() if not path.exists()]
WHOLE_ONLY_BELOW = 360  # px of short side

# photographs of scenes (motorcycle_left and _right are one scene: the split keeps them together)
_SKIMAGE = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
            "motorcycle_right.png", "camera.png"]  # fmt: skip
# photographs, but of textures or objects on a plain ground rather than scenes: training only
_SKIMAGE_TRAIN_ONLY = ["brick.png", "grass.png", "gravel.png", "coins.png"]
# left out: moon.png, hubble_deep_field.jpg (astronomy), retina.jpg, ihc.png (microscopy)
_SKLEARN = ["china.jpg", "flower.jpg"]
_PLASMA = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey",
           "OneStandsOut", "Path", "Volna", "summer_1am"]  # fmt: skip
# left out of Lomiri's: analogpattern_by_Peter_Nerlich, umang_by_Abhishek_Mudgal, Fossa_by_Jasper_Roks,
# Infinite-Sea_by_Aury88, Painting-Colors_by__herobrine7gamer, warty-final-ubuntu, lomiri-default-background
# (abstract art, renders)
_LOMIRI = ["Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg", "Kleiber_by_Lukas_Baubkus.jpg",
           "Picture_0B_by_freespace.jpg", "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg",
           "aitzgorri_by_Aitzol_Berasategi.jpg", "friends_by_Aitzol_Berasategi.jpg", "free_by_Peter_Nerlich.jpg",
           "greentock_by_Peter_Nerlich.jpg", "life_by_Aitzol_Berasategi.jpg",
           "picosdeeuropa_by_Aitzol_Berasategi.jpg", "seeding_by_Clements_Engelhardt.jpg",
           "sunset_by_Aitzol_Berasategi.jpg"]  # fmt: skip
# GCompris's activities whose resource files hold photographs (the others hold drawings, or
# pictures with transparency); of these, every opaque picture with a long side of 300 px or more
_GCOMPRIS_RCC = ("babyshapes", "categorization", "clickgame", "details", "erase", "explore_farm_animals",
                 "explore_monuments", "explore_world_animals", "explore_world_music")  # fmt: skip
_GCOMPRIS_HALVED = 1060  # px: pictures with a short side of at least this many are halved (soft 1080p)


def _reasons(reason: str, names: str) -> dict[str, str]:
    return dict.fromkeys(names.split(), reason)


# every photograph-like picture of the sources above that is not in the catalogue, looked at
# on contact sheets, with its reason (near-duplicates: the smaller copy goes)
LEFT_OUT = {
    **_reasons("shapes drawn over the photograph", "gcompris-babyshapes-dog"),
    **_reasons(
        "painting with cut-out holes",
        "gcompris-babyshapes-Bosschaert_04_background "
        "gcompris-babyshapes-Paul_Gauguin_006_background gcompris-babyshapes-Pieter_Bruegel_background "
        "gcompris-babyshapes-Van_Gogh_0011_background gcompris-babyshapes-lady_unicorn_background",
    ),
    **_reasons(
        "painting",
        "gcompris-details-Eglise_dAuvers-sur-Oise_background gcompris-details-Gogh4_background "
        "gcompris-details-PortraitOfPereTanguy_background gcompris-details-Van_Gogh_The_Night_Cafe_background "
        "gcompris-details-VincentVanGogh0012_background gcompris-details-VincentVanGogh0013_background "
        "gcompris-details-VincentVanGogh0019_background gcompris-details-VincentVanGoghBridge_background",
    ),
    **_reasons(
        "toy blocks printed with letters or digits: graphics filling the frame",
        "gcompris-categorization-alphabets gcompris-categorization-numbers",
    ),
    **_reasons(
        "object cut out, or on a plain white, grey or black studio ground",
        "gcompris-categorization-fish17 gcompris-categorization-fish18 gcompris-categorization-fish25 "
        "gcompris-categorization-baseball gcompris-categorization-bucket gcompris-categorization-buffetset "
        "gcompris-categorization-chair gcompris-categorization-cup gcompris-categorization-erasers "
        "gcompris-categorization-knife gcompris-categorization-pencil gcompris-categorization-plate "
        "gcompris-categorization-volleyball gcompris-categorization-weighingMachine "
        "gcompris-explore_world_music-middleeast gcompris-categorization-cuttingTool "
        "gcompris-categorization-hammer1 gcompris-categorization-hammer2 gcompris-categorization-hammer5 "
        "gcompris-categorization-hammer6 gcompris-categorization-hammer7 gcompris-categorization-hammer8 "
        "gcompris-categorization-hammer9 gcompris-categorization-measuringTape1 "
        "gcompris-categorization-measuringTape2 gcompris-categorization-measuringTape3 "
        "gcompris-categorization-measuringTape4 gcompris-categorization-measuringTape5 "
        "gcompris-categorization-measuringTape6 gcompris-categorization-multimeter3 "
        "gcompris-categorization-plier1 gcompris-categorization-plier2 gcompris-categorization-plier3 "
        "gcompris-categorization-plier4 gcompris-categorization-scissors1 gcompris-categorization-scissors4 "
        "gcompris-categorization-screwDriver1 gcompris-categorization-screwDriver2 "
        "gcompris-categorization-screwDriver3 gcompris-categorization-spray "
        "gcompris-categorization-tweezer1 gcompris-categorization-wrench",
    ),
    **_reasons(
        "near-duplicate of explore_monuments's copy",
        "gcompris-categorization-colosseum "
        "gcompris-categorization-brandenburgGate gcompris-categorization-greatPyramid "
        "gcompris-categorization-eiffelTower gcompris-details-Neuschwanstein_background "
        "gcompris-details-TajMahal_background",
    ),
    **_reasons("black letterbox bars", "mossy_bark"),
    **_reasons("licence forbids commercial use (CC-BY-NC-SA-1.0)", "jigzo-penguin"),
}

# The held-out photographs: the first catalogue's nine (random.Random(0).sample(sorted(scenes), 9)
# of its 34 scenes, motorcycles as one), and 39 drawn from the photographs added since, by
# source: random.Random(0).sample(sorted(names), k) for, in turn, gcompris (long side 360 px
# or more: k = 25), gcompris-small (short side under WHOLE_ONLY_BELOW, whole-image crops
# only, so few: 5), jigzo-data (3), palapeli-data (2) and tuxpaint-data (4).
# How many: on the earlier nine (docs/model/results.json, 96 crops a photograph), the
# paired differences (model minus each classical method, per bucket) against the closest
# method, biharmonic, spread 0.21-0.24 dB between photographs and 0.73-0.79 dB within
# one; crops of a photograph are correlated, so the standard error that counts is
# photograph-level, sqrt(0.24^2 / n + 0.79^2 / (c n)) for n photographs of c crops: 0.05
# dB needs n >= 25, and 48 photographs of c = 24 crops (evaluation.PER_IMAGE) give about
# 0.04 dB. (Telea's and Navier-Stokes's differences spread more, up to 2.4 dB a crop, but
# their lead of 1.3-2 dB is far beyond doubt.) The evaluation prints each standard error.
HELD_OUT = ("ColdRipple", "Grey", "Kleiber_by_Lukas_Baubkus", "Picture_0B_by_freespace", "Wine_by_Jakkub_Mede",
            "aitzgorri_by_Aitzol_Berasategi", "friends_by_Aitzol_Berasategi", "grace_hopper",
            "greentock_by_Peter_Nerlich",
            "castle-maintenon", "european-honey-bee", "gcompris-categorization-fish13",
            "gcompris-categorization-geothermal", "gcompris-categorization-solar5",
            "gcompris-categorization-victoriaMemorial", "gcompris-categorization-windmill7", "gcompris-clickgame-sea6",
            "gcompris-details-OperaSidney_background", "gcompris-erase-camels", "gcompris-erase-gorilla",
            "gcompris-erase-kitten", "gcompris-erase-long_nosed_monkey", "gcompris-erase-northern_harrier",
            "gcompris-erase-penguin", "gcompris-erase-toucan", "gcompris-explore_farm_animals-dog",
            "gcompris-explore_farm_animals-horse", "gcompris-explore_farm_animals-pig",
            "gcompris-explore_monuments-canyondeChelly", "gcompris-explore_monuments-castillodeSanMarcos",
            "gcompris-explore_monuments-charminar", "gcompris-explore_monuments-chateaudeChambord",
            "gcompris-explore_monuments-georgeWashingtonBirthplace", "gcompris-explore_monuments-hawaMahal",
            "gcompris-explore_monuments-rocamadour", "gcompris-explore_monuments-schwerinPalace",
            "gcompris-explore_monuments-trierImperialBaths", "gcompris-explore_world_animals-dragon",
            "gcompris-explore_world_animals-giraffe", "gcompris-explore_world_animals-hedgehog",
            "gcompris-explore_world_animals-moose", "jigzo-bird", "jigzo-gorilla2", "jigzo-windmill",
            "redwoods_above", "rocks", "sheep", "sun_behind_clouds")  # fmt: skip


@dataclass(frozen=True)
class Photograph:
    """One catalogue photograph: `path` is what training and evaluation read (the packaged
    file itself, or its extraction in the cache); `origin` is where it lies in its package
    (a file, or a packaged file and the picture's path inside it)."""

    name: str
    source: str  # the Python or Debian package
    origin: str
    licence: str
    size: tuple[int, int]  # width, height of `path`, in px
    path: Path


def cache_root() -> Path:
    """Where pictures extracted from packaged files go: $TRITONSPLAT_CACHE/photographs, else
    ~/.cache/tritonsplat/photographs."""
    from .pretrained import cache_dir

    return cache_dir() / "photographs"


def photograph_name(path: Path) -> str:
    """A catalogue photograph's name: a Plasma wallpaper's folder name, else the file's stem."""
    return path.parents[2].name if path.parent.name == "images" and path.parent.parent.name == "contents" else path.stem


def _pixel_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def _record(name: str, source: str, origin: str, licence: str, path: Path) -> Photograph:
    return Photograph(name, source, origin, licence, _pixel_size(path), path)


@functools.cache
def debian_licences(package: str) -> list[tuple[str, str]]:
    """(Files pattern, 'licence; copyright') of a Debian machine-readable copyright file,
    in file order; empty when the package is not installed."""
    path = DOC / package / "copyright"
    if not path.is_file():
        return []
    stanzas = []
    for block in path.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields = _fields(block.splitlines())
        if "files" in fields and "license" in fields:
            licence = fields["license"][0] + (f"; {fields['copyright'][0]}" if fields.get("copyright") else "")
            stanzas += [(pattern, licence) for pattern in " ".join(fields["files"]).split()]
    return stanzas


def _fields(lines: list[str]) -> dict[str, list[str]]:
    """Key: value lines of a stanza (keys lower-cased); indented lines and lines with no key
    continue the last key's values."""
    fields: dict[str, list[str]] = {}
    key = None
    for line in lines:
        head, colon, value = line.partition(":")
        if colon and not line[:1].isspace() and head.replace("-", "").isalpha():
            key = head.strip().lower()
            fields[key] = [value.strip()] if value.strip() else []
        elif key is not None and line.strip():
            fields[key].append(line.strip())
    return fields


def debian_licence(package: str, file_name: str) -> str:
    """The licence that a package's copyright file gives `file_name` (a path relative to
    the upstream source, or a bare file name): its last matching Files pattern."""
    found = "see " + str(DOC / package / "copyright")
    for pattern, licence in debian_licences(package):
        if fnmatch.fnmatch(file_name, pattern) or pattern.endswith("/" + file_name):
            found = licence
    return found


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


def package_catalogue(train_only: bool = True) -> list[Photograph]:
    """The catalogue's photographs that ship inside Python packages (with `train_only`,
    also the texture photographs that only training uses)."""
    found: list[tuple[str, Path]] = []  # (package, path)
    try:
        import skimage.data

        root = Path(skimage.data.__file__).parent
        names = _SKIMAGE + (_SKIMAGE_TRAIN_ONLY if train_only else [])
        found += [("scikit-image", root / name) for name in names if (root / name).is_file()]
    except ImportError:
        pass
    try:
        import sklearn.datasets

        root = Path(sklearn.datasets.__file__).parent / "images"
        found += [("scikit-learn", root / name) for name in _SKLEARN if (root / name).is_file()]
    except ImportError:
        pass
    import matplotlib.cbook

    found.append(("matplotlib", Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))))
    licence = "the Python package's sample data (see its data folder's README or licence)"
    return [_record(photograph_name(p), source, str(p), licence, p) for source, p in found]


def package_photographs(train_only: bool = True) -> list[Path]:
    return [r.path for r in package_catalogue(train_only)]


def _wallpaper_catalogue() -> list[Photograph]:
    plasma = [_record(photograph_name(p), "plasma-workspace-wallpapers", str(p),
                      debian_licence("plasma-workspace-wallpapers", p.parents[2].name), p)
              for p in wallpaper_paths(WALLPAPERS, _PLASMA)]  # fmt: skip
    lomiri = []
    for name in _LOMIRI:
        path = BACKGROUNDS / name
        if path.is_file():
            package = "lomiri-wallpapers-20.04" if name.startswith("Kleiber") else "lomiri-wallpapers-16.04"
            lomiri.append(_record(path.stem, package, str(path), debian_licence(package, name), path))
    return plasma + lomiri


def _tuxpaint_catalogue() -> list[Photograph]:
    paths = sorted(TUXPAINT.glob("*.jpg")) if TUXPAINT.is_dir() else []
    return [_record(p.stem, "tuxpaint-data", str(p), debian_licence("tuxpaint-data", "templates/" + p.name), p)
            for p in paths if p.stem not in LEFT_OUT]  # fmt: skip


def palapeli_licence(desktop: Path) -> str:
    """A Palapeli puzzle's licence, author and web address, from its .desktop file."""
    keys = {"X-KDE-PluginInfo-License": "", "X-KDE-PluginInfo-Author": "", "X-KDE-PluginInfo-Website": ""}
    if desktop.is_file():
        for line in desktop.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key in keys:
                keys[key] = value.strip()
    return "; ".join(v for v in keys.values() if v) or "see " + str(DOC / "palapeli-data" / "copyright")


def _palapeli_catalogue() -> list[Photograph]:
    paths = sorted(PALAPELI.glob("*.jpg")) if PALAPELI.is_dir() else []
    return [_record(p.stem, "palapeli-data", str(p), palapeli_licence(p.with_suffix(".desktop")), p) for p in paths]


def _opaque(img: Image.Image) -> bool:
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        return bool(np.asarray(img.convert("RGBA"))[..., 3].min() == 255)
    return True


def gcompris_licences(rcc: RccFile) -> dict[str, str]:
    """'licence; copyright; source' of every picture that a README inside a GCompris
    resource file names (paragraphs of Copyright, License, Source and Files fields; file
    names relative to the README's folder), by the picture's path in the file."""
    licences = {}
    for readme in (n for n in rcc.names() if n.rsplit("/", 1)[-1].lower() == "readme"):
        folder = readme.rsplit("/", 1)[0]
        for block in rcc.read(readme).decode("utf-8", errors="replace").split("\n\n"):
            fields = _fields(block.splitlines())
            text = "; ".join(fields[k][0] for k in ("license", "copyright", "source") if fields.get(k))
            for values in fields.values():
                for token in " ".join(values).split():
                    if Path(token).suffix.lower() in IMAGE_SUFFIXES:
                        licences[f"{folder}/{token}"] = text
    return licences


EXTRACTION = 1  # bump when the extraction's rules change (sizes, halving, licences): the cache is made again


def _cached(source: str, packaged: Path, extract) -> list[Photograph]:
    """The photographs inside one packaged file (all its candidates, left-out ones
    included), extracted by `extract(packaged, folder) -> rows` once into a cache folder
    keyed by the file's size and modification time and the extraction's version
    (`EXTRACTION`), with a manifest of their records."""
    stat = packaged.stat()
    folder = cache_root() / source / f"{packaged.stem}-{stat.st_size}-{stat.st_mtime_ns}-v{EXTRACTION}"
    manifest = folder / "manifest.json"
    rows = json.loads(manifest.read_text()) if manifest.is_file() else None
    if rows is None or not all((folder / r["file"]).is_file() for r in rows):
        folder.mkdir(parents=True, exist_ok=True)
        rows = extract(packaged, folder)
        names = [r["name"] for r in rows]
        if len(set(names)) != len(names):
            raise ValueError(f"data: {packaged} gives two pictures one name: {sorted(names)}")
        tmp = manifest.with_name(f"manifest.{os.getpid()}.tmp")  # one per process: no race on the name
        tmp.write_text(json.dumps(rows, indent=1))
        tmp.replace(manifest)
    return [
        Photograph(r["name"], source, r["origin"], r["licence"], tuple(r["size"]), folder / r["file"]) for r in rows
    ]


def _row(name: str, origin: str, licence: str, img: Image.Image, file: str) -> dict:
    return {"name": name, "origin": origin, "licence": licence, "size": list(img.size), "file": file}


def extract_gcompris(rcc_path: Path, folder: Path) -> list[dict]:
    """Every opaque picture of a GCompris resource file with a long side of 300 px or more,
    written into `folder` as it is (WebP), or halved (PNG) when its short side is at least
    _GCOMPRIS_HALVED px."""
    rcc = RccFile.open(rcc_path)
    licences = gcompris_licences(rcc)
    fallback = "see " + str(DOC / "gcompris-qt-data" / "copyright")
    rows = []
    for inner in rcc.names():
        suffix = Path(inner).suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            continue
        blob = rcc.read(inner)
        img = Image.open(io.BytesIO(blob))
        if max(img.size) < 300 or not _opaque(img):
            continue
        name = f"gcompris-{rcc_path.stem}-{Path(inner).stem}"
        if min(img.size) >= _GCOMPRIS_HALVED:
            img, file = img.convert("RGB").reduce(2), name + ".png"
            img.save(folder / file)
        else:
            file = name + suffix
            (folder / file).write_bytes(blob)
        rows.append(_row(name, f"{rcc_path}:{inner}", licences.get(inner, fallback), img, file))
    return rows


def extract_jigzo(pzl: Path, folder: Path) -> list[dict]:
    """A Jigzo puzzle's picture (its atlas's top-left region), written into `folder` as PNG."""
    name = "jigzo-" + pzl.stem.rsplit("-", 1)[0]
    img = pzl_picture(pzl)
    img.save(folder / (name + ".png"))
    licence = debian_licence("jigzo-data", f"puzzles/{pzl.parent.name}/{pzl.name}")
    return [_row(name, str(pzl), licence, img, name + ".png")]


def _gcompris_catalogue() -> list[Photograph]:
    files = [GCOMPRIS / f"{stem}.rcc" for stem in _GCOMPRIS_RCC if (GCOMPRIS / f"{stem}.rcc").is_file()]
    return [r for f in files for r in _cached("gcompris-qt-data", f, extract_gcompris)]


def _jigzo_catalogue() -> list[Photograph]:
    files = sorted(JIGZO.glob("*.pzl")) if JIGZO.is_dir() else []
    return [r for f in files for r in _cached("jigzo-data", f, extract_jigzo)]


def debian_catalogue() -> list[Photograph]:
    """The catalogue's photographs in the installed Debian packages (none left out)."""
    found = _wallpaper_catalogue() + _gcompris_catalogue() + _tuxpaint_catalogue() + _palapeli_catalogue()
    return [r for r in found + _jigzo_catalogue() if r.name not in LEFT_OUT]


def debian_photographs() -> list[Path]:
    return [r.path for r in debian_catalogue()]


def pack_catalogue(folder: Path) -> list[Photograph]:
    """The catalogue as a GPU pack carries it (`gpu_pack`): its photographs, shrunk, with
    their records (`catalogue.json`)."""
    index = folder / "catalogue.json"
    if not index.is_file():
        raise FileNotFoundError(f"TRITONSPLAT_PHOTOGRAPHS={folder}: expected a GPU pack's photographs folder with a "
                                "catalogue.json (python -m tritonsplat_inpaint.gpu_pack write)")  # fmt: skip
    rows = json.loads(index.read_text())
    return [Photograph(r["name"], r["source"], r["origin"], r["licence"], tuple(r["size"]), folder / r["file"])
            for r in rows]  # fmt: skip


def _pack_folder() -> Path | None:
    folder = os.environ.get("TRITONSPLAT_PHOTOGRAPHS")
    return Path(folder) if folder else None


def catalogue() -> list[Photograph]:
    """Every installed photograph of the default catalogue, training and held-out, with its
    record; where $TRITONSPLAT_PHOTOGRAPHS names a GPU pack's photographs, those."""
    pack = _pack_folder()
    return pack_catalogue(pack) if pack else package_catalogue() + debian_catalogue()


def default_image_paths() -> list[Path]:
    """Every installed photograph of the default catalogue, training and held-out (or a GPU
    pack's, as `catalogue`)."""
    pack = _pack_folder()
    return [r.path for r in pack_catalogue(pack)] if pack else package_photographs() + debian_photographs()


def default_split() -> tuple[list[Path], list[Path]]:
    """(train, held-out) of the default catalogue: held out by name (`HELD_OUT`)."""
    paths = default_image_paths()
    held_out = [p for p in paths if photograph_name(p) in HELD_OUT]
    missing = len(HELD_OUT) - len(held_out)
    if missing:
        warnings.warn(
            f"data: {missing} of the {len(HELD_OUT)} held-out photographs are not installed (missing packages: "
            f"{', '.join(missing_packages()) or 'none'}; install with {INSTALL}): "
            f"evaluation uses {len(held_out)}, and its figures are not comparable with the full set's",
            stacklevel=2,
        )
    return [p for p in paths if photograph_name(p) not in HELD_OUT], held_out


def write_catalogue(path: str | Path) -> None:
    """The installed catalogue's records as JSON (name, source, origin, licence, size, path, held_out)."""
    rows = [{**asdict(r), "path": str(r.path), "held_out": r.name in HELD_OUT} for r in catalogue()]
    Path(path).write_text(json.dumps(rows, indent=1))


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


def crop_scale(path: Path, max_scale: int) -> int:
    """The most crops that an image's short side is shrunk to: 1 (whole-image crops only)
    for a small image (short side under WHOLE_ONLY_BELOW px), else `max_scale`."""
    return 1 if min(_pixel_size(path)) < WHOLE_ONLY_BELOW else max_scale


class RandomCrops(torch.utils.data.Dataset):
    """Random square crops (1 to `max_zoom` crops wide, resized to the crop) with
    horizontal flips; `length` items per epoch, from images shrunk to a short side of at
    most `max_scale` crops (small images: one, `crop_scale`)."""

    def __init__(self, paths: list[Path], size: int, length: int = 100_000, seed: int = 0,
                 max_scale: int = TRAIN_SCALE, max_zoom: int = TRAIN_ZOOM):  # fmt: skip
        self.images = [load_rgb(p, size, crop_scale(p, max_scale) * size) for p in paths]
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
        img = load_rgb(path, size, crop_scale(path, max_scale) * size)
        g = torch.Generator().manual_seed(seed * 1_000_003 + j)
        crops += [random_crop(img, size, g) for _ in range(per_image)]
    return torch.stack(crops)


def data_paths(cfg) -> tuple[list[Path], list[Path]]:
    """(train, held-out) images of a `Config`: a `--data` folder split by a seeded shuffle
    (`data.holdout`, `data.split_seed`), else the default catalogue's fixed split."""
    if cfg.data.folder:
        return split(folder_image_paths(cfg.data.folder), cfg.data.holdout, cfg.data.split_seed)
    return default_split()


def thumbnail_signature(path: Path, side: int = 8) -> np.ndarray:
    """A picture's tiny grayscale thumbnail (side x side, box-averaged), zero-mean and unit-norm."""
    with Image.open(path) as img:
        img.draft("L", (side * 8, side * 8))
        a = np.asarray(img.convert("L").resize((side, side), Image.Resampling.BOX), dtype=np.float64).ravel()
    a = a - a.mean()
    return a / max(float(np.linalg.norm(a)), 1e-9)


# two copies of one photograph (rescaled, recompressed) correlate at 0.99 or more in their 8x8
# thumbnails; the most alike distinct photographs of the catalogue at 0.94 (measured)
NEAR_DUPLICATE = 0.97


def near_duplicates(paths: list[Path], threshold: float = NEAR_DUPLICATE) -> list[tuple[Path, Path, float]]:
    """Pairs of pictures whose tiny thumbnails correlate above `threshold`, most alike first."""
    if not paths:
        return []
    sig = np.stack([thumbnail_signature(p) for p in paths])
    corr = sig @ sig.T
    i, j = np.nonzero(np.triu(corr, 1) > threshold)
    return sorted(((paths[a], paths[b], float(corr[a, b])) for a, b in zip(i, j, strict=True)), key=lambda t: -t[2])
