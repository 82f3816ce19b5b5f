"""An inpainting page in the browser.

    python -m model.serve [--port 8000] [--host 127.0.0.1] [--ckpt PATH] [--max-pixels N]

Starts a local server and prints its address. The page opens a photograph (file picker,
drag and drop, or a bundled example), paints the hole with a brush or loads a mask file,
and fills it with the model or a classical method (Telea, Navier-Stokes, biharmonic); it
shows the result beside the original with a before/after slider, can draw the Gaussians
that rendered the fill over it (`tritonsplat.viz`), and downloads the result and the mask
as PNG. Everything the page loads is served from `tritonsplat_inpaint/web/`: it works
with no network.

Every fill goes through `fill_upload`, built on the library calls of
`python -m model.inpaint`: `images.read_pair` (EXIF orientation, modes and bits, the mask
rules: any non-black colour is hole, soft edges, the inverted-mask check and the
large-hole warning), `checkpoint.load_model` (the released checkpoint and the DINO it was
trained with) and `infer.inpaint_picture` (scale-adaptive, windowed inference, composed
back in the photograph's own mode). The page's result is the file the command line writes.
Needs the optional extra: pip install -e ".[serve]".
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import math
import re
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..checkpoint import RELEASED, load_model
from ..classical import PREFILLS, to_uint8
from ..cli import entry, prog
from ..images import INVERTED_RATIO, TRAINED_RATIO, Picture, compose, read_image, read_mask, read_pair, write_image
from ..infer import Run, inpaint_picture

WEB = Path(__file__).resolve().parents[1] / "web"
MAX_PIXELS = 2048 * 2048  # the largest image the page takes, in pixels
MAX_UPLOAD = 64 << 20  # bytes in one request
METHODS = {"model": "the model", "telea": "Telea", "navier-stokes": "Navier-Stokes", "biharmonic": "biharmonic"}
assert set(METHODS) - {"model"} == set(PREFILLS)


class PageError(Exception):
    """An error the page shows: `title` in plain words, `detail` as the inference path said it."""

    def __init__(self, title: str, detail: str = "", status: int = 400):
        super().__init__(title)
        self.title, self.detail, self.status = title, detail, status


# what the inference path's messages mean, in the page's words (first match wins; {0} is
# the pattern's first group)
_PLAIN = [
    (r"CMYK image|got mode|32-bit integer pixels", "image", "This photograph's color mode is not one the model "
     "takes (8- or 16-bit RGB, RGBA, grayscale or palette)."),
    (r"cannot read .* as an image|no such file", "image",
     "This file is not a photograph the model can read (PNG, JPEG, WebP, BMP, TIFF, GIF...)."),
    (r"cannot read|expected a grayscale|no such file", "mask", "The mask file is not an image the model can read."),
    (r"empty", "mask", "The mask has no hole: paint over what should be removed, or load a mask with white where the "
     "hole is."),
    (r"full", "mask", "The mask covers the whole photograph: leave some of it for the fill to start from."),
    (r"size .* differs", "mask", "The mask's size differs from the photograph's."),
    (r"(\d+%) of .* is the mask inverted", "mask", "{0} of the photograph is marked as hole: is the mask inverted? "
     "White (or any colour) marks the hole. Tick \u201cblack marks the hole\u201d if white marks what to keep, or "
     "\u201callow a large hole\u201d to fill it anyway."),
]  # fmt: skip
# the inference path's notes, in the page's words
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
    (r"guard at scale 1/(\d+): the (model|blend) fills .*PSNR ([\d.]+) dB for the model, ([\d.]+) dB for the blend",
     "The large hole is filled at 1/{0} scale by the {1}: on a copy of the hole placed over known pixels, the "
     "model scored {2} dB and the classical blend {3} dB."),
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


class _Models:
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


def _too_large(w: int, h: int, max_pixels: int) -> PageError:
    return PageError(
        f"The image is too large: {w} x {h} = {h * w:,} pixels; this server takes at most {max_pixels:,}.",
        "make it smaller first, or start the server with a larger --max-pixels",
        status=413,
    )


class _Uploads:
    """The uploaded files written under a temporary folder, by their own (sanitised) names,
    so that the library reads them as the command line reads files; its errors are turned
    into PageErrors in plain words, without the server's paths."""

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
            raise _too_large(w, h, self.max_pixels)

    def error(self, e: Exception) -> PageError:
        said = str(e)
        which = "mask" if said.startswith("--mask") else "image"
        detail = said
        for path in self.paths.values():
            detail = detail.replace(str(path.parent) + "/", "")
        detail = detail.replace(self.tmp.name, "").replace("--image: ", "image: ").replace("--mask: ", "mask: ")
        for pattern, kind, title in _PLAIN:
            m = re.search(pattern, said)
            if kind == which and m:
                return PageError(title.format(*m.groups()), detail)
        return PageError(f"The {which} could not be used.", detail)


