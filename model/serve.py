"""An inpainting page in the browser.

    python -m model.serve [--port 8000] [--host 127.0.0.1] [--ckpt PATH] [--max-pixels N]

Starts a local server and prints its address. The page opens a photograph (file picker,
drag and drop, or a bundled example), paints the hole with a brush or loads a mask file,
and fills it with the model or a classical method (Telea, Navier-Stokes, biharmonic); it
shows the result beside the original with a before/after slider, can draw the Gaussians
that rendered the fill over it (`tritonsplat.viz`), and downloads the result and the mask
as PNG. Everything the page loads is served from `model/web/`: it works with no network.

Every request goes through `_run_inpaint`, the one place that calls `model.inpaint`, so
the page reads images and masks, and fails on bad ones, exactly as
`python -m model.inpaint` does. Needs the optional extra: pip install -e ".[serve]".
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import math
import os
import re
import socket
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import inpaint as cli
from .classical import PREFILLS, to_uint8
from .evaluate import DEFAULT_CKPT

WEB = Path(__file__).parent / "web"
MAX_PIXELS = 2048 * 2048  # the largest image the page takes, in pixels
MAX_UPLOAD = 64 << 20  # bytes in one request
METHODS = {"model": "the model", "telea": "Telea", "navier-stokes": "Navier-Stokes", "biharmonic": "biharmonic"}
assert set(METHODS) - {"model"} == set(PREFILLS)


class PageError(Exception):
    """An error the page shows: `title` in plain words, `detail` as the inference path said it."""

    def __init__(self, title: str, detail: str = "", status: int = 400):
        super().__init__(title)
        self.title, self.detail, self.status = title, detail, status


# what the inference path's messages mean, in the page's words (first match wins)
_PLAIN = [
    (r"got mode", "image", "This photograph's color mode is not one the model takes (RGB, RGBA, grayscale or "
     "palette)."),
    (r"cannot read .* as an image|expected an RGB|expected a grayscale", "image",
     "This file is not a photograph the model can read (PNG, JPEG, WebP, BMP, TIFF, GIF...)."),
    (r"cannot (read|identify)|expected a grayscale|mode", "mask", "The mask file is not an image the model can read."),
    (r"empty", "mask", "The mask has no hole: paint over what should be removed, or load a mask with white where the "
     "hole is."),
    (r"full", "mask", "The mask covers the whole photograph: leave some of it for the fill to start from."),
    (r"size .* differs", "mask", "The mask's size differs from the photograph's."),
]  # fmt: skip


@dataclass
class Result:
    method: str
    image: torch.Tensor  # [3, H, W] as the inference path read it
    mask: torch.Tensor  # [1, H, W], 1 = hole
    output: torch.Tensor  # [3, H, W]
    gaussians: dict | None = None  # what the network rendered, on the padded image (batch of 1)
    patch_size: int | None = None
    overlap: int = 0
    timings: dict = field(default_factory=dict)  # seconds


class _Models:
    """The checkpoint's network, loaded once (on a background thread at start-up)."""

    def __init__(self, ckpt: Path):
        self.ckpt, self.lock, self.loaded, self.load_seconds = Path(ckpt), threading.Lock(), None, 0.0

    def get(self):
        with self.lock:
            if self.loaded is None:
                start = time.perf_counter()
                self.loaded = cli.load_model(self.ckpt)
                self.load_seconds = time.perf_counter() - start
            return self.loaded


_RUN_LOCK = threading.Lock()  # one inference at a time: it uses every core


def _too_large(w: int, h: int, max_pixels: int) -> PageError:
    return PageError(
        f"The image is too large: {w} x {h} = {h * w:,} pixels; this server takes at most {max_pixels:,}.",
        "make it smaller first, or start the server with a larger --max-pixels",
        status=413,
    )


