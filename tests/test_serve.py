"""The inpainting page (tritonsplat_inpaint.commands.serve, `python -m model.serve`): its API over loopback HTTP, and the page itself driven
in a real headless Chromium (Debian's, through Playwright's Python package) - skipped, with
the reason, only when that browser is not installed.

TRITONSPLAT_SCREENSHOT=docs/serve.png python -m pytest tests/test_serve.py -k screenshot
also writes the README's screenshot from the test's browser."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette", reason='the page needs the optional extra: pip install -e ".[serve]"')
pytest.importorskip("uvicorn", reason='the page needs the optional extra: pip install -e ".[serve]"')

from tritonsplat_inpaint import errors  # noqa: E402
from tritonsplat_inpaint.checkpoint import RELEASED  # noqa: E402
from tritonsplat_inpaint.classical import telea, to_uint8  # noqa: E402
from tritonsplat_inpaint.commands import inpaint as cli  # noqa: E402
from tritonsplat_inpaint.commands import serve  # noqa: E402
from tritonsplat_inpaint.images import read_pair  # noqa: E402
from tritonsplat_inpaint.infer import Run  # noqa: E402
from tritonsplat_inpaint.page import fill as page_fill  # noqa: E402
from tritonsplat_inpaint.page import words  # noqa: E402

CHROMIUM = os.environ.get("TRITONSPLAT_CHROMIUM", "/usr/bin/chromium")
MAX_PIXELS = 300_000  # china.jpg (427 x 640) fits, grace_hopper.jpg (512 x 600) does not
EXAMPLE = RELEASED / "example.png"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server():
    # the model loader fetches nothing (dino.py): the released checkpoint gets the DINO it
    # records, and the tests stay on loopback
    app = serve.App(max_pixels=MAX_PIXELS)
    sock = serve.bind("127.0.0.1", 0)
    srv = serve.make_server(app)
    thread = threading.Thread(target=srv.run, kwargs=dict(sockets=[sock]), daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.02)
    app.models.get()  # loaded before the first case, not inside it
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(10)


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _post(base, image: bytes, mask: bytes, method="model", names=("photo.png", "mask.png"), **fields):
    """multipart POST /api/inpaint -> (status, the JSON lines)."""
    boundary = uuid.uuid4().hex
    body = b""
    for key, data, name in (("image", image, names[0]), ("mask", mask, names[1])):
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; filename="{name}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"  # fmt: skip
    for key, value in dict(method=method, **fields).items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
    body += f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(
        f"{base}/api/inpaint", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, [json.loads(line) for line in r.read().decode().splitlines()]
    except urllib.error.HTTPError as e:
        return e.code, [json.loads(e.read())]


def _decode(url: str) -> np.ndarray:
    import base64

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def _example_pair():
    image = np.array(Image.open(EXAMPLE).convert("RGB"))
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[40:70, 30:90] = 255
    return image, mask


# ---- the API -------------------------------------------------------------------------------


def test_the_page_gives_what_the_command_line_gives(server, tmp_path):
    image, mask = _example_pair()
    status, events = _post(server, _png(image), _png(mask))
    assert status == 200 and [e["stage"] for e in events[:-1]] == [
        "reading the photograph and the mask", "running the network", "encoding the result"]  # fmt: skip
    result = events[-1]["result"]
    assert {"read", "network", "encode", "total"} <= result["timings"].keys()
    assert result["gaussians"]["drawn"] > 0 and result["gaussians"]["drawn"] < result["gaussians"]["total"]
    assert result["gaussians"]["runs"] >= 1
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert (
        cli.main(
            ["--image", str(tmp_path / "a.png"), "--mask", str(tmp_path / "m.png"), "--out", str(tmp_path / "o.png")]
        )
        == 0
    )
    assert np.array_equal(_decode(result["image"]), np.asarray(Image.open(tmp_path / "o.png")))
    assert np.array_equal(_decode(result["mask"]), mask)
    # the overlay: the fill's Gaussians over the result, zoomed (1536 // 128 = 12, at most 4)
    with urllib.request.urlopen(f"{server}/api/overlay/{result['id']}?sigma=3&style=fill", timeout=30) as r:
        overlay = np.asarray(Image.open(io.BytesIO(r.read())))
    assert overlay.shape == (512, 512, 3)
    assert not np.array_equal(overlay[::4, ::4], _decode(result["image"]))


def test_the_page_keeps_the_photographs_mode_as_the_command_line_does(server, tmp_path):
    """RGBA and 16-bit grayscale photographs come back in their own mode, the file the command line writes."""
    import cv2

    image, mask = _example_pair()
    for folder in ("in", "masks"):
        (tmp_path / folder).mkdir()
    Image.fromarray(np.dstack([image, np.full(image.shape[:2], 180, np.uint8)]), "RGBA").save(
        tmp_path / "in" / "rgba.png"
    )
    cv2.imwrite(str(tmp_path / "in" / "gray16.png"), (image.mean(-1) * 257).astype(np.uint16))
    for name in ("rgba", "gray16"):
        Image.fromarray(mask).save(tmp_path / "masks" / f"{name}.png")
    args = ["--image", str(tmp_path / "in"), "--mask", str(tmp_path / "masks"), "--out", str(tmp_path / "out")]
    assert cli.main(args) == 0
    for name in ("rgba", "gray16"):
        status, events = _post(
            server, (tmp_path / "in" / f"{name}.png").read_bytes(), _png(mask), names=(f"{name}.png", "m.png")
        )
        got = _decode(events[-1]["result"]["image"])
        want = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"))
        assert status == 200 and np.array_equal(got, want)
        assert got.shape[-1] == 4 if name == "rgba" else got.max() > 255


def test_classical_fills_on_the_same_path(server):
    image, mask = _example_pair()
    status, events = _post(server, _png(image), _png(mask), method="telea")
    result = events[-1]["result"]
    assert status == 200 and result["method"] == "telea" and result["gaussians"] is None and "fill" in result["timings"]
    img, m = torch.from_numpy(image).permute(2, 0, 1) / 255.0, torch.from_numpy(mask > 127).float()[None]
    want = to_uint8(torch.where(m.bool(), telea(img, m), img))
    assert np.array_equal(_decode(result["image"]), want)
    try:
        urllib.request.urlopen(f"{server}/api/overlay/{result['id']}", timeout=10)
        raise AssertionError("expected 409")
    except urllib.error.HTTPError as e:
        assert e.code == 409 and "no Gaussians" in json.loads(e.read())["error"]


@pytest.mark.parametrize(
    "case, title",
    [
        ("text", "This file is not a photograph the model can read"),
        ("cmyk", "This photograph's color mode is not one the model takes"),
        ("empty-mask", "The mask has no hole"),
        ("full-mask", "The mask covers the whole photograph"),
        ("mask-size", "The mask's size differs from the photograph's"),
        ("bad-mask", "The mask file is not an image the model can read"),
        ("too-large", "The image is too large: 600 x 600 = 360,000 pixels; this server takes at most 300,000"),
        ("inverted", "89% of the photograph is marked as hole: is the mask inverted?"),
        ("method", "Unknown method"),
    ],  # fmt: skip
)
def test_errors_in_plain_words_and_the_server_stays_up(server, case, title):
    image, mask = _example_pair()
    image_b, mask_b, method = _png(image), _png(mask), "model"
    if case == "text":
        image_b = b"a shopping list, not a photograph\n"
    elif case == "cmyk":
        buf = io.BytesIO()
        Image.fromarray(image).convert("CMYK").save(buf, "JPEG")
        image_b = buf.getvalue()
    elif case == "empty-mask":
        mask_b = _png(np.zeros_like(mask))
    elif case == "full-mask":
        mask_b = _png(np.full_like(mask, 255))
    elif case == "mask-size":
        mask_b = _png(mask[:64])
    elif case == "bad-mask":
        mask_b = b"GIF89a, or not"
    elif case == "too-large":
        big = np.zeros((600, 600), np.uint8)
        big[100:200, 100:200] = 255
        image_b, mask_b = _png(np.zeros((600, 600, 3), np.uint8)), _png(big)
    elif case == "inverted":
        mask_b = _png(255 - mask)
    elif case == "method":
        method = "magic"
    status, events = _post(server, image_b, mask_b, method, names=("notes.txt" if case == "text" else "a.png", "m.png"))
    assert status == 200 and events[-1]["error"].startswith(title), events[-1]
    assert "/tmp" not in events[-1]["detail"]  # no server paths in the page
    with urllib.request.urlopen(f"{server}/api/info", timeout=10) as r:
        assert r.status == 200


# another refusal's words, and the other upload's argument: a page that read the wording
# would take each of these for something else
REWORDED = "--image: full, empty, a CMYK image, cannot read x as an image, size (1, 2) differs, 9% of it: inverted?"


@pytest.mark.parametrize(
    "error, part, title",
    [
        (errors.UnsupportedMode, "image", "This photograph's color mode is not one the model takes"),
        (errors.UnreadableImage, "image", "This file is not a photograph the model can read"),
        (errors.MissingFile, "image", "This file is not a photograph the model can read"),
        (errors.UnreadableImage, "mask", "The mask file is not an image the model can read"),
        (errors.UnsupportedMode, "mask", "The mask file is not an image the model can read"),
        (errors.EmptyMask, "mask", "The mask has no hole"),
        (errors.FullMask, "mask", "The mask covers the whole photograph"),
        (errors.MaskSizeMismatch, "mask", "The mask's size differs from the photograph's"),
        (errors.InvertedMask, "mask", "42% of the photograph is marked as hole: is the mask inverted?"),
        (errors.UnwritableImage, None, "The result cannot be written as a PNG"),
        (errors.MissingCheckpoint, None, "The model could not be loaded"),
        (errors.DinoMismatch, None, "The model could not be loaded"),
    ],  # fmt: skip
)
def test_the_page_maps_each_refusal_by_its_type_not_its_wording(error, part, title):
    e = error(REWORDED, ratio=0.42) if error is errors.InvertedMask else error(REWORDED)
    assert isinstance(e, ValueError | FileNotFoundError)  # what callers caught before the types
    shown = words.page_error(e, part)
    assert shown.title.startswith(title) and shown.detail == REWORDED
    # a plain ValueError of the same words is no refusal the page knows: the generic title
    assert words.page_error(ValueError(REWORDED), part).title == f"The {part or 'input'} could not be used."


def test_a_reworded_refusal_keeps_its_page_message_through_the_fill(monkeypatch, tmp_path):
    """The fill tells the image's refusals from the mask's by the file they name, not by a
    "--mask" in their message; the checkpoint's refusals are the page's too."""
    image, mask = _example_pair()
    raised = {}

    def refuse(image_path, mask_path, *args):
        raise raised["error"](REWORDED, path=mask_path if raised["part"] == "mask" else image_path)

    monkeypatch.setattr(page_fill, "read_pair", refuse)
    for error, part, title in [(errors.UnsupportedMode, "image", "This photograph's color mode"),
                               (errors.UnsupportedMode, "mask", "The mask file is not an image"),
                               (errors.EmptyMask, "mask", "The mask has no hole"),
                               (errors.MaskSizeMismatch, "mask", "The mask's size differs")]:  # fmt: skip
        raised.update(error=error, part=part)
        with pytest.raises(serve.PageError) as e:
            serve.fill_upload((_png(image), "a.png"), (_png(mask), "m.png"), models=None)
        assert e.value.title.startswith(title) and "/tmp" not in e.value.detail
    monkeypatch.undo()
    models = serve.Models(tmp_path / "no-checkpoint")
    with pytest.raises(serve.PageError) as e:
        serve.fill_upload((_png(image), "a.png"), (_png(mask), "m.png"), models=models)
    assert e.value.title == "The model could not be loaded." and "no such checkpoint" in e.value.detail


def test_inverted_and_large_holes_as_the_command_line_takes_them(server):
    image, mask = _example_pair()
    # what --invert-mask takes: black marks the hole; the fill is that of the mask itself
    _, plain = _post(server, _png(image), _png(mask))
    status, events = _post(server, _png(image), _png(255 - mask), invert="1")
    assert status == 200 and events[-1]["result"]["image"] == plain[-1]["result"]["image"]
    # --allow-large-hole: 89% filled, with the warning of a hole above the training range, in plain words
    status, events = _post(server, _png(image), _png(255 - mask), allow_large="1")
    notes = events[-1]["result"]["notes"]
    assert [n["text"] for n in notes if n["level"] == "warning"] == [
        "The hole is 89% of the photograph, above the 60% the model was trained on: expect a smooth, blurry fill."
    ]


def test_a_large_hole_runs_the_network_at_several_scales_and_the_overlay_shows_every_run(server, tmp_path):
    """china.jpg (640 x 427) with a 150 px square and a scratch: the square is filled at a
    quarter scale, the scratch at full resolution in its windows; the result is the command
    line's, and the overlay draws the Gaussians of every run."""
    china = Path(serve.examples()[1]["path"])
    image = np.asarray(Image.open(china))
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[100:250, 300:450] = 255
    mask[380:384, 20:600] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    status, events = _post(server, china.read_bytes(), _png(mask), names=("china.jpg", "m.png"))
    result = events[-1]["result"]
    g = result["gaussians"]
    # the square's scale is filled by the network or, where the guard found the blend better
    # on a copy of the hole over known pixels, by the blend: the page says which
    guard = [n["text"] for n in result["notes"] if n["said"].startswith("guard")]
    assert len(guard) == 1 and guard[0].startswith("The large hole is filled at 1/"), result["notes"]
    coarse_by_model = "by the model" in guard[0]
    assert status == 200 and g["runs"] >= 2 and g["scales"][0] == "1/1", g
    assert (len(g["scales"]) >= 2) == coarse_by_model, g
    assert cli.main(["--image", str(china), "--mask", str(tmp_path / "m.png"), "--out", str(tmp_path / "o.png")]) == 0
    assert np.array_equal(_decode(result["image"]), np.asarray(Image.open(tmp_path / "o.png")))
    with urllib.request.urlopen(f"{server}/api/overlay/{result['id']}?sigma=1&style=outline", timeout=60) as r:
        overlay = np.asarray(Image.open(io.BytesIO(r.read())))
    zoom = overlay.shape[0] // image.shape[0]
    assert overlay.shape[:2] == (image.shape[0] * zoom, image.shape[1] * zoom)
    outlined = (overlay != np.repeat(np.repeat(_decode(result["image"]), zoom, 0), zoom, 1)).any(-1)
    if coarse_by_model:
        assert outlined[100 * zoom : 250 * zoom, 300 * zoom : 450 * zoom].mean() > 0.05  # the coarse run's
    assert outlined[378 * zoom : 386 * zoom, 20 * zoom : 600 * zoom].mean() > 0.05  # the scratch's windows
    assert not outlined[: 60 * zoom, : 200 * zoom].any()  # far from any hole: untouched