def read_upload(image: tuple[bytes, str], max_pixels: int = MAX_PIXELS) -> Picture:
    """An uploaded photograph as the inference path reads it (orientation, mode, bits)."""
    with _Uploads(dict(image=image), max_pixels) as up:
        try:
            picture = read_image(up.paths["image"])
        except (ValueError, OSError) as e:
            raise up.error(e) from None
    w, h = picture.size
    if w * h > max_pixels:
        raise _too_large(w, h, max_pixels)
    return picture


def read_upload_mask(image: tuple[bytes, str], mask: tuple[bytes, str], max_pixels: int = MAX_PIXELS,
                     ) -> tuple[np.ndarray, list[str]]:  # fmt: skip
    """An uploaded mask file read against its photograph as the inference path reads it:
    (hole weights [H, W] in [0, 1], notes)."""
    with _Uploads(dict(image=image, mask=mask), max_pixels) as up:
        try:
            picture = read_image(up.paths["image"])
            return read_mask(up.paths["mask"], picture.size, picture.orientation)
        except (ValueError, OSError) as e:
            raise up.error(e) from None


def fill_upload(
    image: tuple[bytes, str],
    mask: tuple[bytes, str],
    method: str = "model",
    *,
    models: _Models,
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
    with _Uploads(dict(image=image, mask=mask), max_pixels) as up:
        try:
            picture, weight, notes = read_pair(up.paths["image"], up.paths["mask"], invert, allow_large)
        except (ValueError, OSError) as e:
            raise up.error(e) from None
    w, h = picture.size
    if w * h > max_pixels:
        raise _too_large(w, h, max_pixels)
    timings["read"] = time.perf_counter() - start
    with _RUN_LOCK:
        runs, patch, overlap = [], None, 0
        if method == "model":
            if models.loaded is None:
                progress("loading the model")
            net, cfg = models.get()
            timings["load"] = models.load_seconds
            progress("running the network")
            start = time.perf_counter()
            array, report = inpaint_picture(net, picture, weight, tile=tile, keep_gaussians=True)
            timings["network"] = time.perf_counter() - start
            notes = notes + [n if n.startswith("guard") else f"warning: {n}" for n in report.notes]
            patch, overlap = cfg.model.patch_size, cfg.model.overlap
            # what the overlay draws, no more: a large photograph runs the network in many windows
            runs = [replace(run, gaussians={k: run.gaussians[k] for k in ("means", "cholesky")}) for run in report.runs]
        else:
            progress(f"filling with {METHODS[method]}")
            start = time.perf_counter()
            fill = PREFILLS[method](picture.rgb, (weight > 0).float()[None])
            array = compose(picture, fill, weight.numpy())
            timings["fill"] = time.perf_counter() - start
        with tempfile.TemporaryDirectory(prefix="tritonsplat-serve-") as tmp:
            out = Path(tmp) / "result.png"
            try:
                write_image(array, out)  # as the command line writes it
            except ValueError as e:  # 16-bit grayscale with alpha: the command line refuses it too
                raise PageError("The result cannot be written as a PNG in this photograph's mode.",
                                str(e).replace("--out: ", "")) from None  # fmt: skip
            png = out.read_bytes()
    return Result(method, picture, weight, array, png, runs, patch, overlap, notes, timings)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def drawn_gaussians(run: Run, patch_size: int, overlap: int) -> torch.Tensor:
    """[1, Hp, Wp, K] True for the Gaussians of one network run whose patch canvas (core
    plus overlap) touches that run's written-back hole (`run.target`): the ones that
    rendered the fill (the others are replaced by known pixels, or by another scale's fill)."""
    means = run.gaussians["means"]
    _, hp, wp, k, _ = means.shape
    p, o = patch_size, overlap
    h, w = run.target.shape[-2:]
    mask = F.pad(run.target.float()[None, None], (0, wp * p - w, 0, hp * p - h))
    touched = F.max_pool2d(mask, p + 2 * o, stride=p, padding=o)[0, 0] > 0  # [Hp, Wp]
    return touched[None, :, :, None].expand(1, hp, wp, k)


def gathered_gaussians(runs: list[Run], patch_size: int, overlap: int) -> dict | None:
    """The drawn Gaussians of every network run, in the photograph's full-resolution pixels
    (free layout): means [N, 2] (x, y), cholesky [N, 3], `checker` [N] (0/1, alternating
    over each patch's grid, for outlines), `run` [N] (which run); None without runs."""
    if not runs:
        return None
    from tritonsplat.viz import image_means

    out = dict(means=[], cholesky=[], checker=[], run=[])
    for i, run in enumerate(runs):
        g = run.gaussians
        keep = drawn_gaussians(run, patch_size, overlap).reshape(-1).numpy()
        k = g["means"].shape[-2]
        side = max(1, round(k**0.5))
        sy, sx = run.scale
        xy = image_means(g["means"].float(), patch_size)[0]  # in the window's working pixels
        xy = (xy + np.array([run.left, run.top])) * np.array([sx, sy])
        chol = g["cholesky"].float().reshape(-1, 3).numpy() * np.array([sx, sy, sy])  # diag(sx, sy) @ L
        checker = np.broadcast_to((np.arange(k) // side + np.arange(k) % side) % 2, g["means"].shape[:-1]).reshape(-1)
        out["means"].append(xy[keep])
        out["cholesky"].append(chol[keep])
        out["checker"].append(checker[keep])
        out["run"].append(np.full(int(keep.sum()), i))
    return {key: np.concatenate(v) for key, v in out.items()}


OUTLINES = np.array([(255, 214, 0), (0, 220, 255)], np.uint8)  # neighbouring Gaussians alternate


def overlay_png(result: Result, sigma: float, style: str) -> bytes:
    """The Gaussians that rendered the fill, from every network run (windows and working
    scales alike, mapped to the photograph's pixels), drawn over it, zoomed so that one
    grid cell of Gaussians at the finest scale spans 8 pixels or more (at most 4x, 12
    Mpixels): a patch holds K of them in a few pixels. Outlines alternate two colors like
    a checkerboard over each patch's grid, so neighbours stay apart; fills are opaque, in
    the result's color under each mean (the network's own colors are a residual over the
    classical fills and mixing logits, not a color to show), over the hole darkened so
    that the gaps between them show."""
    from tritonsplat.viz import draw_gaussians, sample_colors

    output = result.output
    h, w = output.shape[-2:]
    g = gathered_gaussians(result.runs, result.patch_size, result.overlap)
    k = result.runs[0].gaussians["means"].shape[-2]
    side = max(1, round(k**0.5))
    cell = result.patch_size / side * min(min(run.scale) for run in result.runs)
    zoom = int(max(1, min(4, math.ceil(8 / cell), math.isqrt(12_000_000 // (h * w)))))
    big = F.interpolate(output[None], scale_factor=zoom, mode="nearest")[0]
    means, chol = g["means"] * zoom, g["cholesky"] * zoom
    if style == "outline":
        colors = OUTLINES[g["checker"]]
    else:
        colors = sample_colors(big, means).round().astype(np.uint8)
        hole = F.interpolate((result.weight > 0).float()[None, None], scale_factor=zoom, mode="nearest")[0].bool()
        big = torch.where(hole, big * 0.3, big)
    if not len(means):  # nothing drawn: the picture as it is
        return png_bytes(to_uint8(big))
    picture = draw_gaussians(big, means[None], chol[None], colors[None], sigma=sigma, style=style, alpha=1.0)
    return png_bytes(picture)


def examples() -> list[dict]:
    """The photographs one click away: the released checkpoint's own example (with its
    mask) and two photographs held out of its training set."""
    out = [dict(name="example", title="moon crop (with its mask)", path=RELEASED / "example.png",
                mask=RELEASED / "example_mask.png")]  # fmt: skip
    try:
        import sklearn.datasets

        china = Path(sklearn.datasets.__file__).parent / "images" / "china.jpg"
        if china.is_file():
            out.append(dict(name="china", title="temple (china.jpg)", path=china))
    except ImportError:
        pass
    import matplotlib.cbook

    hopper = Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    if hopper.is_file():
        out.append(dict(name="grace_hopper", title="portrait (grace_hopper.jpg)", path=hopper))
    return out


def _preview(array: np.ndarray) -> np.ndarray:
    """A picture's own array as 8 bits for the browser (channels kept: gray, alpha)."""
    if array.dtype == np.uint16:
        array = (array.astype(np.float32) / 257).round().astype(np.uint8)
    return array[..., 0] if array.shape[-1] == 1 else array


class App:
    """The ASGI application: the page, its files, and a small JSON API."""

    def __init__(self, ckpt: Path = RELEASED, max_pixels: int = MAX_PIXELS, preload: bool = True, *,
                 dino_weights: str | None = None, allow_other_dino: bool = False, tile: int = 256):  # fmt: skip
        from starlette.applications import Starlette
        from starlette.routing import Mount, Route
        from starlette.staticfiles import StaticFiles

        self.models = _Models(ckpt, dino_weights, allow_other_dino)
        self.max_pixels, self.tile = max_pixels, tile
        self.results: OrderedDict[str, Result] = OrderedDict()  # the last few, for overlays
        self.examples = {e["name"]: e for e in examples()}
        routes = [
            Route("/", self.index),
            Route("/api/info", self.info),
            Route("/api/examples/{name}/{part}", self.example),
            Route("/api/open", self.open, methods=["POST"]),
            Route("/api/mask", self.mask, methods=["POST"]),
            Route("/api/inpaint", self.inpaint, methods=["POST"]),
            Route("/api/overlay/{rid}", self.overlay),
            Mount("/static", StaticFiles(directory=WEB), name="static"),
        ]
        self.asgi = Starlette(routes=routes, exception_handlers={404: self.not_found})
        if preload:
            threading.Thread(target=self._preload, daemon=True, name="load-model").start()

    def _preload(self):
        try:
            self.models.get()
        except Exception:  # noqa: BLE001 - reported again, in the page, on the first inpaint
            traceback.print_exc()

    async def __call__(self, scope, receive, send):
        await self.asgi(scope, receive, send)

    @staticmethod
    def _error(e: PageError):
        from starlette.responses import JSONResponse

        return JSONResponse({"error": e.title, "detail": e.detail}, status_code=e.status)

    async def not_found(self, request, exc):
        return self._error(PageError("Not found.", request.url.path, status=404))

    async def index(self, request):
        from starlette.responses import FileResponse

        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-store"})

    async def info(self, request):
        from starlette.responses import JSONResponse

        ex = [dict(name=e["name"], title=e["title"], mask="mask" in e) for e in self.examples.values()]
        return JSONResponse(dict(examples=ex, max_pixels=self.max_pixels, max_upload=MAX_UPLOAD, methods=METHODS,
                                 ckpt=str(self.models.ckpt.name), loaded=self.models.loaded is not None,
                                 trained_ratio=TRAINED_RATIO, inverted_ratio=INVERTED_RATIO))  # fmt: skip

    async def example(self, request):
        from starlette.responses import FileResponse

        e = self.examples.get(request.path_params["name"])
        part = request.path_params["part"]
        if e is None or part not in ("image", "mask") or (part == "mask" and "mask" not in e):
            return self._error(PageError("No such example.", request.url.path, status=404))
        path = e["path"] if part == "image" else e["mask"]
        return FileResponse(path, filename=path.name)

    async def open(self, request):
        """multipart image -> JSON: the image as the inference path reads it (PNG), its size, notes."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        try:
            parts, _ = await self._form(request, ("image",))
            start = time.perf_counter()
            picture = await run_in_threadpool(read_upload, parts["image"], self.max_pixels)
        except PageError as e:
            return self._error(e)
        w, h = picture.size
        return JSONResponse(dict(image=data_url(png_bytes(_preview(picture.array))), width=w, height=h,
                                 notes=[plain_note(n) for n in picture.notes],
                                 timings=dict(read=time.perf_counter() - start)))  # fmt: skip

    async def mask(self, request):
        """multipart image, mask -> JSON: the mask's hole weights as the inference path reads
        them against that photograph (a grey PNG, white = all hole), notes."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        try:
            parts, _ = await self._form(request, ("image", "mask"))
            weight, notes = await run_in_threadpool(read_upload_mask, parts["image"], parts["mask"], self.max_pixels)
        except PageError as e:
            return self._error(e)
        grey = (weight * 255).round().astype(np.uint8)
        return JSONResponse(dict(mask=data_url(png_bytes(grey)), hole=int((weight > 0).sum()),
                                 notes=[plain_note(n) for n in notes]))  # fmt: skip

    async def _form(self, request, keys=("image", "mask")):
        length = request.headers.get("content-length")
        if length is not None and int(length) > MAX_UPLOAD:
            raise PageError(f"The upload is too large: {int(length) / 2**20:.1f} MB; the page takes at most "
                            f"{MAX_UPLOAD >> 20} MB.", status=413)  # fmt: skip
        try:
            form = await request.form(max_files=2, max_fields=6)
        except Exception as e:  # noqa: BLE001 - a malformed form, whatever the parser says
            raise PageError("The upload could not be read.", str(e)) from None
        parts = {}
        for key in keys:
            item = form.get(key)
            if item is None or isinstance(item, str):
                raise PageError(f"The request has no {key} file.", "open a photograph and paint the hole first")
            parts[key] = (await item.read(), item.filename or f"{key}.png")
        fields = {k: str(form.get(k) or "") for k in ("method", "invert", "allow_large")}
        return parts, fields

    async def inpaint(self, request):
        """multipart image, mask[, method, invert, allow_large] -> newline-delimited JSON:
        {"stage"} lines while it runs, then one {"result"} or {"error"} line."""
        from starlette.responses import StreamingResponse

        try:
            parts, fields = await self._form(request)
        except PageError as e:
            return self._error(e)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        begun = time.perf_counter()
        flag = lambda name: fields[name].lower() in ("1", "true", "on", "yes")

        def emit(event: dict):
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def work():
            try:
                result = fill_upload(
                    parts["image"], parts["mask"], fields["method"] or "model", models=self.models,
                    invert=flag("invert"), allow_large=flag("allow_large"), tile=self.tile,
                    max_pixels=self.max_pixels,
                    progress=lambda stage: emit(dict(stage=stage, elapsed=time.perf_counter() - begun)),
                )  # fmt: skip
                emit(dict(stage="encoding the result", elapsed=time.perf_counter() - begun))
                emit(dict(result=self._store(result, begun)))
            except PageError as e:
                emit(dict(error=e.title, detail=e.detail))
            except Exception as e:  # noqa: BLE001 - the server stays up; the page says what broke
                traceback.print_exc()
                emit(dict(error="Something went wrong while filling the hole.", detail=f"{type(e).__name__}: {e}"))
            emit(None)

        async def lines():
            task = loop.run_in_executor(None, work)
            while (event := await queue.get()) is not None:
                yield json.dumps(event) + "\n"
            await task

        return StreamingResponse(lines(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"})

    def _store(self, result: Result, begun: float) -> dict:
        start = time.perf_counter()
        mask = png_bytes((result.weight.numpy() * 255).round().astype(np.uint8))
        result.timings["encode"] = time.perf_counter() - start
        result.timings["total"] = time.perf_counter() - begun
        rid = uuid.uuid4().hex
        self.results[rid] = result
        while len(self.results) > 4:  # each holds its image, mask, result and Gaussians
            self.results.popitem(last=False)
        w, h = result.picture.size
        gaussians = None
        if result.runs:
            total = sum(int(np.prod(run.gaussians["means"].shape[:-1])) for run in result.runs)
            drawn = sum(int(drawn_gaussians(run, result.patch_size, result.overlap).sum()) for run in result.runs)
            scales = sorted({run.level for run in result.runs})
            gaussians = dict(drawn=drawn, total=total, runs=len(result.runs), patch_size=result.patch_size,
                             scales=[f"1/{2**level}" for level in scales])  # fmt: skip
        rows, cols = torch.nonzero(result.weight > 0, as_tuple=True)
        box = [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]  # the hole's, x0 y0 x1 y1
        return dict(id=rid, method=result.method, width=w, height=h, hole=int((result.weight > 0).sum()), box=box,
                    image=data_url(result.png), mask=data_url(mask), timings=result.timings, gaussians=gaussians,
                    notes=[plain_note(n) for n in result.notes])  # fmt: skip

    async def overlay(self, request):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import Response

        result = self.results.get(request.path_params["rid"])
        if result is None:
            return self._error(PageError("That result is gone: inpaint again.", status=404))
        if not result.runs:
            return self._error(PageError(f"A {METHODS[result.method]} fill has no Gaussians to draw.", status=409))
        try:
            sigma = float(request.query_params.get("sigma", "1"))
            style = request.query_params.get("style", "outline")
            if sigma not in (1.0, 2.0, 3.0) or style not in ("outline", "fill"):
                raise ValueError
        except ValueError:
            return self._error(PageError("Overlay: sigma is 1, 2 or 3 and style outline or fill."))
        start = time.perf_counter()
        png = await run_in_threadpool(overlay_png, result, sigma, style)
        headers = {"X-Draw-Seconds": f"{time.perf_counter() - start:.3f}", "Cache-Control": "no-store"}
        return Response(png, media_type="image/png", headers=headers)


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


def make_server(app: App):
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    return uvicorn.Server(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog("serve"), description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (the page has no login: "
                        "keep it on this machine)")  # fmt: skip
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--ckpt", type=Path, default=RELEASED, help="checkpoint or run folder (default: the released)")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help="the largest image taken, in pixels")
    parser.add_argument("--tile", type=int, default=256, help="window size in working pixels (memory)")
    parser.add_argument("--dino-weights", help="load the checkpoint with another DINO (a timm weights file)")
    parser.add_argument("--allow-other-dino", action="store_true",
                        help="accept a DINO other than the one the checkpoint was trained with")  # fmt: skip
    parser.add_argument("--no-preload", action="store_true", help="load the model on the first fill, not at start-up")
    args = parser.parse_args(argv)
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        print('the inpainting page needs the optional extra: pip install -e ".[serve]"', file=sys.stderr)
        return 2
    if not 0 <= args.port < 65536:
        parser.error(f"--port: expected 0..65535, got {args.port}")
    try:
        sock = bind(args.host, args.port)
    except OSError as e:
        print(f"--port: cannot listen on {args.host}:{args.port} ({e.strerror})", file=sys.stderr)
        return 1
    app = App(args.ckpt, args.max_pixels, preload=not args.no_preload, dino_weights=args.dino_weights,
              allow_other_dino=args.allow_other_dino, tile=args.tile)  # fmt: skip
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"inpainting page: http://{shown}:{port}/  (Ctrl+C stops it)", flush=True)
    make_server(app).run(sockets=[sock])
    return 0


def run() -> int:
    return entry(main)


if __name__ == "__main__":
    raise SystemExit(run())