def _run_inpaint(
    image_bytes: bytes,
    mask_bytes: bytes | None,
    method: str = "model",
    *,
    models: _Models,
    names: tuple[str, str] = ("image.png", "mask.png"),
    max_pixels: int = MAX_PIXELS,
    progress=lambda stage: None,
) -> Result:
    """The page's one way into the inference path of `python -m model.inpaint`: the uploaded
    files are read by `read_pair` (so the same orientation, modes, sizes and errors), then
    filled by `inpaint` with the checkpoint's network, or by a classical method on the same
    tensors and composited the same way (known pixels exactly as read). Raises PageError.

    With no mask (method "read", when the page opens a photograph) only the image is read,
    beside a placeholder mask of its size, so the page paints on the very pixels, in the
    very orientation, that the model will be given."""
    if mask_bytes is None:
        method = "read"
    elif method not in METHODS:
        raise PageError(f"Unknown method {method!r}.", f"expected one of {sorted(METHODS)}")
    timings = {}
    start = time.perf_counter()
    progress("reading the photograph and the mask")
    try:  # the header alone: refuse a huge image before decoding it
        with Image.open(io.BytesIO(image_bytes)) as peek:
            raw_size = peek.size
    except Image.DecompressionBombError as e:
        raise PageError(
            f"The image is too large; this server takes at most {max_pixels:,} pixels.", str(e), 413
        ) from None
    except Exception:  # noqa: BLE001 - read_pair says what is wrong with it, below
        raw_size = (1, 1)
    if raw_size[0] * raw_size[1] > max_pixels:
        raise _too_large(*raw_size, max_pixels)
    placeholders = []
    if mask_bytes is None:  # one hole pixel, at the stored size, then transposed (an EXIF turn)
        for w, h in (raw_size, raw_size[::-1]):
            m = np.zeros((h, w), np.uint8)
            m[0, 0] = 255
            placeholders.append(png_bytes(m))
    with tempfile.TemporaryDirectory(prefix="tritonsplat-serve-") as tmp:
        for attempt, mask_data in enumerate(placeholders or [mask_bytes]):
            paths = []
            for kind, data, name in (("image", image_bytes, names[0]), ("mask", mask_data, names[1])):
                base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(name or kind).name)[-80:] or kind
                path = Path(tmp) / f"{kind}{attempt}" / base
                path.parent.mkdir()
                path.write_bytes(data)
                paths.append(path)
            try:
                image, mask = cli.read_pair(*paths)
                break
            except (ValueError, FileNotFoundError, OSError) as e:
                said = str(e)
                which = "mask" if said.startswith("--mask") or str(paths[1]) in said else "image"
                if placeholders and which == "mask" and attempt + 1 < len(placeholders):
                    continue  # the placeholder had the other orientation
                detail = said.replace(str(paths[0].parent) + os.sep, "").replace(str(paths[1].parent) + os.sep, "")
                detail = detail.replace("--image", "image").replace("--mask", "mask")
                for pattern, kind, title in _PLAIN:
                    if kind == which and re.search(pattern, detail):
                        raise PageError(title, detail) from None
                raise PageError(f"The {which} could not be used.", detail) from None
    h, w = image.shape[-2:]
    if h * w > max_pixels:
        raise _too_large(w, h, max_pixels)
    if method == "read":
        timings["read"] = time.perf_counter() - start
        return Result(method, image, mask, image, timings=timings)
    timings["read"] = time.perf_counter() - start
    with _RUN_LOCK:
        if method == "model":
            if models.loaded is None:
                progress("loading the model")
            net, cfg = models.get()
            timings["load"] = models.load_seconds
            progress("running the network")
            captured = {}
            # the network's forward returns the Gaussians it rendered; catch them on the way out
            hook = net.register_forward_hook(lambda _m, _a, out: captured.update(out=out))
            start = time.perf_counter()
            try:
                output = cli.inpaint(net, image, mask, cfg.model.patch_size)
            finally:
                hook.remove()
            timings["network"] = time.perf_counter() - start
            g = captured["out"].get("gaussians") if captured else None
            g = None if g is None else {k: (None if v is None else v.detach().cpu()) for k, v in g.items()}
            return Result(method, image, mask, output, g, cfg.model.patch_size, cfg.model.overlap, timings)
        progress(f"filling with {METHODS[method]}")
        start = time.perf_counter()
        fill = PREFILLS[method](image, mask)
        output = torch.where(mask.bool(), fill, image)
        timings["fill"] = time.perf_counter() - start
        return Result(method, image, mask, output, timings=timings)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def drawn_gaussians(result: Result) -> torch.Tensor | None:
    """[1, Hp, Wp, K] True for the Gaussians whose patch canvas (core plus overlap) touches
    the hole: the ones that rendered the fill (the others are replaced by known pixels)."""
    if result.gaussians is None:
        return None
    means = result.gaussians["means"]
    _, hp, wp, k, _ = means.shape
    p, o = result.patch_size, result.overlap
    h, w = result.mask.shape[-2:]
    mask = F.pad(result.mask[None], (0, wp * p - w, 0, hp * p - h))
    touched = F.max_pool2d(mask, p + 2 * o, stride=p, padding=o)[0, 0] > 0  # [Hp, Wp]
    return touched[None, :, :, None].expand(1, hp, wp, k)


