"""The orchestration of one fill: `fill_upload`, the page's one way into the inference path
of `python -m model.inpaint` (read the pair, run the network or a classical method,
compose and write as the command line does), the `Result` it gives, and `Models`, the
checkpoint's network loaded once."""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .. import errors
from ..checkpoint import load_model
from ..classical import PREFILLS
from ..images import Picture, compose, read_pair, write_image
from ..infer import Run, inpaint_picture
from .uploads import MAX_PIXELS, Uploads, check_pixels
from .words import PageError, page_error

METHODS = {"model": "the model", "telea": "Telea", "navier-stokes": "Navier-Stokes", "biharmonic": "biharmonic",
           "fsr": "FSR"}  # fmt: skip
assert set(METHODS) - {"model"} == set(PREFILLS)


@dataclass
class Result:
    method: str
    picture: Picture  # as `read_pair` read it (upright)
    weight: torch.Tensor  # [H, W] hole weights in [0, 1]
    array: np.ndarray  # the result in the photograph's own mode: what `python -m model.inpaint` writes
    png: bytes  # that, written as the command line writes a .png
    runs: list[Run] = field(default_factory=list)  # every network run, with the Gaussians it rendered
    patch_size: int | None = None
    overlap: int = 0
    notes: list[str] = field(default_factory=list)  # the inference path's, as it said them
    timings: dict = field(default_factory=dict)  # seconds

    @property
    def output(self) -> torch.Tensor:  # [3, H, W] in [0, 1], as the model reads a picture
        return Picture(self.array, self.picture.path).rgb


class Models:
    """The checkpoint's network, loaded once (on a background thread at start-up)."""

    def __init__(self, ckpt: Path, dino_weights: str | None = None, allow_other_dino: bool = False):
        self.ckpt, self.lock, self.loaded, self.load_seconds = Path(ckpt), threading.Lock(), None, 0.0
        self.dino_weights, self.allow_other_dino = dino_weights, allow_other_dino

    def get(self):
        with self.lock:
            if self.loaded is None:
                start = time.perf_counter()
                self.loaded = load_model(self.ckpt, self.dino_weights, self.allow_other_dino)
                self.load_seconds = time.perf_counter() - start
            return self.loaded


_RUN_LOCK = threading.Lock()  # one inference at a time: it uses every core


def _network_fill(models: Models, picture: Picture, weight: torch.Tensor, tile: int, progress, timings: dict):
    """(the result's array, its runs with the Gaussians the overlay draws, patch size, overlap, notes)."""
    if models.loaded is None:
        progress("loading the model")
    try:
        net, cfg = models.get()
    except errors.InpaintError as e:  # the checkpoint or its DINO refused: said in the page's words
        raise page_error(e, None) from None
    timings["load"] = models.load_seconds
    progress("running the network")
    start = time.perf_counter()
    array, report = inpaint_picture(net, picture, weight, tile=tile, keep_gaussians=True)
    timings["network"] = time.perf_counter() - start
    notes = [n if n.startswith("guard") else f"warning: {n}" for n in report.notes]
    # what the overlay draws, no more: a large photograph runs the network in many windows
    runs = [replace(run, gaussians={k: run.gaussians[k] for k in ("means", "cholesky")}) for run in report.runs]
    return array, runs, cfg.model.patch_size, cfg.model.overlap, notes


def _as_png(array: np.ndarray) -> bytes:
    """The result written as the command line writes a .png."""
    with tempfile.TemporaryDirectory(prefix="tritonsplat-serve-") as tmp:
        out = Path(tmp) / "result.png"
        try:
            write_image(array, out)
        except errors.UnwritableImage as e:  # 16-bit grayscale with alpha: the command line refuses it too
            raise page_error(e, None, str(e).replace("--out: ", "")) from None
        return out.read_bytes()


def fill_upload(
    image: tuple[bytes, str],
    mask: tuple[bytes, str],
    method: str = "model",
    *,
    models: Models,
    invert: bool = False,
    allow_large: bool = False,
    tile: int = 256,
    max_pixels: int = MAX_PIXELS,
    progress=lambda stage: None,
) -> Result:
    """The page's one way into the inference path of `python -m model.inpaint`: the uploaded
    files (bytes, file name) are read by `read_pair` (the same orientation, modes, mask
    rules, checks, errors and warnings), then filled by `inpaint_picture` with the
    checkpoint's network (scale-adaptive and windowed, every run's Gaussians kept for the
    overlay), or by a classical method on the same tensors, composed the same way (known
    pixels exactly as stored, soft edges blended). Raises PageError."""
    if method not in METHODS:
        raise PageError(f"Unknown method {method!r}.", f"expected one of {sorted(METHODS)}")
    timings = {}
    start = time.perf_counter()
    progress("reading the photograph and the mask")
    with Uploads(dict(image=image, mask=mask), max_pixels) as up:
        try:
            picture, weight, notes = read_pair(up.paths["image"], up.paths["mask"], invert, allow_large)
        except (ValueError, OSError) as e:
            raise up.error(e) from None
    check_pixels(picture, max_pixels)
    timings["read"] = time.perf_counter() - start
    with _RUN_LOCK:
        runs, patch, overlap = [], None, 0
        if method == "model":
            array, runs, patch, overlap, more = _network_fill(models, picture, weight, tile, progress, timings)
            notes = notes + more
        else:
            progress(f"filling with {METHODS[method]}")
            start = time.perf_counter()
            fill = PREFILLS[method](picture.rgb, (weight > 0).float()[None])
            array = compose(picture, fill, weight.numpy())
            timings["fill"] = time.perf_counter() - start
        png = _as_png(array)
    return Result(method, picture, weight, array, png, runs, patch, overlap, notes, timings)
