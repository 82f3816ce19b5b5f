"""The fine detail given to holes filled at reduced scales: copied from known blocks of the
photograph that look like the fill, blended without seams or lost amplitude, and only
into the hole."""

import pytest
import torch
import torch.nn.functional as F
from model_helpers import tiny_config

from tritonsplat_inpaint import detail
from tritonsplat_inpaint.detail import hann, transfer_detail
from tritonsplat_inpaint.infer import inpaint
from tritonsplat_inpaint.network import build_model
from tritonsplat_inpaint.perceptual import texture_ratio


@pytest.mark.parametrize("n", [8, 16, 64])
def test_hann_copies_half_a_window_apart_sum_to_one(n):
    w = hann(n)
    assert torch.allclose(w[: n // 2] + w[n // 2 :], torch.ones(n // 2), atol=1e-6)
    assert float(w.min()) > 0 and float(w.max()) < 1


def _scene(h=192, w=256, seed=0):
    """A smooth colour field with a fine texture (noise at one pixel) over it, and a
    rectangular hole in the middle."""
    g = torch.Generator().manual_seed(seed)
    smooth = F.interpolate(torch.rand(1, 3, 4, 4, generator=g), size=(h, w), mode="bilinear", align_corners=False)[0]
    texture = 0.15 * (torch.rand(1, h, w, generator=g) - 0.5)
    image = (smooth * 0.6 + 0.2 + texture).clamp(0, 1)
    hole = torch.zeros(h, w, dtype=torch.bool)
    hole[64:128, 96:176] = True
    return image, hole


def _smooth_fill(image, hole, f):
    """The hole filled at scale 1/f (the known pixels' local mean there) and brought back:
    what a reduced-scale fill gives, a fill with no detail."""
    h, w = -(-image.shape[1] // f), -(-image.shape[2] // f)
    work = F.interpolate(image[None], size=(h, w), mode="area")[0]
    work_hole = F.interpolate(hole[None, None].float(), size=(h, w), mode="area")[0, 0] > 0
    blurred = F.avg_pool2d(work[None], 9, 1, 4, count_include_pad=False)[0]
    guide = torch.where(work_hole, blurred, work)
    return F.interpolate(guide[None], size=image.shape[1:], mode="bilinear", align_corners=False)[0]


@pytest.mark.parametrize("size", [(192, 256), (187, 250)])  # whole cells, and cells cut at the edges
def test_detail_brings_back_the_texture_only_in_the_hole(size):
    image, hole = _scene(*size)
    f = 4
    filled = _smooth_fill(image, hole, f)
    m = hole[None, None].float()
    assert texture_ratio(filled[None], image[None], m) < 0.2  # a smudge
    smooth = filled.clone()
    blocks = transfer_detail(image, filled, hole, hole, f, 1.0)
    assert blocks > 0
    assert 0.6 < texture_ratio(filled[None], image[None], m) < 1.6  # texture with about the photograph's amplitude
    assert torch.equal(filled[:, ~hole], image[:, ~hole])  # outside the hole: the photograph
    assert (filled - smooth)[:, hole].abs().mean() > 0.01


@pytest.mark.parametrize("size", [(192, 256), (187, 250)])
def test_a_photograph_with_no_detail_gives_none(size):
    """A smooth photograph has no detail band to copy: the fill is left (nearly) as it was,
    whether or not its size is a whole number of cells."""
    image, hole = _scene(*size)
    image = F.avg_pool2d(F.pad(image[None], (8, 8, 8, 8), mode="replicate"), 17, 1)[0]  # smooth: no texture
    filled = _smooth_fill(image, hole, 4)
    before = filled.clone()
    transfer_detail(image, filled, hole, hole, 4, 1.0)
    assert (filled - before)[:, hole].abs().max() < 0.01


def _stripes(h=128, w=256):
    """Left half red with vertical stripes, right half blue with horizontal ones (amplitude
    0.1 about their mean), a hole in each half."""
    image = torch.zeros(3, h, w)
    image[0, :, : w // 2] = 0.7
    image[2, :, w // 2 :] = 0.7
    cols = (torch.arange(w) % 4 < 2).float() * 0.2
    rows = (torch.arange(h) % 4 < 2).float() * 0.2
    image[:, :, : w // 2] += cols[None, None, : w // 2]
    image[:, :, w // 2 :] += rows[None, :, None]
    hole = torch.zeros(h, w, dtype=torch.bool)
    hole[40:88, 24:72] = True
    hole[40:88, 184:232] = True
    return image, hole


def test_detail_is_copied_from_matching_known_blocks_with_its_amplitude():
    image, hole = _stripes()
    filled = _smooth_fill(image, hole, 4)
    before = filled.clone()
    transfer_detail(image, filled, hole, hole, 4, 1.0)
    added = (filled - before)[0] + (filled - before)[2]
    left, right = added[48:80, 32:64], added[48:80, 192:224]
    # stripes along the right axis: variation across columns on the left, across rows on the right
    assert left.diff(dim=1).abs().mean() > 3 * left.diff(dim=0).abs().mean()
    assert right.diff(dim=0).abs().mean() > 3 * right.diff(dim=1).abs().mean()
    # the stripes' amplitude is 0.1 in each channel: aligned blocks gain at most 41% where they overlap
    green = (filled - before)[1]
    for part in (green[48:80, 32:64], green[48:80, 192:224]):
        assert 0.07 < float((part - part.mean()).abs().mean()) < 0.1 * 1.42


def _lag_correlation(a: torch.Tensor, lag: int) -> float:
    """The correlation of `a` with itself `lag` pixels to the right."""
    x, y = a[:, :-lag].flatten(), a[:, lag:].flatten()
    return float(torch.corrcoef(torch.stack([x, y]))[0, 1])


@pytest.mark.parametrize("f", [4, 8])  # 8: candidates weighed on 16 x 16 of a block's 32 x 32 pixels
def test_blocks_are_not_one_block_repeated(f):
    """On a flat colour with fine noise every block's guide is the same: chosen by its guide
    alone the hole is one block repeated, a grid; chosen to agree with what is placed
    around it, the blocks differ."""
    g = torch.Generator().manual_seed(0)
    s = f // 4  # the scene grows with the blocks
    image = (0.5 + 0.15 * (torch.rand(1, 160 * s, 192 * s, generator=g) - 0.5)).expand(3, -1, -1).clone()
    hole = torch.zeros(160 * s, 192 * s, dtype=torch.bool)
    hole[48 * s : 112 * s, 64 * s : 128 * s] = True
    added = {}
    for candidates in (1, detail.CANDIDATES):
        filled = _smooth_fill(image, hole, f)
        before = filled.clone()
        transfer_detail(image, filled, hole, hole, f, 1.0, candidates)
        added[candidates] = (filled - before)[0, 56 * s : 104 * s, 72 * s : 120 * s]
    assert _lag_correlation(added[1], 2 * f) > 0.9  # the guide alone: a period of one stride
    assert abs(_lag_correlation(added[detail.CANDIDATES], 2 * f)) < 0.3


@pytest.mark.parametrize("f", [2, 8, 32])
def test_a_blocks_low_band_is_the_bilinear_upsampling_of_its_cells(f):
    """`_low` weighs the 6 x 6 cells around a block as `F.interpolate` upsamples them, at
    every pixel of the block and at the pixels the candidates are weighed on."""
    around = torch.rand(3, 5, 6, 6, generator=torch.Generator().manual_seed(f))
    up = F.interpolate(around.permute(1, 0, 2, 3), scale_factor=f, mode="bilinear", align_corners=False)
    every = up[:, :, f : 5 * f, f : 5 * f]
    assert torch.allclose(detail._low(around, f, torch.arange(4 * f)), every, atol=1e-6)
    some = detail._samples(4 * f)
    assert len(some) == min(4 * f, detail.AGREEMENT_SAMPLES)
    assert torch.allclose(detail._low(around, f, some), every[:, :, some][:, :, :, some], atol=1e-6)


def test_nothing_to_do_leaves_the_fill_alone():
    image, hole = _scene()
    filled = _smooth_fill(image, hole, 4)
    before = filled.clone()
    assert transfer_detail(image, filled, hole, hole, 4, 0.0) == 0
    assert transfer_detail(image, filled, hole, hole, 1, 1.0) == 0  # full resolution: nothing lost
    assert transfer_detail(image, filled, hole, torch.zeros_like(hole), 4, 1.0) == 0
    assert torch.equal(filled, before)
    with pytest.raises(ValueError, match="candidates: expected at least 1, got 0"):
        transfer_detail(image, filled, hole, hole, 4, 1.0, candidates=0)


def test_each_hole_takes_detail_from_near_itself():
    """Two holes, each in its half: each is searched and filled apart (a hole's blocks never
    write into the other's pixels, nor search the far half)."""
    image, hole = _stripes()
    filled = _smooth_fill(image, hole, 4)
    before = filled.clone()
    left_hole = hole.clone()
    left_hole[:, 128:] = False
    transfer_detail(image, filled, hole, left_hole, 4, 1.0)  # detail for the left hole only
    assert torch.equal(filled[:, 40:88, 184:232], before[:, 40:88, 184:232])


def test_inpaint_gives_big_holes_detail_and_keeps_known_pixels():
    torch.manual_seed(0)
    net = build_model(tiny_config()).eval()
    image, _ = _scene(256, 320)
    hole = torch.zeros(256, 320, dtype=torch.bool)
    hole[100:160, 120:220] = True  # 30 px thick: filled at a reduced scale
    smooth, report = inpaint(net, image, hole, detail=0.0, guard=False)
    textured, report_d = inpaint(net, image, hole, guard=False)
    assert any(s["scale"] < 1 for s in report.scales)
    assert sum(s["detail_blocks"] for s in report_d.scales) > 0
    assert sum(s["detail_blocks"] for s in report.scales) == 0
    m = hole[None, None].float()
    assert texture_ratio(textured[None], image[None], m) > 2 * texture_ratio(smooth[None], image[None], m)
    assert torch.equal(textured[:, ~hole], image[:, ~hole]) and torch.equal(smooth[:, ~hole], image[:, ~hole])
    with pytest.raises(ValueError, match=r"detail: expected a weight from 0 to 1, got 1\.5"):
        inpaint(net, image, hole, detail=1.5)


def test_low_band_keeps_what_is_coarser_than_its_scale():
    from tritonsplat_inpaint.detail import low_band

    flat = torch.full((2, 3, 20, 24), 0.3)
    assert torch.allclose(low_band(flat, 4), flat)  # partial cells at the edges too (20 and 24 px, f 4 and 8)
    assert torch.allclose(low_band(flat, 8), flat)
    assert torch.equal(low_band(flat[0], 4), low_band(flat, 4)[0])  # one image [3, H, W] as a batch of one
    ramp = torch.linspace(0, 1, 64).expand(1, 3, 32, 64)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # bilinear is exact on a ramp inside
    assert torch.allclose(low_band(ramp, 4)[inner], ramp[inner], atol=1e-6)
    stripes = torch.tensor([0.0, 1.0]).repeat(16).expand(1, 1, 8, 32)  # 2 px stripes: all of it finer than 4 px
    assert torch.allclose(low_band(stripes, 4), torch.full_like(stripes, 0.5))


def test_swap_band_puts_the_sources_fine_detail_under_the_fills_colours():
    from tritonsplat_inpaint.detail import low_band, swap_band

    g = torch.Generator().manual_seed(0)
    fill = torch.rand(1, 3, 32, 32, generator=g)
    assert torch.allclose(swap_band(fill, fill, 4), fill, atol=1e-6)  # its own band: unchanged
    assert torch.allclose(swap_band(fill, torch.full_like(fill, 0.7), 4), low_band(fill, 4))  # a flat source: none
    grain = 0.1 * torch.randn(1, 3, 32, 32, generator=g)
    swapped = swap_band(torch.full_like(fill, 0.4), 0.6 + grain, 4)
    assert torch.allclose(swapped - 0.4, grain - low_band(grain, 4), atol=1e-6)  # the grain at the fill's level
    with pytest.raises(ValueError, match=r"source: expected the fill's shape \(1, 3, 32, 32\), got \(1, 3, 16, 16\)"):
        swap_band(fill, fill[..., :16, :16], 4)


def test_swap_band_at_a_weight_mixes_the_two_fine_bands_over_the_fills_coarse_part():
    from tritonsplat_inpaint.detail import low_band, swap_band

    g = torch.Generator().manual_seed(2)
    fill, source = torch.rand(2, 1, 3, 32, 32, generator=g)
    assert torch.allclose(swap_band(fill, source, 4, 0.0), fill, atol=1e-6)  # none of the source's
    assert torch.equal(swap_band(fill, source, 4, 1.0), swap_band(fill, source, 4))  # the default: the source's alone
    mixed = swap_band(fill, source, 4, 0.6)
    fine = mixed - low_band(fill, 4)  # over the fill's coarse part:
    expected = 0.6 * (source - low_band(source, 4)) + 0.4 * (fill - low_band(fill, 4))
    assert torch.allclose(fine, expected, atol=1e-6)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=f"weight: expected a weight from 0 to 1, got {bad}"):
            swap_band(fill, source, 4, bad)


def test_with_band_changes_the_holes_alone_and_brings_a_flat_fill_closer_to_a_textured_truth():
    from tritonsplat.metrics import psnr
    from tritonsplat_inpaint.evaluation import with_band

    g = torch.Generator().manual_seed(1)
    images = (0.5 + 0.2 * torch.randn(2, 3, 48, 48, generator=g)).clamp(0, 1)
    masks = torch.zeros(2, 1, 48, 48)
    masks[:, :, 12:36, 8:40] = 1
    flat = images * (1 - masks) + 0.5 * masks
    banded = with_band(flat, images, masks, images)  # a source that knows the truth's detail
    assert torch.equal(banded * (1 - masks), images * (1 - masks))
    assert bool((psnr(banded, images) > psnr(flat, images) + 3).all())


def test_inpaint_takes_a_classical_fills_band_where_the_network_fills_and_says_so(monkeypatch):  # FSR's by default
    from tritonsplat_inpaint import infer
    from tritonsplat_inpaint.classical import PREFILLS

    torch.manual_seed(0)
    net = build_model(tiny_config()).eval()
    image, _ = _scene(96, 96)
    hole = torch.zeros(96, 96, dtype=torch.bool)
    hole[40:52, 30:70] = True  # 6 px thick: filled at full scale, where no fine detail is copied
    own, report = inpaint(net, image, hole, guard=False, band=None)
    banded, report_b = inpaint(net, image, hole, guard=False, band="telea")
    assert [s["band"] for s in report.scales] == [None] and [s["band"] for s in report_b.scales] == ["telea"]
    assert [s["band"] for s in inpaint(net, image, hole, guard=False)[1].scales] == ["fsr"]  # the default
    whole, _ = inpaint(net, image, hole, guard=False, band="telea", band_weight=1.0)
    half, _ = inpaint(net, image, hole, guard=False, band="telea", band_weight=0.5)
    none, _ = inpaint(net, image, hole, guard=False, band="telea", band_weight=0.0)
    assert torch.allclose(none, own, atol=1e-5)  # a weight of 0: the network's own band
    inside = (own - whole)[:, hole].abs() > 1e-3  # where the clamp to [0, 1] touched neither
    assert torch.allclose((half - own)[:, hole][inside], 0.5 * (whole - own)[:, hole][inside], atol=0.02)
    with pytest.raises(ValueError, match="band_weight: expected a weight from 0 to 1, got 2"):
        inpaint(net, image, hole, band_weight=2)
    assert torch.equal(banded[:, ~hole], image[:, ~hole])
    assert not torch.equal(banded[:, hole], own[:, hole])
    telea, report_t = inpaint(net, image, hole, method="telea", band="telea")  # no network: no band
    assert [s["band"] for s in report_t.scales] == [None]
    assert torch.equal(telea, inpaint(net, image, hole, method="telea")[0])
    monkeypatch.setattr(infer, "BAND_MAX_PIXELS", 96 * 96 - 1)  # a working image too large for it: none
    assert [s["band"] for s in inpaint(net, image, hole, guard=False)[1].scales] == [None]
    with pytest.raises(ValueError, match=r"band: expected None or one of .*'fsr'.*, got 'dct'"):
        inpaint(net, image, hole, band="dct")
    assert "fsr" in PREFILLS
