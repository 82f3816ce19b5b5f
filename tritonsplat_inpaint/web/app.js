// The inpainting page: a photo canvas with a mask canvas over it, painted with pointer
// events; the server (tritonsplat_inpaint/commands/serve.py) reads, fills and draws, on the
// inference path of python -m model.inpaint. No library, nothing fetched
// from anywhere but this server.
"use strict";

const $ = (id) => document.getElementById(id);
const photo = $("photo"), maskCanvas = $("mask");
const photoCtx = photo.getContext("2d"), maskCtx = maskCanvas.getContext("2d", { willReadFrequently: true });
const MASK_RGB = "rgb(255, 32, 32)";
const state = {
  info: null, file: null, name: "", width: 0, height: 0, tool: "brush", undo: [], busy: false,
  result: null, overlays: {}, lastRoundTrip: null,
  maskFile: null, // a loaded mask file, sent as it is (the command line's reading) until painted over
};
window.inpaintPage = state; // for the browser tests

// ---- messages -------------------------------------------------------------------------
function showError(title, detail) {
  $("error-title").textContent = title;
  $("error-detail").textContent = detail || "";
  $("error").hidden = false;
}
function clearError() { $("error").hidden = true; }
$("error-close").onclick = clearError;

// what the inference path noted (EXIF turns, soft or coloured masks) and warned about (a
// hole above the training range, one too thick for any working scale), in plain words
function showNotes(notes) {
  const list = $("notes");
  list.replaceChildren(...(notes || []).map((n) => {
    const li = document.createElement("li");
    li.className = n.level;
    li.textContent = n.text;
    li.title = n.said;
    return li;
  }));
  list.hidden = !list.children.length;
}

// ---- opening a photograph -------------------------------------------------------------
async function openPhoto(blob, name, maskBlob) {
  // the server reads it (python -m model.inpaint's way: orientation, modes, limits) and sends
  // back the pixels the model will be given: the page paints on those
  clearError();
  delete document.body.dataset.opened;
  let bitmap;
  try {
    const form = new FormData();
    form.append("image", blob, name);
    const r = await fetch("/api/open", { method: "POST", body: form });
    const answer = await r.json();
    if (!r.ok) { showError(answer.error.replace(/^This file/, name), answer.detail); return; }
    bitmap = await createImageBitmap(await (await fetch(answer.image)).blob());
    showNotes(answer.notes);
  } catch (e) {
    showError("The server could not be reached.", String(e));
    return;
  }
  state.file = blob; state.name = name; state.width = bitmap.width; state.height = bitmap.height;
  for (const c of [photo, maskCanvas]) { c.width = bitmap.width; c.height = bitmap.height; }
  photoCtx.drawImage(bitmap, 0, 0);
  maskCtx.clearRect(0, 0, bitmap.width, bitmap.height);
  state.undo = []; state.maskFile = null;
  $("placeholder").hidden = true;
  $("size").value = Math.max(4, Math.round(Math.max(bitmap.width, bitmap.height) / 16));
  $("size-out").textContent = $("size").value;
  $("photo-info").textContent = `${name}: ${bitmap.width} x ${bitmap.height}`;
  clearResult();
  if (maskBlob) await loadMask(maskBlob, "the example's mask");
  updateButtons();
  document.body.dataset.opened = name; // opened, with its mask if it has one
}

$("file").onchange = (e) => { const f = e.target.files[0]; if (f) openPhoto(f, f.name); e.target.value = ""; };

document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("dragging"); });
document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) document.body.classList.remove("dragging"); });
document.addEventListener("drop", (e) => {
  e.preventDefault();
  document.body.classList.remove("dragging");
  const f = e.dataTransfer.files[0];
  if (f) openPhoto(f, f.name);
});

async function openExample(ex) {
  const get = async (part) => {
    const r = await fetch(`/api/examples/${ex.name}/${part}`);
    if (!r.ok) throw new Error(`${r.status}`);
    return r.blob();
  };
  try {
    await openPhoto(await get("image"), ex.name, ex.mask ? await get("mask") : null);
  } catch (e) {
    showError("The example could not be loaded from the server.", String(e));
  }
}