def _turned_jpeg(path=None) -> bytes:
    """A 40 x 20 JPEG whose EXIF says "turn 90 degrees clockwise to show" (orientation 6)."""
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :20] = (200, 30, 30)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", exif=exif.tobytes())
    if path is not None:
        path.write_bytes(buf.getvalue())
    return buf.getvalue()


def _open(base, image: bytes, name="photo.jpg"):
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n\r\n').encode()
    body += image + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(
        f"{base}/api/open", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_opening_gives_the_pixels_the_model_reads(server, tmp_path):
    data = _turned_jpeg(tmp_path / "turned.jpg")
    m = np.zeros((20, 40), np.uint8)
    m[5:10, 5:10] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    try:
        want, _, _ = read_pair(tmp_path / "turned.jpg", tmp_path / "m.png")
    except ValueError:  # the inference path turns the image as its EXIF says
        Image.fromarray(m.T.copy()).save(tmp_path / "m.png")
        want, _, _ = read_pair(tmp_path / "turned.jpg", tmp_path / "m.png")
    status, answer = _open(server, data)
    assert status == 200 and (answer["height"], answer["width"]) == tuple(want.rgb.shape[-2:])
    assert np.array_equal(_decode(answer["image"]), to_uint8(want.rgb))
    assert "EXIF orientation (6)" in answer["notes"][0]["text"]
    status, answer = _open(server, b"not an image", name="notes.txt")
    assert status == 400 and answer["error"].startswith("This file is not a photograph")
    status, answer = _open(server, _png(np.zeros((600, 600, 3), np.uint8)))
    assert status == 413 and "too large" in answer["error"]


def test_examples_are_served(server):
    with urllib.request.urlopen(f"{server}/api/info", timeout=10) as r:
        info = json.loads(r.read())
    assert [e["name"] for e in info["examples"]] == ["example", "china", "grace_hopper"]
    with urllib.request.urlopen(f"{server}/api/examples/example/mask", timeout=10) as r:
        assert np.array_equal(
            np.asarray(Image.open(io.BytesIO(r.read()))), np.asarray(Image.open(EXAMPLE.with_name("example_mask.png")))
        )
    for missing in ("china/mask", "nothing/image", "example/other"):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{server}/api/examples/{missing}", timeout=10)
        assert e.value.code == 404


def test_drawn_gaussians_are_those_of_patches_touching_the_hole():
    mask = torch.zeros(40, 40, dtype=torch.bool)
    mask[20, 33] = True  # patch (1, 2) of 16 px patches; its canvas reaches rows 15..32, cols 31..48
    run = Run(0, (1.0, 1.0), 0, 0, mask, dict(means=torch.zeros(1, 3, 3, 4, 2)))
    keep = serve.drawn_gaussians(run, patch_size=16, overlap=1)
    assert keep.shape == (1, 3, 3, 4) and keep[0, 1, 2].all() and keep.sum() == 4
    mask[20, 33], mask[20, 32] = False, True  # column 32: patch 2's core, and patch 1's right overlap
    keep = serve.drawn_gaussians(run, patch_size=16, overlap=1)
    assert keep[0, 1, 1:].all() and keep.sum() == 8


def test_the_overlay_gathers_every_run_in_the_photographs_pixels():
    """Two runs: a full-resolution window at (top 0, left 32) and a window at half scale:
    each run's drawn Gaussians land in the photograph's pixels, the coarse one's twice as large."""
    means = torch.full((1, 2, 2, 1, 2), 8.0)  # one Gaussian in the middle of each 16 px patch
    chol = torch.tensor([2.0, 0.5, 1.0]).expand(1, 2, 2, 1, 3)
    fine = torch.zeros(32, 32, dtype=torch.bool)
    fine[4, 4] = True  # touches patch (0, 0) only
    coarse = torch.zeros(32, 32, dtype=torch.bool)
    coarse[20, 20] = True  # patch (1, 1)
    runs = [Run(0, (1.0, 1.0), 0, 32, fine, dict(means=means, cholesky=chol)),
            Run(1, (2.0, 2.0), 0, 0, coarse, dict(means=means, cholesky=chol))]  # fmt: skip
    g = serve.gathered_gaussians(runs, patch_size=16, overlap=1)
    assert g["means"].tolist() == [[40.0, 8.0], [48.0, 48.0]]
    assert g["cholesky"].tolist() == [[2.0, 0.5, 1.0], [4.0, 1.0, 2.0]] and g["run"].tolist() == [0, 1]


def test_command_line_prints_its_loopback_address():
    proc = subprocess.Popen([sys.executable, "-m", "model.serve", "--port", "0", "--no-preload"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))  # fmt: skip
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url, line
        with urllib.request.urlopen(url.group(0), timeout=30) as r:
            page = r.read().decode()
        # every script and style the page loads is this server's
        assert re.findall(r'(?:src|href)="([^"]+)"', page) == ["/static/app.css", "/static/app.js"]
    finally:
        proc.terminate()
        proc.wait(20)


def test_the_command_is_the_librarys_and_installs_as_a_script():
    """commands/serve.py imports the library, no other command (nor training code); the
    page's files are package data; `python -m model.serve` is the shim."""
    code = ("import sys, tritonsplat_inpaint.commands.serve; "
            "print(sorted(m for m in sys.modules if m.startswith('tritonsplat_inpaint')))")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    for name in ("commands.inpaint", "commands.train", "commands.evaluate", "training", "losses", "evaluation"):
        assert f"'tritonsplat_inpaint.{name}'" not in loaded
    assert sorted(p.name for p in serve.WEB.iterdir()) == ["app.css", "app.js", "index.html"]
    assert serve.WEB == ROOT / "tritonsplat_inpaint" / "web"
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["tritonsplat-serve"] == "tritonsplat_inpaint.commands.serve:run"
    assert "web/*" in project["tool"]["setuptools"]["package-data"]["tritonsplat_inpaint"]
    assert len((ROOT / "model" / "serve.py").read_text().strip().splitlines()) <= 6


# ---- the page in a headless Chromium -------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium): the page's browser tests need it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests drive Chromium with playwright")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            accept_downloads=True, viewport=dict(width=1360, height=900),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        elsewhere = []

        def loopback_only(route):  # anything not for the test server is refused, and recorded
            if re.match(r"^(http://127\.0\.0\.1:\d+/|data:|blob:)", route.request.url):
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        context.route("**/*", loopback_only)
        context.elsewhere = elsewhere
        yield context
        context.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready]")
    yield page
    assert not errors, errors
    assert not browser.elsewhere, f"the page asked for something not on this server: {browser.elsewhere}"
    page.close()


