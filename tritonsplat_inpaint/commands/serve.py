"""An inpainting page in the browser.

    python -m model.serve [--port 8000] [--host 127.0.0.1] [--ckpt PATH] [--max-pixels N]

Starts a local server and prints its address. The page opens a photograph (file picker,
drag and drop, or a bundled example), paints the hole with a brush or loads a mask file,
and fills it with the model or a classical method (Telea, Navier-Stokes, biharmonic, FSR); it
shows the result beside the original with a before/after slider, can draw the Gaussians
that rendered the fill over it (`tritonsplat.viz`), and downloads the result and the mask
as PNG. Everything the page loads is served from `tritonsplat_inpaint/web/`: it works
with no network.

Every fill goes through `page.fill.fill_upload`, built on the library calls of
`python -m model.inpaint`: `images.read_pair` (EXIF orientation, modes and bits, the mask
rules: any non-black colour is hole, soft edges, the inverted-mask check and the
large-hole warning), `checkpoint.load_model` (the released checkpoint and the DINO it was
trained with) and `infer.inpaint_picture` (scale-adaptive, windowed inference, composed
back in the photograph's own mode). The page's result is the file the command line writes.
The page itself is `tritonsplat_inpaint.page` (its modules by job); this module is its
command line. Needs the optional extra: pip install -e ".[serve]".
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from ..checkpoint import RELEASED
from ..cli import entry, prog
from ..page.app import MAX_UPLOAD, WEB, App
from ..page.examples import examples
from ..page.fill import METHODS, Models, Result, fill_upload
from ..page.overlay import drawn_gaussians, gathered_gaussians, overlay_png
from ..page.uploads import MAX_PIXELS, read_upload, read_upload_mask
from ..page.words import PageError, plain_note

# the page's parts, as this module offered them before the page had its own package
__all__ = ["App", "MAX_PIXELS", "MAX_UPLOAD", "METHODS", "Models", "PageError", "Result", "WEB", "bind",
           "drawn_gaussians", "examples", "fill_upload", "gathered_gaussians", "main", "make_server", "overlay_png",
           "plain_note", "read_upload", "read_upload_mask", "run"]  # fmt: skip


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
