"""The page's words: `PageError` (what the page shows), the library's refusals mapped to
page messages by their type (`tritonsplat_inpaint.errors`) and by which upload they
concern, never by their wording, and the inference path's notes in plain words."""

from __future__ import annotations

import re

from .. import errors


class PageError(Exception):
    """An error the page shows: `title` in plain words, `detail` as the inference path said it."""

    def __init__(self, title: str, detail: str = "", status: int = 400):
        super().__init__(title)
        self.title, self.detail, self.status = title, detail, status


_NOT_A_PHOTOGRAPH = "This file is not a photograph the model can read (PNG, JPEG, WebP, BMP, TIFF, GIF...)."
_NOT_A_MASK = "The mask file is not an image the model can read."
_NO_MODEL = "The model could not be loaded."

# (the refusal's type, the upload it concerns: "image", "mask" or None for either) -> the
# page's title; formatted with the exception as `e` (its structured fields, not its message)
TITLES = {
    (errors.UnsupportedMode, "image"): "This photograph's color mode is not one the model takes (8- or 16-bit RGB, "
                                       "RGBA, grayscale or palette).",
    (errors.UnreadableImage, "image"): _NOT_A_PHOTOGRAPH,
    (errors.MissingFile, "image"): _NOT_A_PHOTOGRAPH,
    (errors.UnreadableImage, "mask"): _NOT_A_MASK,
    (errors.MissingFile, "mask"): _NOT_A_MASK,
    (errors.UnsupportedMode, "mask"): _NOT_A_MASK,
    (errors.EmptyMask, "mask"): "The mask has no hole: paint over what should be removed, or load a mask with white "
                                "where the hole is.",
    (errors.FullMask, "mask"): "The mask covers the whole photograph: leave some of it for the fill to start from.",
    (errors.MaskSizeMismatch, "mask"): "The mask's size differs from the photograph's.",
    (errors.InvertedMask, "mask"): "{e.ratio:.0%} of the photograph is marked as hole: is the mask inverted? White "
                                   "(or any colour) marks the hole. Tick \u201cblack marks the hole\u201d if white "
                                   "marks what to keep, or \u201callow a large hole\u201d to fill it anyway.",
    (errors.UnwritableImage, None): "The result cannot be written as a PNG in this photograph's mode.",
    (errors.MissingCheckpoint, None): _NO_MODEL,
    (errors.DinoMismatch, None): _NO_MODEL,
}  # fmt: skip


def title_for(e: Exception, part: str | None) -> str | None:
    """The page's title for a refusal of the inference path about upload `part` ("image",
    "mask" or None), looked up by its type (and its parents'); None when the page has none."""
    for cls in type(e).__mro__:
        for key in ((cls, part), (cls, None)):
            if key in TITLES:
                return TITLES[key].format(e=e)
    return None


def page_error(e: Exception, part: str | None, detail: str | None = None) -> PageError:
    """A refusal of the inference path as the page shows it: its mapped title (a generic
    one for a type the page has no words for) and `detail` (default: the message as said)."""
    title = title_for(e, part) or f"The {part or 'input'} could not be used."
    return PageError(title, str(e) if detail is None else detail)


# the inference path's notes, in the page's words (first match wins; {0}... are the
# pattern's groups). A note the page has no words for is shown as it was said.
_PLAIN_NOTES = [
    (r"the hole is (\d+%) of the image, above the (\d+%)", "The hole is {0} of the photograph, above the {1} the "
     "model was trained on: expect a smooth, blurry fill."),
    (r"hole\(s\) up to (\d+) px thick", "Part of the hole is up to {0} px thick, beyond what the network was trained "
     "on even at its smallest working scale: expect a smooth fill there."),
    (r"EXIF orientation (\d) applied", "The photograph is turned as its EXIF orientation ({0}) says, as a photo "
     "viewer shows it; the result is upright."),
    (r"soft mask: (\d+) pixels", "The mask has a soft edge ({0} grey pixels): the fill is blended over them in "
     "proportion."),
    (r"mask in colour", "The mask is in colour: every non-black pixel counts as hole."),
    (r"guard at scale 1/(\d+): the blend fills its holes \(no copy", "The large hole is filled at 1/{0} scale by the "
     "classical blend: no copy of it fits on the photograph's known pixels to test the model against it."),
    (r"guard at scale 1/(\d+): (.+?) fills its holes \((.+?), on a probe of \d+ known pixels(.*?): PSNR (.*)\)$",
     "The large hole is filled at 1/{0} scale by {1} ({2}, when the fills were tried on a copy of the hole "
     "placed over the photograph's known pixels{3}: {4})."),
]  # fmt: skip


def plain_note(note: str) -> dict:
    """A note of the inference path -> {"level": "warning" or "note", "text": in the page's words, "said": as is}."""
    warning = note.startswith("warning: ")
    said = note.removeprefix("warning: ")
    text = said[:1].upper() + said[1:]
    for pattern, words in _PLAIN_NOTES:
        m = re.search(pattern, said)
        if m:
            text = words.format(*m.groups())
            break
    return dict(level="warning" if warning else "note", text=text, said=said)