def _stroke(page, y=0.5, x0=0.3, x1=0.7):
    """Drag the brush across the mask canvas, in fractions of its displayed size."""
    box = page.locator("#mask").bounding_box()
    page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y * box["height"])
    page.mouse.down()
    for t in np.linspace(0, 1, 8)[1:]:
        page.mouse.move(box["x"] + (x0 + t * (x1 - x0)) * box["width"], box["y"] + y * box["height"])
    page.mouse.up()


def _run(page, button="#inpaint"):
    page.click(button)
    page.wait_for_function("!document.body.dataset.busy && (window.inpaintPage.result || "
                           "!document.getElementById('error').hidden)")  # fmt: skip


def _download(page, link, tmp_path):
    with page.expect_download() as d:
        page.click(link)
    path = tmp_path / d.value.suggested_filename
    d.value.save_as(path)
    return np.asarray(Image.open(path))


def test_page_paints_inpaints_overlays_and_downloads(page, tmp_path):
    page.click("button[data-example=example]")
    page.wait_for_selector("body[data-opened=example]")
    page.click("#clear")  # the example comes with its mask; paint our own instead
    page.fill("#size", "10")
    _stroke(page, y=0.5, x0=0.25, x1=0.75)
    assert page.locator("#undo").is_enabled()
    _run(page)
    assert page.locator("#error").is_hidden()
    assert "the model" in page.text_content("#result-title")
    assert "network and render" in page.text_content("#timings")
    result = _download(page, "#download-result", tmp_path)
    mask = _download(page, "#download-mask", tmp_path) > 127
    original = np.asarray(Image.open(EXAMPLE).convert("RGB"))
    # the painted stroke: a 10 px band along the middle row, from a quarter to three quarters across
    rows, cols = np.nonzero(mask)
    assert rows.min() >= 64 - 7 and rows.max() <= 64 + 7 and cols.min() >= 32 - 7 and cols.max() <= 96 + 7
    assert mask[64, 40:88].all() and mask.sum() > 400
    changed = (result != original).any(-1)
    assert changed.any() and not changed[~mask].any()  # the fill changed only what was painted
    page.check("#show-gaussians")
    page.wait_for_selector("#overlay[data-key='1-outline']", state="visible")
    assert page.evaluate("document.getElementById('overlay').naturalWidth") == 512
    page.select_option("#style", "fill")
    page.wait_for_selector("#overlay[data-key='1-fill']", state="visible")
    assert "draw the Gaussians" in page.text_content("#timings")
    page.uncheck("#show-gaussians")
    assert page.locator("#overlay").is_hidden()
    page.select_option("#zoom", "4")
    assert page.evaluate("document.getElementById('compare').getBoundingClientRect().width") == 512
    page.fill("#slider", "20")
    assert "inset(0px 80%" in page.evaluate("document.getElementById('before').style.clipPath")
    # the classical fills on the same mask, a click away
    _run(page, "button[data-method=telea]")
    assert "Telea" in page.text_content("#result-title") and page.locator("#show-gaussians").is_disabled()


