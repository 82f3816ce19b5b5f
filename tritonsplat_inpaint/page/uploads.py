"""The uploaded files: written under a temporary folder by their own (sanitised) names, so
that the library reads them as the command line reads files; the size limit checked on
the header before decoding; the library's refusals turned into `PageError`s in the page's
words (`words.page_error`), without the server's paths."""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .. import errors
from ..images import Picture, read_image, read_mask
from .words import PageError, page_error

MAX_PIXELS = 2048 * 2048  # the largest image the page takes, in pixels


def too_large(w: int, h: int, max_pixels: int) -> PageError:
    return PageError(
        f"The image is too large: {w} x {h} = {h * w:,} pixels; this server takes at most {max_pixels:,}.",
        "make it smaller first, or start the server with a larger --max-pixels",
        status=413,
    )


def check_pixels(picture: Picture, max_pixels: int) -> None:
    """Refuse a picture larger than `max_pixels` as read (a header may understate it)."""
    w, h = picture.size
    if w * h > max_pixels:
        raise too_large(w, h, max_pixels)


class Uploads:
    """A context: `paths[kind]` is the uploaded file `kind` ("image", "mask") on disk, for
    as long as the context lasts; `error(e)` is a library refusal as the page shows it."""

    def __init__(self, files: dict[str, tuple[bytes, str]], max_pixels: int):
        self.files, self.max_pixels = files, max_pixels

    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="tritonsplat-serve-")
        self.paths = {}
        for kind, (data, name) in self.files.items():
            base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name or kind).name)[-80:].lstrip(".") or kind
            path = Path(self.tmp.name) / kind / base
            path.parent.mkdir()
            path.write_bytes(data)
            self.paths[kind] = path
        if "image" in self.files:
            self._check_size(self.files["image"][0])
        return self

    def __exit__(self, *exc):
        self.tmp.cleanup()

    def _check_size(self, data: bytes):
        try:  # the header alone: refuse a huge image before decoding it
            with Image.open(io.BytesIO(data)) as peek:
                w, h = peek.size
        except Image.DecompressionBombError as e:
            raise PageError(
                f"The image is too large; this server takes at most {self.max_pixels:,} pixels.", str(e), 413
            ) from None
        except Exception:  # noqa: BLE001 - the reader says what is wrong with it
            return
        if w * h > self.max_pixels:
            raise too_large(w, h, self.max_pixels)

    def part(self, e: Exception) -> str:
        """Which upload a refusal concerns: the one at its `path` (the image when it names none)."""
        path = getattr(e, "path", None) if isinstance(e, errors.InpaintError) else None
        return next((kind for kind, p in self.paths.items() if path == p), "image")

    def error(self, e: Exception) -> PageError:
        """A refusal of the inference path as the page shows it; its detail is the message
        as said, with the server's temporary folders and the command line's "--" taken out."""
        detail = str(e)
        for path in self.paths.values():
            detail = detail.replace(str(path.parent) + "/", "")
        detail = detail.replace(self.tmp.name, "").replace("--image: ", "image: ").replace("--mask: ", "mask: ")
        return page_error(e, self.part(e), detail)


def read_upload(image: tuple[bytes, str], max_pixels: int = MAX_PIXELS) -> Picture:
    """An uploaded photograph as the inference path reads it (orientation, mode, bits)."""
    with Uploads(dict(image=image), max_pixels) as up:
        try:
            picture = read_image(up.paths["image"])
        except (ValueError, OSError) as e:
            raise up.error(e) from None
    check_pixels(picture, max_pixels)
    return picture


def read_upload_mask(image: tuple[bytes, str], mask: tuple[bytes, str], max_pixels: int = MAX_PIXELS,
                     ) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """An uploaded mask file read against its photograph as the inference path reads it:
    (hole weights [H, W] in [0, 1], notes)."""
    with Uploads(dict(image=image, mask=mask), max_pixels) as up:
        try:
            picture = read_image(up.paths["image"])
            return read_mask(up.paths["mask"], picture.size, picture.orientation)
        except (ValueError, OSError) as e:
            raise up.error(e) from None
