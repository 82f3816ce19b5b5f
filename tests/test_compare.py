"""model.compare: evaluations of two checkpoints on the same crops, differenced crop by crop."""

import json

import pytest

from tritonsplat_inpaint.commands import compare
from tritonsplat_inpaint.evaluation import MODEL


def _results(psnr: list[float], blend: list[float], per_image: int = 2) -> dict:
    ssim = [p / 100 for p in psnr]
    bucket = {MODEL: {"psnr": sum(psnr) / len(psnr), "psnr_per_image": psnr, "ssim": sum(ssim) / len(ssim),
                      "ssim_per_image": ssim},
              compare.BLEND: {"psnr": sum(blend) / len(blend), "psnr_per_image": blend}}  # fmt: skip
    return {"held_out": ["a", "b"], "per_image": per_image, "images": 4, "buckets": {"10-20%": bucket}}


def test_differences_are_paired_crop_by_crop_and_each_run_is_scored_over_its_blend(tmp_path, capsys):
    for name, psnr in (("ref", [30.0, 20.0, 25.0, 35.0]), ("new", [30.5, 20.4, 25.6, 35.5])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(_results(psnr, [29.0, 19.0, 24.0, 34.0])))
    assert compare.main([str(tmp_path / "ref"), str(tmp_path / "new"), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "compare.json").read_text())
    d = summary["evaluations"]["new"]["10-20%"]["minus_reference"]["psnr"]
    assert d["mean"] == pytest.approx(0.5)
    # the crops differ by 10-15 dB among themselves; paired, the spread left is 0.4-0.6
    assert d["stderr"] == pytest.approx(0.0408, abs=1e-3)
    assert d["wins"] == 1.0
    assert summary["evaluations"]["ref"]["10-20%"]["psnr_over_blend"]["mean"] == pytest.approx(1.0)
    assert "minus_reference" not in summary["evaluations"]["ref"]["10-20%"]
    assert "| new | +0.500 +- 0.041" in capsys.readouterr().out


def test_evaluations_of_different_crops_are_refused_with_what_differs():
    with pytest.raises(ValueError, match=r"per_image differs: 3 against 2"):
        compare.compare({"a": _results([1.0] * 4, [1.0] * 4), "b": _results([1.0] * 4, [1.0] * 4, per_image=3)}, "a")
    with pytest.raises(ValueError, match=r"--reference: expected one of a, b, got 'c'"):
        compare.compare({"a": _results([1.0] * 4, [1.0] * 4), "b": _results([1.0] * 4, [1.0] * 4)}, "c")


def test_the_crops_digest_decides_where_both_evaluations_have_one():
    a, b = _results([1.0] * 4, [1.0] * 4), _results([2.0] * 4, [1.0] * 4)
    a["crops"], b["crops"] = "0123", "4567"  # other pictures under the same names and counts
    with pytest.raises(ValueError, match=r"crops differs: '4567' against '0123'"):
        compare.compare({"a": a, "b": b}, "a")
    b["crops"] = "0123"
    assert compare.compare({"a": a, "b": b}, "a")["evaluations"]["b"]["10-20%"]["minus_reference"]["psnr"]["mean"] == 1


def test_a_folder_without_results_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no results.json"):
        compare.load_results(tmp_path)