def test_page_drop_brush_tools_undo_clear_and_mask_files(page, tmp_path):
    # a photograph dropped on the page (a drop event carrying a file, as a file manager sends)
    page.evaluate("""async () => {
        const blob = await (await fetch('/api/examples/example/image')).blob();
        const dt = new DataTransfer();
        dt.items.add(new File([blob], 'dropped.png', { type: 'image/png' }));
        document.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }""")
    page.wait_for_selector("body[data-opened='dropped.png']")
    assert page.text_content("#photo-info").startswith("dropped.png: 128 x 128")
    page.click("button[data-example=example]")
    page.wait_for_selector("body[data-opened=example]")
    painted = "(() => { const c = document.getElementById('mask'); const d = c.getContext('2d')" \
              ".getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) " \
              "n += d[i] > 0; return n; })()"  # fmt: skip
    from_example = page.evaluate(painted)
    assert from_example > 0  # the example's own mask, loaded with it
    page.click("#clear")
    assert page.evaluate(painted) == 0
    page.click("#undo")
    assert page.evaluate(painted) == from_example
    page.click("#clear")
    page.fill("#size", "20")
    _stroke(page)
    stroke = page.evaluate(painted)
    page.click("#eraser")
    _stroke(page, x0=0.45, x1=0.55)
    assert 0 < page.evaluate(painted) < stroke
    page.click("#undo")
    assert page.evaluate(painted) == stroke
    # a mask file: white is the hole
    m = np.zeros((128, 128), np.uint8)
    m[10:20, 10:30] = 255
    Image.fromarray(m).save(tmp_path / "hole.png")
    page.set_input_files("#mask-file", str(tmp_path / "hole.png"))
    page.wait_for_function(f"{painted} === 200")
    Image.fromarray(m[:64]).save(tmp_path / "small.png")
    page.set_input_files("#mask-file", str(tmp_path / "small.png"))
    page.wait_for_selector("#error:not([hidden])")
    assert "size differs" in page.text_content("#error")


