"""Readers for pictures packaged inside other files, with no Qt and no game installed.

- Qt resource files (`.rcc`, what `rcc -binary` writes; GCompris ships its activities'
  pictures in them), read from the format:

      header   "qres", version (1 to 3), tree offset, data offset, names offset, (v3) flags:
               big-endian 32-bit words
      tree     one node per entry, 14 bytes (v1) or 22 bytes (v2 and v3, which add an 8-byte
               modification time): name offset (4), flags (2), then for a directory
               (flags & 2) its child count (4) and first child's node number (4), else a
               locale (country 2, language 2) and the offset of its data (4)
      names    at names offset + name offset: length (2, in UTF-16 units), hash (4), UTF-16BE
      data     at data offset + data offset: size (4) then the bytes; zlib-compressed entries
               (flags & 1) hold the uncompressed size (4) then a zlib stream; zstd-compressed
               ones (flags & 4, Qt 6) are not read (GCompris's are not compressed so)

- Jigzo puzzles (`.pzl`): four text lines ("PzlF", a version, a name, a web address), then
  members, each a line with its file name, a line with its size in bytes, and the bytes: a
  map (text), a thumbnail, a mask and the puzzle's atlas (a JPEG), whose top-left region
  W x H, named by the map's line `image 0 0 W H ...`, is the whole picture.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

_RCC_MAGIC = b"qres"
_DIRECTORY, _ZLIB, _ZSTD = 2, 1, 4


class FormatError(ValueError):
    """A packaged file that is not what its reader expects."""


def _word(blob: bytes, at: int, fmt: str = ">I") -> int:
    if at < 0 or at + struct.calcsize(fmt) > len(blob):
        raise FormatError(f"offset {at} is outside the file ({len(blob)} bytes)")
    return struct.unpack_from(fmt, blob, at)[0]


class RccFile:
    """The entries of a Qt resource file: `names()` lists the files' paths ('/' separated,
    from the root), `read(path)` gives one file's bytes, uncompressed."""

    def __init__(self, blob: bytes, origin: str = "rcc"):
        if blob[:4] != _RCC_MAGIC:
            raise FormatError(f"{origin}: not a Qt resource file (starts {blob[:4]!r}, expected {_RCC_MAGIC!r})")
        self.blob, self.origin = blob, origin
        self.version = _word(blob, 4)
        if self.version not in (1, 2, 3):
            raise FormatError(f"{origin}: Qt resource version {self.version}, expected 1, 2 or 3")
        self.tree, self.data, self.names_at = (_word(blob, at) for at in (8, 12, 16))
        self.node_size = 14 if self.version == 1 else 22
        self.entries = dict(self._walk(0, ""))

    @classmethod
    def open(cls, path: str | Path) -> RccFile:
        return cls(Path(path).read_bytes(), str(path))

    def _name(self, node: int) -> str:
        at = self.names_at + _word(self.blob, self.tree + node * self.node_size)
        length = _word(self.blob, at, ">H")
        return self.blob[at + 6 : at + 6 + 2 * length].decode("utf-16-be")

    def _walk(self, node: int, prefix: str) -> Iterator[tuple[str, tuple[int, int]]]:
        """(path, (flags, data offset)) of every file under `node`."""
        at = self.tree + node * self.node_size
        flags = _word(self.blob, at + 4, ">H")
        if not flags & _DIRECTORY:
            yield prefix, (flags, _word(self.blob, at + 10))
            return
        count, first = _word(self.blob, at + 6), _word(self.blob, at + 10)
        if count and first <= node:  # children always come after their directory: no cycles
            raise FormatError(f"{self.origin}: node {node} names its first child {first}, expected one after it")
        for child in range(first, first + count):
            yield from self._walk(child, f"{prefix}/{self._name(child)}" if prefix or node else self._name(child))

    def names(self) -> list[str]:
        return sorted(self.entries)

    def read(self, path: str) -> bytes:
        if path not in self.entries:
            raise KeyError(f"{self.origin}: no entry {path!r}")
        flags, offset = self.entries[path]
        at = self.data + offset
        size = _word(self.blob, at)
        body = self.blob[at + 4 : at + 4 + size]
        if flags & _ZSTD:
            raise FormatError(f"{self.origin}: {path} is zstd-compressed, which this reader does not read")
        if flags & _ZLIB:
            return zlib.decompress(body[4:])
        return body


def pzl_members(blob: bytes, origin: str = "pzl") -> dict[str, bytes]:
    """A Jigzo puzzle's members by file name."""
    lines = blob.split(b"\n", 4)
    if len(lines) < 5 or lines[0] != b"PzlF":
        raise FormatError(f"{origin}: not a Jigzo puzzle (starts {blob[:4]!r}, expected b'PzlF')")
    members, pos = {}, len(blob) - len(lines[4])
    while pos < len(blob):
        name_end = blob.find(b"\n", pos)
        size_end = blob.find(b"\n", name_end + 1)
        if name_end < 0 or size_end < 0 or not blob[name_end + 1 : size_end].isdigit():
            raise FormatError(f"{origin}: member header at byte {pos} is not a name line then a size line")
        size = int(blob[name_end + 1 : size_end])
        if size_end + 1 + size > len(blob):
            raise FormatError(f"{origin}: member at byte {pos} claims {size} bytes, past the file's end")
        members[blob[pos:name_end].decode()] = blob[size_end + 1 : size_end + 1 + size]
        pos = size_end + 1 + size
    return members


def pzl_picture(path: str | Path) -> Image.Image:
    """The whole picture of a Jigzo puzzle: its atlas's top-left region named by the map."""
    members = pzl_members(Path(path).read_bytes(), str(path))
    maps = [m for name, m in members.items() if name.endswith(".map")]
    atlases = [name for name in members if name.endswith(".jpg") and not name.endswith("-t.jpg")]
    if len(maps) != 1 or len(atlases) != 1:
        raise FormatError(f"{path}: expected one .map and one atlas .jpg, found members {sorted(members)}")
    size = next((line.split()[3:5] for line in maps[0].decode().splitlines() if line.startswith("image 0 0 ")), None)
    if size is None:
        raise FormatError(f"{path}: its map has no line 'image 0 0 W H'")
    w, h = int(size[0]), int(size[1])
    atlas = Image.open(io.BytesIO(members[atlases[0]]))
    if w > atlas.width or h > atlas.height:
        raise FormatError(f"{path}: picture {w}x{h} is larger than its atlas {atlas.width}x{atlas.height}")
    return atlas.convert("RGB").crop((0, 0, w, h))