// ---- the mask -------------------------------------------------------------------------
function snapshot() {
  state.undo.push({ pixels: maskCtx.getImageData(0, 0, maskCanvas.width, maskCanvas.height), file: state.maskFile });
  if (state.undo.length > 40) state.undo.shift();
}
function undo() {
  const last = state.undo.pop();
  if (last) { maskCtx.putImageData(last.pixels, 0, 0); state.maskFile = last.file; }
  updateButtons();
}
function clearMask() {
  if (!state.file) return;
  snapshot();
  maskCtx.clearRect(0, 0, maskCanvas.width, maskCanvas.height);
  state.maskFile = null;
  updateButtons();
}

async function loadMask(blob, name) {
  // the server reads it as python -m model.inpaint does (any non-black colour is hole, soft
  // edges, EXIF orientation, its size against the photograph's) and sends back the hole
  // weights; the file itself is what a fill sends, until the mask is painted over
  let answer;
  try {
    const form = new FormData();
    form.append("image", state.file, state.name || "image.png");
    form.append("mask", blob, name);
    const r = await fetch("/api/mask", { method: "POST", body: form });
    answer = await r.json();
    if (!r.ok) { showError(answer.error, answer.detail); return; }
  } catch (e) {
    showError("The server could not be reached.", String(e));
    return;
  }
  const bitmap = await createImageBitmap(await (await fetch(answer.mask)).blob());
  const tmp = new OffscreenCanvas(bitmap.width, bitmap.height);
  const t = tmp.getContext("2d");
  t.drawImage(bitmap, 0, 0);
  const src = t.getImageData(0, 0, bitmap.width, bitmap.height).data;
  snapshot();
  const out = maskCtx.createImageData(bitmap.width, bitmap.height);
  for (let i = 0; i < src.length; i += 4) { // the hole weight as the paint's opacity
    out.data[i] = 255; out.data[i + 1] = 32; out.data[i + 2] = 32; out.data[i + 3] = src[i];
  }
  maskCtx.putImageData(out, 0, 0);
  state.maskFile = { blob, name };
  showNotes(answer.notes);
  updateButtons();
}
$("mask-file").onchange = (e) => {
  const f = e.target.files[0];
  e.target.value = "";
  if (!f) return;
  if (!state.file) { showError("Open a photograph before its mask."); return; }
  loadMask(f, f.name);
};

function maskPng() { // alpha > 0 (any paint) -> white: a hole
  const { width, height } = maskCanvas;
  const src = maskCtx.getImageData(0, 0, width, height).data;
  const out = new ImageData(width, height);
  for (let i = 0; i < src.length; i += 4) {
    const v = src[i + 3] > 0 ? 255 : 0;
    out.data[i] = out.data[i + 1] = out.data[i + 2] = v;
    out.data[i + 3] = 255;
  }
  const c = new OffscreenCanvas(width, height);
  c.getContext("2d").putImageData(out, 0, 0);
  return c.convertToBlob({ type: "image/png" });
}

// brush strokes, in image pixels
let last = null;
function toImage(e) {
  const r = maskCanvas.getBoundingClientRect();
  return [(e.clientX - r.left) * maskCanvas.width / r.width, (e.clientY - r.top) * maskCanvas.height / r.height];
}
function paint(from, to) {
  const size = Number($("size").value);
  maskCtx.globalCompositeOperation = state.tool === "eraser" ? "destination-out" : "source-over";
  maskCtx.strokeStyle = maskCtx.fillStyle = MASK_RGB;
  maskCtx.lineWidth = size;
  maskCtx.lineCap = maskCtx.lineJoin = "round";
  maskCtx.beginPath();
  maskCtx.moveTo(from[0], from[1]);
  maskCtx.lineTo(to[0], to[1]);
  maskCtx.stroke();
}
maskCanvas.addEventListener("pointerdown", (e) => {
  if (!state.file || state.busy) return;
  maskCanvas.setPointerCapture(e.pointerId);
  snapshot();
  state.maskFile = null; // painted over: the canvas is the mask now
  last = toImage(e);
  paint(last, last);
});
maskCanvas.addEventListener("pointermove", (e) => {
  if (!last) return;
  const p = toImage(e);
  paint(last, p);
  last = p;
});
const endStroke = () => { if (last) { last = null; updateButtons(); } };
maskCanvas.addEventListener("pointerup", endStroke);
maskCanvas.addEventListener("pointercancel", endStroke);