def test_page_errors_in_plain_words(page, server, tmp_path):
    (tmp_path / "notes.txt").write_text("a shopping list, not a photograph\n")
    page.set_input_files("#file", str(tmp_path / "notes.txt"))
    page.wait_for_selector("#error:not([hidden])")
    assert "notes.txt is not a photograph" in page.text_content("#error-title")
    page.click("button[data-example=grace_hopper]")
    page.wait_for_function("document.getElementById('error-title').textContent.includes('too large')")
    assert "512 x 600" in page.text_content("#error-title") or "600 x 512" in page.text_content("#error-title")
    # a photograph, no stroke: the server's own answer, in the page
    page.click("button[data-example=example]")
    page.wait_for_selector("body[data-opened=example]")
    page.click("#clear")
    _run(page)
    assert page.locator("#error").is_visible() and "The mask has no hole" in page.text_content("#error-title")
    assert page.locator("#compare-wrap").is_hidden()
    # the server is still up: paint, and the fill comes back
    _stroke(page)
    _run(page)
    assert page.locator("#error").is_hidden() and page.locator("#compare-wrap").is_visible()
    # a mask file that marks what to keep: refused as inverted, in plain words; filled when a large hole is allowed,
    # with the warning of a hole above the training range
    m = np.full((128, 128), 255, np.uint8)
    m[40:70, 30:90] = 0
    Image.fromarray(m).save(tmp_path / "keep.png")
    page.set_input_files("#mask-file", str(tmp_path / "keep.png"))
    page.wait_for_function("window.inpaintPage.maskFile && window.inpaintPage.maskFile.name === 'keep.png'")
    _run(page)
    assert "89% of the photograph is marked as hole: is the mask inverted?" in page.text_content("#error-title")
    page.check("#allow-large")
    _run(page)
    assert page.locator("#error").is_hidden()
    assert page.inner_text("#notes li.warning").startswith("The hole is 89% of the photograph, above the 60%")
    # no copy of so large a hole fits on known pixels, so the guard has no evidence for the network: the classical
    # blend fills it, the page says so, and there are no Gaussians to draw
    assert "no copy of it fits on the photograph's known pixels" in page.text_content("#notes")
    assert page.locator("#show-gaussians").is_disabled()


