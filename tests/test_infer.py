"""Scale-adaptive, windowed inference: known pixels exact, thin holes at full resolution
and thick ones at a coarser scale, windows only where there are holes, no seam where a
hole crosses windows, and a large photograph within its memory bound."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from model_helpers import tiny_config

from tritonsplat_inpaint.infer import (
    GUARD_MARGIN_DB,
    Guard,
    _guard,
    hole_scales,
    inpaint,
    probe_mask,
    starting_blend,
)
from tritonsplat_inpaint.network import build_model
from tritonsplat_inpaint.page.words import plain_note


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    net = build_model(tiny_config()).eval()
    with torch.no_grad():
        net.head.proj.weight.normal_(0, 0.05)
    return net


def _smooth(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.interpolate(torch.rand(1, 3, h // 8, w // 8, generator=g), size=(h, w),
                                           mode="bilinear", align_corners=False)[0]  # fmt: skip


def test_hole_scales_follow_the_thickness():
    hole = np.zeros((200, 300), bool)
    hole[10, 10:290] = True  # a 1-px scratch
    hole[60:180, 40:200] = True  # 60 px thick from edge to middle
    levels, thickness, per_hole = hole_scales(hole, radius=6.4, max_level=5)
    assert sorted(per_hole.tolist()) == [0, 4] and levels[10, 100] == 0 and levels[100, 100] == 4
    assert levels[0, 0] == -1 and sorted(thickness.round().tolist()) == [1, 60]
    _, _, capped = hole_scales(hole, radius=6.4, max_level=2)
    assert sorted(capped.tolist()) == [0, 2]


def test_known_pixels_exact_and_the_plan_reported(net):
    image = _smooth(96, 160)
    hole = torch.zeros(96, 160, dtype=torch.bool)
    hole[40, 5:150] = True  # a scratch: full resolution
    hole[20:80, 60:120] = True  # 30 px thick: beyond 32 / 5 at full size
    out, report = inpaint(net, image, hole, tile=64, overlap=16)
    assert torch.equal(out[:, ~hole], image[:, ~hole])
    assert (out[:, hole] - image[:, hole]).abs().max() > 0
    scales = {s["scale"]: s for s in report.scales}
    assert min(scales) < 1 and all(s["windows"] >= 1 for s in report.scales)
    assert sum(s["pixels"] for s in report.scales) == int(hole.sum())


def test_windows_only_where_the_holes_are_and_no_seam(net):
    image = _smooth(64, 512)
    hole = torch.zeros(64, 512, dtype=torch.bool)
    hole[30:33, 140:330] = True  # a scratch across several 128-px windows
    out, report = inpaint(net, image, hole, method="blend", tile=128, overlap=32)
    assert report.scales[0]["windows"] == 3  # of the 5 windows along the picture (every 96 px), those it touches
    # the blend of overlapping windows is continuous along the scratch: no jump at a window's edge
    along = out[:, 31, 140:330]
    assert (along[:, 1:] - along[:, :-1]).abs().max() < 0.1
    single, _ = inpaint(net, image, hole, method="blend", tile=512, overlap=32)
    assert (out - single).abs().max() < 0.05


def test_blend_is_the_networks_starting_fill(net):
    image = _smooth(32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 10:20, 8:24] = 1
    out, _ = inpaint(net, image, mask[0, 0], method="blend")
    expected = starting_blend(net, image[None], mask)[0]
    hole = mask[0, 0].bool()
    torch.testing.assert_close(out[:, hole], expected.clamp(0, 1)[:, hole])
    with pytest.raises(ValueError, match="method: expected one of 'model', 'blend', .*got 'magic'"):
        inpaint(net, image, mask[0, 0], method="magic")
    with pytest.raises(ValueError, match="tile: expected a multiple of 16 larger than overlap"):
        inpaint(net, image, mask[0, 0], tile=100)


def test_the_probe_is_the_holes_shape_on_known_pixels():
    hole = torch.zeros(64, 96, dtype=torch.bool)
    hole[20:30, 40:60] = True
    probe = probe_mask(hole, hole)
    assert probe is not None and int(probe.sum()) == int(hole.sum())  # a whole copy fits
    assert int(probe_mask(hole, hole, copies=4).sum()) == 4 * int(hole.sum())  # and four apart
    ys, xs = torch.nonzero(probe, as_tuple=True)
    assert (int(ys.max() - ys.min()), int(xs.max() - xs.min())) == (9, 19)  # the same shape
    grown = torch.nn.functional.max_pool2d(hole[None, None].float(), 9, 1, 4)[0, 0] > 0
    assert not (probe & grown).any()  # off the hole and its margin
    huge = torch.ones(64, 96, dtype=torch.bool)
    huge[:4] = False
    assert probe_mask(huge, huge) is None  # no room for a copy


def test_the_guard_fills_big_holes_with_the_better_method_on_the_probe(net):
    image = _smooth(128, 192)
    hole = torch.zeros(128, 192, dtype=torch.bool)
    hole[50:80, 80:110] = True  # 15 px thick: a reduced scale for the tiny network (radius 6.4)
    bad = build_model(tiny_config()).eval()  # a network far off: large random Gaussians' colours
    with torch.no_grad():
        bad.head.proj.weight.normal_(0, 2.0)
    guarded, report = inpaint(bad, image, hole, tile=64, overlap=16)
    unguarded, _ = inpaint(bad, image, hole, tile=64, overlap=16, guard=False)
    reduced = [s for s in report.scales if s["scale"] < 1]
    assert reduced
    for s in reduced:  # both fills were tried on the probe, and the blend, ahead by more than the margin, filled
        assert set(s["probe_mse"]) == {"model", "blend"} and s["method"] == "blend"
        assert 10 * math.log10(s["probe_mse"]["model"] / s["probe_mse"]["blend"]) > GUARD_MARGIN_DB
    assert any(f"the blend fills its holes (ahead of the model by more than {GUARD_MARGIN_DB:g} dB, on a probe of"
               in note for note in report.notes)  # fmt: skip
    chosen, _ = inpaint(bad, image, hole, method=reduced[0]["method"], tile=64, overlap=16)
    assert torch.equal(guarded, chosen) and not torch.equal(unguarded, chosen)
    # the guard's choice is the one that is better on the real hole too, here
    err = {name: float((out[:, hole] - image[:, hole]).square().mean()) for name, out in
           (("guarded", guarded), ("unguarded", unguarded))}  # fmt: skip
    assert err["guarded"] < err["unguarded"]
    # a margin of one's own reaches the guard: at 100 dB the network keeps the hole
    kept, report = inpaint(bad, image, hole, tile=64, overlap=16, guard=Guard(margin_db=100.0))
    assert all(s["method"] == "model" for s in report.scales) and torch.equal(kept, unguarded)
    assert any("within the 100 dB margin" in note for note in report.notes)


@pytest.mark.parametrize(("lead_db", "chosen"), [(GUARD_MARGIN_DB - 0.3, "model"), (GUARD_MARGIN_DB + 0.3, "blend"),
                                                 (-0.5, "model")])
def test_the_blend_replaces_the_network_only_when_clearly_ahead_on_the_probe(lead_db, chosen):
    """Two fills close on the probe are a coin toss for the real hole: the network keeps it
    unless the blend leads by more than GUARD_MARGIN_DB."""
    work = torch.full((3, 64, 96), 0.5)
    hole = torch.zeros(64, 96, dtype=torch.bool)
    hole[24:40, 40:56] = True
    off = 0.1  # the network's fill is off by this everywhere, the blend's by less: it leads by lead_db
    fills = {"model": lambda x, m: torch.full_like(x, 0.5 + off),
             "blend": lambda x, m: torch.full_like(x, 0.5 + off * 10 ** (-lead_db / 20))}  # fmt: skip
    got, errors, note = _guard(fills, work, hole, hole, 64, 16, 16, 4)
    assert abs(10 * math.log10(errors["model"] / errors["blend"]) - lead_db) < 1e-3
    assert got == chosen and note.startswith(f"guard at scale 1/4: the {chosen} fills its holes")
    assert (f"within the {GUARD_MARGIN_DB:g} dB margin" in note) == (0 < lead_db <= GUARD_MARGIN_DB)
    assert ("(the best, on a probe" in note) == (lead_db < 0)
    # the page says each of them in its own words, never as the note was said
    assert plain_note(note)["text"].startswith("The large hole is filled at 1/4 scale by the ")


def test_a_guard_of_ones_own_sets_the_margin_and_bad_settings_are_refused(net):
    """`inpaint(guard=Guard(...))`: the same probe, a lead of 1.3 dB for the blend, goes to
    the blend under the default margin and stays with the network under a 2 dB one."""
    work = torch.full((3, 64, 96), 0.5)
    hole = torch.zeros(64, 96, dtype=torch.bool)
    hole[24:40, 40:56] = True
    fills = {"model": lambda x, m: torch.full_like(x, 0.6), "blend": lambda x, m: torch.full_like(x, 0.5 + 0.1 * 10 ** (-1.3 / 20))}
    assert _guard(fills, work, hole, hole, 64, 16, 16, 4)[0] == "blend"
    got, _, note = _guard(fills, work, hole, hole, 64, 16, 16, 4, Guard(margin_db=2.0))
    assert got == "model" and "within the 2 dB margin" in note
    with pytest.raises(ValueError, match=r"guard.fills: expected 'model' among the fills weighed, got \('blend',\)"):
        Guard(fills=("blend",))
    with pytest.raises(ValueError, match=r"guard.fills: expected 'model', 'blend' or .*got 'nope'"):
        Guard(fills=("model", "nope"))
    with pytest.raises(ValueError, match=r"guard.fills: expected a tuple of fill names, got 'model'"):
        Guard(fills="model")
    for bad, field in (({"margin_db": -1}, "margin_db"), ({"margin_db": math.nan}, "margin_db"),
                       ({"copies": 0}, "copies"), ({"shrinks": ()}, "shrinks"), ({"shrinks": (0, 1)}, "shrinks")):
        with pytest.raises(ValueError, match=rf"guard.{field}: expected .*, got"):
            Guard(**bad)
    for wrong in ("yes", None, 1):
        with pytest.raises(TypeError, match=rf"guard: expected True, False or a Guard, got {wrong!r}"):
            inpaint(net, work, hole, guard=wrong)


def test_a_half_size_copy_of_the_holes_when_a_whole_one_has_no_room():
    hole = torch.zeros(64, 64, dtype=torch.bool)
    hole[12:52, 12:52] = True  # 40 x 40 in 64 x 64: no whole copy fits beside it
    assert probe_mask(hole, hole) is None
    probe = probe_mask(hole, hole, shrink=2)
    assert probe is not None and 0.5 * 400 <= int(probe.sum()) <= 21 * 21
    grown = torch.nn.functional.max_pool2d(hole[None, None].float(), 9, 1, 4)[0, 0] > 0
    assert not (probe & grown).any()


def test_a_classical_method_runs_on_the_same_plan(net):
    image = _smooth(64, 96)
    hole = torch.zeros(64, 96, dtype=torch.bool)
    hole[30, 10:80] = True  # thin: full resolution
    out, report = inpaint(net, image, hole, method="telea", tile=64, overlap=16)
    assert [s["method"] for s in report.scales] == ["telea"]
    assert torch.equal(out[:, ~hole], image[:, ~hole]) and not torch.equal(out, image)
    with pytest.raises(ValueError, match=r"method: expected one of 'model', 'blend', 'telea'.*got 'lama'"):
        inpaint(net, image, hole, method="lama")


def test_the_guard_says_its_choice_when_no_probe_fits(net):
    image = _smooth(96, 96)
    hole = torch.zeros(96, 96, dtype=torch.bool)
    hole[8:88, 8:88] = True  # most of the picture: no copy of it fits on known pixels
    out, report = inpaint(net, image, hole, tile=64, overlap=16)
    blend, _ = inpaint(net, image, hole, method="blend", tile=64, overlap=16)
    reduced = [s for s in report.scales if s["scale"] < 1]
    assert reduced and all(s["method"] == "blend" and s["probe_mse"] is None for s in reduced)
    assert any("no copy of them fits on known pixels" in note for note in report.notes)
    assert torch.equal(out, blend)
    # a network with no classical fills has no blend to fall back on: it fills, and says why
    cfg = tiny_config()
    cfg.model.prefill, cfg.model.prefill_prior = [], []
    bare = build_model(cfg).eval()
    _, report = inpaint(bare, image, hole, tile=64, overlap=16)
    assert all(s["method"] == "model" for s in report.scales)
    assert any("no classical blend to fall back on" in note for note in report.notes)
    # a guard that does not weigh the blend does not fall back on it: the network fills, and says why
    kept, report = inpaint(net, image, hole, tile=64, overlap=16, guard=Guard(fills=("model", "telea")))
    assert all(s["method"] == "model" for s in report.scales)
    assert any("the blend is not among those weighed" in note for note in report.notes)
    _, report = inpaint(net, image, hole, tile=64, overlap=16, guard=Guard(fills=("model",)))
    assert any("the guard was given no other fill to weigh" in note for note in report.notes)


_PEAK = """
import json, sys
import numpy as np, cv2
from PIL import Image
from tritonsplat_inpaint.commands.inpaint import main
w, h, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
Image.fromarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)).save(f"{folder}/photo.png")
mask = np.zeros((h, w), np.uint8)
cv2.line(mask, (0, h // 5), (w - 1, h // 4), 255, max(2, w // 250))  # a scratch across the picture
cv2.ellipse(mask, (w // 2, h // 2), (w // 4, h // 4), 0, 0, 360, 255, -1)  # and a hole a fifth of it
Image.fromarray(mask).save(f"{folder}/mask.png")
main(["--image", f"{folder}/photo.png", "--mask", f"{folder}/mask.png", "--out", f"{folder}/out.png"])
status = open("/proc/self/status").read()
peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({"peak_mb": peak}))
"""


def _peak_mb(tmp_path, w, h):
    res = subprocess.run([sys.executable, "-c", _PEAK, str(w), str(h), str(tmp_path)], capture_output=True,
                         text=True, timeout=1800)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])["peak_mb"]


def test_a_large_photograph_stays_within_its_memory_bound_scaled_down(tmp_path):
    """1000 x 750 (a sixteenth of 4000 x 3000): the whole process, Python, torch, the
    network and its DINO included, within 1.5 GB."""
    assert _peak_mb(tmp_path, 1000, 750) < 1536


@pytest.mark.slow
def test_a_4000_by_3000_photograph_stays_within_4_gb(tmp_path):
    assert _peak_mb(tmp_path, 4000, 3000) < 4096