function setTool(tool) {
  state.tool = tool;
  for (const t of ["brush", "eraser"]) {
    $(t).classList.toggle("active", t === tool);
    $(t).setAttribute("aria-pressed", String(t === tool));
  }
}
$("brush").onclick = () => setTool("brush");
$("eraser").onclick = () => setTool("eraser");
$("size").oninput = () => { $("size-out").textContent = $("size").value; };
$("undo").onclick = undo;
$("clear").onclick = clearMask;
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); undo(); }
  else if (e.key === "b") setTool("brush");
  else if (e.key === "e") setTool("eraser");
});

// ---- filling --------------------------------------------------------------------------
const STAGES = ["reading the photograph and the mask", "loading the model", "running the network",
  "encoding the result"];
async function run(method) {
  if (!state.file || state.busy) return;
  clearError();
  state.busy = true;
  document.body.dataset.busy = "1";
  updateButtons();
  const started = performance.now();
  const tick = setInterval(() => {
    $("elapsed").textContent = `${((performance.now() - started) / 1000).toFixed(1)} s`;
  }, 100);
  $("progress").hidden = false;
  setStage("sending", 0);
  try {
    const form = new FormData();
    form.append("image", state.file, state.name || "image.png");
    if (state.maskFile) form.append("mask", state.maskFile.blob, state.maskFile.name);
    else form.append("mask", await maskPng(), "mask.png");
    form.append("method", method);
    form.append("invert", $("invert-mask").checked ? "1" : "");
    form.append("allow_large", $("allow-large").checked ? "1" : "");
    const response = await fetch("/api/inpaint", { method: "POST", body: form });
    if (!response.ok) {
      const e = await response.json().catch(() => ({ error: `The server answered ${response.status}.` }));
      showError(e.error, e.detail);
      return;
    }
    // newline-delimited JSON: stages while it runs, then the result or an error
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const event = JSON.parse(buffer.slice(0, nl));
        buffer = buffer.slice(nl + 1);
        if (event.stage) setStage(event.stage, STAGES.includes(event.stage) ? STAGES.indexOf(event.stage) + 1 : 3);
        else if (event.error) showError(event.error, event.detail);
        else if (event.result) showResult(event.result, performance.now() - started);
      }
    }
  } catch (e) {
    showError("The server could not be reached.", String(e));
  } finally {
    clearInterval(tick);
    $("progress").hidden = true;
    state.busy = false;
    delete document.body.dataset.busy;
    updateButtons();
  }
}
function setStage(stage, step) {
  $("stage").textContent = stage + "…";
  $("progress").querySelector(".bar div").style.width = `${Math.max(5, (100 * step) / (STAGES.length + 1))}%`;
}
$("inpaint").onclick = () => run("model");
for (const b of document.querySelectorAll(".classical")) b.onclick = () => run(b.dataset.method);

// ---- the result -----------------------------------------------------------------------
const TITLES = { model: "the model (2D Gaussians)", telea: "Telea", "navier-stokes": "Navier-Stokes",
  biharmonic: "biharmonic", fsr: "FSR" };
function clearResult() {
  state.result = null; state.overlays = {};
  $("gaussian-info").textContent = "";
  $("compare-wrap").hidden = $("result-tools").hidden = $("timings").hidden = true;
  $("result-title").textContent = "none yet";
  $("show-gaussians").checked = false;
  $("overlay").hidden = true;
}
function showResult(r, roundTrip) {
  state.result = r; state.overlays = {}; state.lastRoundTrip = roundTrip;
  $("before").src = photo.toDataURL("image/png");
  $("after").src = r.image;
  $("download-result").href = r.image;
  $("download-result").download = `${(state.name || "image").replace(/\.[^.]*$/, "")}-${r.method}.png`;
  $("download-mask").href = r.mask;
  $("download-mask").download = `${(state.name || "image").replace(/\.[^.]*$/, "")}-mask.png`;
  $("result-title").textContent = `${TITLES[r.method]}, ${r.hole.toLocaleString("en")} pixels filled`;
  $("compare-wrap").hidden = $("result-tools").hidden = false;
  zoom();
  const g = $("show-gaussians");
  g.disabled = !r.gaussians;
  g.parentElement.title = r.gaussians ? `${r.gaussians.drawn.toLocaleString("en")} Gaussians rendered the fill, ` +
    `from ${r.gaussians.runs} network run${r.gaussians.runs > 1 ? "s" : ""} (windows at scale ` +
    `${r.gaussians.scales.join(", ")}), all drawn` : "a classical fill has no Gaussians";
  showNotes(r.notes);
  if (!r.gaussians) g.checked = false;
  $("overlay").hidden = true;
  slide();
  showTimings();
  if (g.checked) showOverlay();
}
function slide() {
  const v = Number($("slider").value);
  $("before").style.clipPath = `inset(0 ${100 - v}% 0 0)`;
  $("overlay").style.clipPath = `inset(0 0 0 ${v}%)`;
  $("divider").style.left = `${v}%`;
}
$("slider").oninput = slide;