def test_page_paints_on_what_the_model_reads(page, server, tmp_path):
    # the browser would turn this JPEG by its EXIF; the page shows it as the model reads it
    _turned_jpeg(tmp_path / "turned.jpg")
    status, answer = _open(server, (tmp_path / "turned.jpg").read_bytes())
    page.set_input_files("#file", str(tmp_path / "turned.jpg"))
    page.wait_for_selector("body[data-opened='turned.jpg']")
    assert page.evaluate("[window.inpaintPage.width, window.inpaintPage.height]") == [answer["width"], answer["height"]]
    _stroke(page)
    _run(page)
    assert page.locator("#error").is_hidden() and page.locator("#compare-wrap").is_visible()


@pytest.mark.skipif(not os.environ.get("TRITONSPLAT_SCREENSHOT"), reason="writes README's screenshot when asked")
def test_screenshot(page):
    """A fill and the Gaussians that rendered it, on a held-out photograph."""
    page.click("button[data-example=china]")
    page.wait_for_selector("body[data-opened=china]")
    page.fill("#size", "28")
    _stroke(page, y=0.30, x0=0.40, x1=0.62)
    _stroke(page, y=0.36, x0=0.40, x1=0.62)
    _run(page)
    page.select_option("#zoom", "4")
    page.fill("#slider", "43")
    page.check("#show-gaussians")
    page.wait_for_selector("#overlay[data-key='1-outline']", state="visible")
    out = Path(os.environ["TRITONSPLAT_SCREENSHOT"])
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
