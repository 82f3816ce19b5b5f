"""Readers for pictures packaged inside other files (Qt resource files, Jigzo puzzles), and
the catalogue's extraction of them, on small fixtures the tests build."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tritonsplat_inpaint import data
from tritonsplat_inpaint.sources import FormatError, RccFile, pzl_members, pzl_picture


def make_rcc(files: dict[str, bytes], version: int = 3, compressed: tuple[str, ...] = ()) -> bytes:
    """A Qt resource file holding `files` (paths '/'-separated), written from the format:
    header, data, names, then the tree (children of a directory numbered contiguously)."""
    tree: dict = {}
    for path, blob in files.items():
        node = tree
        *folders, leaf = path.split("/")
        for folder in folders:
            node = node.setdefault(folder, {})
        node[leaf] = blob
    names, payloads, nodes = bytearray(), bytearray(), [None]
    queue = [(0, "", tree)]
    while queue:
        index, name, folder = queue.pop(0)
        first = len(nodes)
        nodes[index] = (_name(names, name), 2, len(folder), first)
        nodes += [None] * len(folder)
        for k, (child, value) in enumerate(sorted(folder.items())):
            if isinstance(value, dict):
                queue.append((first + k, child, value))
                continue
            zipped = f"{path_of(files, value)}" in compressed
            body = struct.pack(">I", len(value)) + zlib.compress(value) if zipped else value
            nodes[first + k] = (_name(names, child), int(zipped), 0, len(payloads))
            payloads += struct.pack(">I", len(body)) + body
    fmt = ">IHII" + ("" if version == 1 else "Q")
    packed = b"".join(struct.pack(fmt, *n) if version == 1 else struct.pack(fmt, *n, 0) for n in nodes)
    header = 20 + (4 if version >= 3 else 0)
    data_at, names_at = header, header + len(payloads)
    tree_at = names_at + len(names)
    head = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at) + (b"\0\0\0\0" if version >= 3 else b"")
    return head + bytes(payloads) + bytes(names) + packed


def path_of(files: dict[str, bytes], blob: bytes) -> str:
    return next(p for p, b in files.items() if b is blob)


def _name(names: bytearray, name: str) -> int:
    at = len(names)
    names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
    return at


def encoded(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return out.getvalue()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reader_lists_and_reads_files_plain_and_compressed(version):
    files = {"a/b/one.txt": b"first", "a/two.bin": bytes(range(200)) * 5, "top.txt": "é".encode()}
    rcc = RccFile(make_rcc(files, version, compressed=("a/two.bin",)))
    assert rcc.version == version and rcc.names() == sorted(files)
    assert {name: rcc.read(name) for name in rcc.names()} == files
    with pytest.raises(KeyError, match="no entry 'nope'"):
        rcc.read("nope")


def test_rcc_reader_refuses_what_it_cannot_read():
    with pytest.raises(FormatError, match="not a Qt resource file"):
        RccFile(b"PK\3\4" + bytes(40), "x.rcc")
    with pytest.raises(FormatError, match="version 9, expected 1, 2 or 3"):
        RccFile(b"qres" + struct.pack(">IIII", 9, 0, 0, 0), "x.rcc")
    blob = bytearray(make_rcc({"z.bin": b"zz"}))
    blob[-22 + 4 : -22 + 6] = struct.pack(">H", 4)  # the file's node: flag it zstd-compressed
    with pytest.raises(FormatError, match="zstd"):
        RccFile(bytes(blob)).read("z.bin")
    with pytest.raises(FormatError, match="outside the file"):
        RccFile(make_rcc({"z.bin": b"zz"})[:-30])


def make_pzl(atlas: Image.Image, w: int, h: int) -> bytes:
    members = {
        "p.map": f"#texture map data\nimage 0 0 {w} {h} 1 1    \ncrop000 0 0 10 10 5 5 0 0 0 0\n".encode(),
        "p-t.jpg": encoded(atlas.resize((16, 16)), "JPEG"),
        "p.png": encoded(Image.new("RGBA", atlas.size), "PNG"),
        "p.jpg": encoded(atlas, "JPEG"),
    }
    body = b"".join(f"{name}\n{len(blob)}\n".encode() + blob for name, blob in members.items())
    return b"PzlF\n0.1\np\nhttp://example.org/\n" + body


def atlas_fixture() -> Image.Image:
    atlas = Image.new("RGB", (128, 96), (0, 0, 0))
    atlas.paste((200, 40, 40), (0, 0, 60, 50))  # the picture: top-left 60 x 50
    return atlas


def test_jigzo_puzzle_gives_its_atlas_top_left_region(tmp_path):
    path = tmp_path / "p-3x2.pzl"
    path.write_bytes(make_pzl(atlas_fixture(), 60, 50))
    assert sorted(pzl_members(path.read_bytes())) == ["p-t.jpg", "p.jpg", "p.map", "p.png"]
    picture = pzl_picture(path)
    assert picture.size == (60, 50)
    np.testing.assert_allclose(np.asarray(picture, dtype=float).mean((0, 1)), [200, 40, 40], atol=6)


def test_jigzo_reader_refuses_bad_puzzles(tmp_path):
    with pytest.raises(FormatError, match="not a Jigzo puzzle"):
        pzl_members(b"GIF89a\n")
    with pytest.raises(FormatError, match="past the file's end"):
        pzl_members(b"PzlF\n0.1\np\nurl\np.map\n999\nshort")
    path = tmp_path / "big.pzl"
    path.write_bytes(make_pzl(atlas_fixture(), 500, 50))
    with pytest.raises(FormatError, match="larger than its atlas"):
        pzl_picture(path)


def gcompris_fixture() -> bytes:
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    big = Image.fromarray(rng.integers(0, 255, (1080, 1440, 3), dtype=np.uint8))
    cutout = Image.new("RGBA", (400, 300), (10, 20, 30, 0))
    readme = b"Copyright: Someone\nSource: https://example.org/fish\nLicense: CC0-1.0\nFiles:\nfish/one.webp\n"
    root = "gcompris/src/activities/act/resource/"
    return make_rcc({root + "README": readme, root + "fish/one.webp": encoded(photo, "WEBP"),
                     root + "sea.webp": encoded(big, "WEBP"), root + "cut.webp": encoded(cutout, "WEBP"),
                     root + "tiny.webp": encoded(photo.resize((100, 75)), "WEBP")})  # fmt: skip


def test_gcompris_pictures_are_extracted_once_with_their_licences(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITONSPLAT_CACHE", str(tmp_path / "cache"))
    rcc = tmp_path / "act.rcc"
    rcc.write_bytes(gcompris_fixture())
    found = {r.name: r for r in data._cached("gcompris-qt-data", rcc, data.extract_gcompris)}
    # the picture with transparency and the one under 300 px are not candidates
    assert sorted(found) == ["gcompris-act-one", "gcompris-act-sea"]
    one, sea = found["gcompris-act-one"], found["gcompris-act-sea"]
    assert one.licence == "CC0-1.0; Someone; https://example.org/fish" and one.size == (320, 240)
    assert one.origin.endswith("act.rcc:gcompris/src/activities/act/resource/fish/one.webp")
    assert sea.size == (720, 540) and Image.open(sea.path).size == (720, 540)  # 1080 px high: halved
    assert str(sea.path).startswith(str(tmp_path / "cache" / "photographs" / "gcompris-qt-data"))
    assert sea.licence.startswith("see ")  # not named in a README: the package's copyright file

    def fail(*_):
        raise AssertionError("extracted again")

    again = data._cached("gcompris-qt-data", rcc, fail)  # the cache's manifest answers
    assert [r.path for r in again] == [r.path for r in found.values()]