function zoom() { // fit, or k CSS pixels per image pixel, scrolled to the hole
  const r = state.result, k = Number($("zoom").value), wrap = $("compare-wrap");
  if (!r) return;
  $("compare").style.width = k ? `${r.width * k}px` : "";
  if (k && r.box) {
    const [x0, y0, x1, y1] = r.box;
    wrap.scrollLeft = ((x0 + x1) / 2) * k - wrap.clientWidth / 2;
    wrap.scrollTop = ((y0 + y1) / 2) * k - wrap.clientHeight / 2;
  }
}
$("zoom").onchange = zoom;

function showTimings() {
  const r = state.result;
  if (!r) return;
  const names = { read: "read image and mask", load: "model load (once, at start-up)", network: "network and render",
    fill: "classical fill", encode: "encode PNGs", total: "server total" };
  const rows = Object.entries(r.timings).map(([k, v]) => [names[k] || k, v]);
  rows.push(["round trip in the browser", state.lastRoundTrip / 1000]);
  if (state.overlays.seconds !== undefined) rows.push(["draw the Gaussians", state.overlays.seconds]);
  const body = $("timings").tBodies[0];
  body.replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td></td><td>${v < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(2) + " s"}</td>`;
    tr.firstChild.textContent = k;
    return tr;
  }));
  $("timings").hidden = false;
}

async function showOverlay() {
  const r = state.result;
  if (!r || !r.gaussians) return;
  const key = `${$("sigma").value}-${$("style").value}`;
  try {
    if (!state.overlays[key]) {
      const resp = await fetch(`/api/overlay/${r.id}?sigma=${$("sigma").value}&style=${$("style").value}`);
      if (!resp.ok) {
        const e = await resp.json();
        showError(e.error, e.detail);
        $("show-gaussians").checked = false;
        return;
      }
      state.overlays.seconds = Number(resp.headers.get("X-Draw-Seconds"));
      state.overlays[key] = URL.createObjectURL(await resp.blob());
      showTimings();
    }
    if (state.result !== r || !$("show-gaussians").checked) return;
    const img = $("overlay");
    await new Promise((ok) => { img.onload = ok; img.src = state.overlays[key]; if (img.complete) ok(); });
    img.hidden = false;
    img.dataset.key = key;
    const n = r.gaussians.runs;
    $("gaussian-info").textContent = `${r.gaussians.drawn.toLocaleString("en")} Gaussians from ${n} network ` +
      `run${n > 1 ? "s" : ""} (scale ${r.gaussians.scales.join(", ")})`;
  } catch (e) {
    showError("The Gaussians could not be drawn.", String(e));
  }
}
$("show-gaussians").onchange = () => {
  if ($("show-gaussians").checked) showOverlay();
  else { $("overlay").hidden = true; delete $("overlay").dataset.key; $("gaussian-info").textContent = ""; }
};
$("sigma").onchange = $("style").onchange = () => { if ($("show-gaussians").checked) showOverlay(); };

// ---- start ------------------------------------------------------------------------------
function updateButtons() {
  const ready = Boolean(state.file) && !state.busy;
  for (const b of document.querySelectorAll("#tools button")) b.disabled = !ready;
  $("undo").disabled = !ready || state.undo.length === 0;
}

(async () => {
  updateButtons();
  try {
    state.info = await (await fetch("/api/info")).json();
  } catch (e) {
    showError("The server could not be reached.", String(e));
    return;
  }
  const holder = $("examples");
  for (const ex of state.info.examples) {
    const b = document.createElement("button");
    b.textContent = ex.title;
    b.dataset.example = ex.name;
    b.onclick = () => openExample(ex);
    holder.append(b);
  }
  document.body.dataset.ready = "1";
})();
