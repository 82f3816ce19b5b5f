"""The page's web application (ASGI, Starlette): the page and its files from
`tritonsplat_inpaint/web/`, the bundled examples, and a small JSON API over the fill
(`fill.fill_upload`), the uploads (`uploads`) and the overlay (`overlay`): every error
answered as {"error": title, "detail": ...} in the page's words (`words`)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import RELEASED
from ..images import INVERTED_RATIO, TRAINED_RATIO
from .examples import examples
from .fill import METHODS, Models, Result, fill_upload
from .overlay import data_url, overlay_png, png_bytes, summary
from .uploads import MAX_PIXELS, read_upload, read_upload_mask
from .words import PageError, plain_note

WEB = Path(__file__).resolve().parents[1] / "web"
MAX_UPLOAD = 64 << 20  # bytes in one request


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

        self.models = Models(ckpt, dino_weights, allow_other_dino)
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
        rows, cols = torch.nonzero(result.weight > 0, as_tuple=True)
        box = [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]  # the hole's, x0 y0 x1 y1
        return dict(id=rid, method=result.method, width=w, height=h, hole=int((result.weight > 0).sum()), box=box,
                    image=data_url(result.png), mask=data_url(mask), timings=result.timings, gaussians=summary(result),
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