OUTLINES = np.array([(255, 214, 0), (0, 220, 255)], np.uint8)  # neighbouring Gaussians alternate


def overlay_png(result: Result, sigma: float, style: str) -> bytes:
    """The Gaussians that rendered the fill drawn over it, zoomed so that one grid cell of
    Gaussians spans 8 pixels or more (at most 4x, 12 Mpixels): a patch holds K of them in a
    few pixels. Outlines alternate two colors like a checkerboard over each patch's grid, so
    neighbours stay apart; fills are opaque, in the result's color under each mean (the
    network's own colors are a residual over the classical fills and mixing logits, not a
    color to show), over the hole darkened so that the gaps between them show."""
    from tritonsplat.viz import draw_gaussians, image_means, sample_colors

    h, w = result.output.shape[-2:]
    g = result.gaussians
    k = g["means"].shape[-2]
    side = max(1, round(k**0.5))
    cell = result.patch_size / side
    zoom = int(max(1, min(4, math.ceil(8 / cell), math.isqrt(12_000_000 // (h * w)))))
    big = F.interpolate(result.output[None], scale_factor=zoom, mode="nearest")[0]
    means, p = g["means"] * zoom, result.patch_size * zoom
    if style == "outline":
        parity = (np.arange(k) // side + np.arange(k) % side) % 2
        colors = np.broadcast_to(OUTLINES[parity], (*g["means"].shape[:-1], 3))
    else:  # opaque, in the result's color under each mean, over the hole darkened so that gaps show
        colors = sample_colors(big, image_means(means, p)[0]).round().astype(np.uint8).reshape(*means.shape[:-1], 3)
        hole = F.interpolate(result.mask[None], scale_factor=zoom, mode="nearest")[0].bool()
        big = torch.where(hole, big * 0.3, big)
    picture = draw_gaussians(
        big, means, g["cholesky"] * zoom, colors, patch_size=p, sigma=sigma, style=style, keep=drawn_gaussians(result),
        alpha=1.0,
    )  # fmt: skip
    return png_bytes(picture)


def examples() -> list[dict]:
    """The photographs one click away: the released checkpoint's own example (with its
    mask) and two photographs held out of its training set."""
    out = [dict(name="example", title="moon crop (with its mask)", path=DEFAULT_CKPT / "example.png",
                mask=DEFAULT_CKPT / "example_mask.png")]  # fmt: skip
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


class App:
    """The ASGI application: the page, its files, and a small JSON API."""

    def __init__(self, ckpt: Path = DEFAULT_CKPT, max_pixels: int = MAX_PIXELS, preload: bool = True):
        from starlette.applications import Starlette
        from starlette.routing import Mount, Route
        from starlette.staticfiles import StaticFiles

        self.models = _Models(ckpt)
        self.max_pixels = max_pixels
        self.results: OrderedDict[str, Result] = OrderedDict()  # the last few, for overlays
        self.examples = {e["name"]: e for e in examples()}
        routes = [
            Route("/", self.index),
            Route("/api/info", self.info),
            Route("/api/examples/{name}/{part}", self.example),
            Route("/api/open", self.open, methods=["POST"]),
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
                                 ckpt=str(self.models.ckpt.name), loaded=self.models.loaded is not None))  # fmt: skip

    async def example(self, request):
        from starlette.responses import FileResponse

        e = self.examples.get(request.path_params["name"])
        part = request.path_params["part"]
        if e is None or part not in ("image", "mask") or (part == "mask" and "mask" not in e):
            return self._error(PageError("No such example.", request.url.path, status=404))
        path = e["path"] if part == "image" else e["mask"]
        return FileResponse(path, filename=path.name)

    async def open(self, request):
        """multipart image -> JSON: the image as the inference path reads it (PNG), its size."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        try:
            parts, _ = await self._form(request, ("image",))
            data, name = parts["image"]
            result = await run_in_threadpool(
                _run_inpaint, data, None, models=self.models, names=(name, "mask.png"), max_pixels=self.max_pixels
            )
        except PageError as e:
            return self._error(e)
        h, w = result.image.shape[-2:]
        return JSONResponse(dict(image=data_url(png_bytes(to_uint8(result.image))), width=w, height=h,
                                 timings=result.timings))  # fmt: skip

    async def _form(self, request, keys=("image", "mask")):
        length = request.headers.get("content-length")
        if length is not None and int(length) > MAX_UPLOAD:
            raise PageError(f"The upload is too large: {int(length) / 2**20:.1f} MB; the page takes at most "
                            f"{MAX_UPLOAD >> 20} MB.", status=413)  # fmt: skip
        try:
            form = await request.form(max_files=2, max_fields=4)
        except Exception as e:  # noqa: BLE001 - a malformed form, whatever the parser says
            raise PageError("The upload could not be read.", str(e)) from None
        parts = {}
        for key in keys:
            item = form.get(key)
            if item is None or isinstance(item, str):
                raise PageError(f"The request has no {key} file.", "open a photograph and paint the hole first")
            parts[key] = (await item.read(), item.filename or f"{key}.png")
        return parts, str(form.get("method") or "model")

    async def inpaint(self, request):
        """multipart image, mask[, method] -> newline-delimited JSON: {"stage"} lines while it
        runs, then one {"result"} or {"error"} line."""
        from starlette.responses import StreamingResponse

        try:
            parts, method = await self._form(request)
        except PageError as e:
            return self._error(e)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        begun = time.perf_counter()

        def emit(event: dict):
            loop.call_soon_threadsafe(queue.put_nowait, event)

        def work():
            try:
                result = _run_inpaint(
                    parts["image"][0], parts["mask"][0], method, models=self.models,
                    names=(parts["image"][1], parts["mask"][1]), max_pixels=self.max_pixels,
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
        out = png_bytes(to_uint8(result.output))
        mask = png_bytes(to_uint8(result.mask)[..., 0])
        result.timings["encode"] = time.perf_counter() - start
        result.timings["total"] = time.perf_counter() - begun
        rid = uuid.uuid4().hex
        self.results[rid] = result
        while len(self.results) > 4:  # each holds its image, mask, result and Gaussians
            self.results.popitem(last=False)
        keep = drawn_gaussians(result)
        h, w = result.output.shape[-2:]
        gaussians = None
        if keep is not None:
            gaussians = dict(drawn=int(keep.sum()), total=int(keep.numel()), patch_size=result.patch_size)
        rows, cols = torch.nonzero(result.mask[0], as_tuple=True)
        box = [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]  # the hole's, x0 y0 x1 y1
        return dict(id=rid, method=result.method, width=w, height=h, hole=int(result.mask.sum()), box=box,
                    image=data_url(out), mask=data_url(mask), timings=result.timings, gaussians=gaussians)  # fmt: skip

    async def overlay(self, request):
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import Response

        result = self.results.get(request.path_params["rid"])
        if result is None:
            return self._error(PageError("That result is gone: inpaint again.", status=404))
        if result.gaussians is None:
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (the page has no login: "
                        "keep it on this machine)")  # fmt: skip
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--ckpt", type=Path, default=DEFAULT_CKPT, help="checkpoint folder or run folder")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS, help="the largest image taken, in pixels")
    parser.add_argument("--no-preload", action="store_true", help="load the model on the first fill, not at start-up")
    args = parser.parse_args(argv)
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        print('model.serve needs the optional extra: pip install -e ".[serve]"', file=sys.stderr)
        return 2
    if not 0 <= args.port < 65536:
        parser.error(f"--port: expected 0..65535, got {args.port}")
    try:
        sock = bind(args.host, args.port)
    except OSError as e:
        print(f"--port: cannot listen on {args.host}:{args.port} ({e.strerror})", file=sys.stderr)
        return 1
    app = App(args.ckpt, args.max_pixels, preload=not args.no_preload)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"inpainting page: http://{shown}:{port}/  (Ctrl+C stops it)", flush=True)
    make_server(app).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
