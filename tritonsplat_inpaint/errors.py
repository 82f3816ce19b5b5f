"""The inference path's refusals as types: what is wrong is the exception's class (and its
`kind` code), never its wording.

Each class is also the built-in exception its callers caught before it existed
(ValueError, FileNotFoundError), so `except ValueError` still takes it; the message stays
the one-line explanation the command line prints. Callers that speak in their own words
(the inpainting page, `tritonsplat_inpaint.page.words`) map the class, and read the
structured fields: `arg` (the command-line argument the input came from: "--image",
"--mask", "--out", "--ckpt", ...), `path` (the file concerned, where there is one) and,
for a mostly-white mask, `ratio`.
"""

from __future__ import annotations

from pathlib import Path


class InpaintError(Exception):
    """An input the inference path refuses. `kind`: a short code for what is wrong."""

    kind = "input"

    def __init__(self, message: str, *, arg: str | None = None, path: Path | str | None = None):
        super().__init__(message)
        self.arg, self.path = arg, None if path is None else Path(path)


class MissingFile(InpaintError, FileNotFoundError):
    """An input file that does not exist."""

    kind = "missing"


class UnreadableImage(InpaintError, ValueError):
    """A file no image reader takes (not an image, or a damaged one)."""

    kind = "unreadable"


class UnsupportedMode(InpaintError, ValueError):
    """An image whose colour mode or pixel range the model does not take (CMYK, 32-bit
    integers beyond 16 bits, an odd mode), or a mask in a mode with no hole weights."""

    kind = "mode"


class MaskSizeMismatch(InpaintError, ValueError):
    """A mask whose size differs from its photograph's."""

    kind = "mask-size"


class EmptyMask(InpaintError, ValueError):
    """A mask with no hole: every pixel black."""

    kind = "empty-mask"


class FullMask(InpaintError, ValueError):
    """A mask that is all hole: nothing to fill from."""

    kind = "full-mask"


class InvertedMask(InpaintError, ValueError):
    """A mask that is mostly hole (`ratio` of the image, above `images.INVERTED_RATIO`):
    likely white where black was meant; refused unless inverted or a large hole is allowed."""

    kind = "inverted-mask"

    def __init__(self, message: str, *, ratio: float, arg: str | None = None, path: Path | str | None = None):
        super().__init__(message, arg=arg, path=path)
        self.ratio = ratio


class UnwritableImage(InpaintError, ValueError):
    """A result that the requested file type cannot hold (16 bits, alpha, 16-bit grey with alpha)."""

    kind = "unwritable"


class MissingCheckpoint(InpaintError, FileNotFoundError):
    """No checkpoint where one was asked for (nor a run folder holding one)."""

    kind = "checkpoint"


class DinoMismatch(InpaintError, ValueError):
    """A checkpoint whose DINO cannot be built as it was trained (another version installed,
    weights from a hub this version does not fetch, another DINO not allowed)."""

    kind = "dino"


KINDS = {cls.kind: cls for cls in (InpaintError, MissingFile, UnreadableImage, UnsupportedMode, MaskSizeMismatch,
                                   EmptyMask, FullMask, InvertedMask, UnwritableImage, MissingCheckpoint,
                                   DinoMismatch)}  # fmt: skip
