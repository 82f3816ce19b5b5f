"""bench.detail_choice: its variants as the command line gives them, and its table."""

import argparse

import pytest

from bench.detail_choice import label, markdown, variant


def test_variant_parses_scale_weight_candidates():
    assert variant("2:1:16") == ((2, 1.0, 16),)
    assert variant("4:0.7:1") == ((4, 0.7, 1),)
    assert label(variant("2:1.3:64")) == "2:1.3:64"


@pytest.mark.parametrize("text", ["2:1", "two:1:16", "3:1:16", "1:1:16", "2:0:16", "2:2.5:16", "2:1:0"])
def test_variant_refuses_bad_settings_naming_what_was_given(text):
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text).replace("'", ".")):
        variant(text)


def test_markdown_lists_every_variant_with_differences_from_the_reference():
    row = {"psnr": 30.0, "ssim": 0.9, "perceptual": 0.04, "fd_dino": 13.0, "texture": 0.7}
    diff = {"psnr": {"mean": -0.25, "stderr": 0.02}, "perceptual": {"mean": -0.001, "stderr": 0.0005}}
    summary = {"crops": 10, "per_image": 2, "checkpoint": "ckpt", "reference": "2:1:16",
               "buckets": {"10-20%": {"2:1:16": row, "2:1.3:16": row | {"minus_reference": diff}}}}
    table = markdown(summary)
    assert "differences from 2:1:16" in table
    assert "| 10-20% | 2:1:16 | 30.000 |  | 0.9000 | 0.0400 |  | 13.00 | 0.700 |" in table
    assert "| 10-20% | 2:1.3:16 | 30.000 | -0.250 +- 0.020 | 0.9000 | 0.0400 | -0.0010 +- 0.0005 |" in table


def test_variant_takes_a_classical_band_and_steps_joined_by_plus():
    assert variant("fsr:4") == (("fsr", 4),)
    assert variant("fsr:4+2:0.5:16") == (("fsr", 4), (2, 0.5, 16))
    assert label(variant("fsr:4+2:0.5:16")) == "fsr:4+2:0.5:16"
    assert variant("fsr:4:0.6") == (("fsr", 4, 0.6),) and label(variant("fsr:4:0.6+2:0.5:16")) == "fsr:4:0.6+2:0.5:16"
    for bad in ("fsr:3", "nope:4", "fsr:4+2:1", "fsr:4:0", "fsr:4:1.5", "fsr:4:half"):
        with pytest.raises(argparse.ArgumentTypeError):
            variant(bad)


def test_a_reference_that_is_not_scored_is_refused_before_any_work(capsys):
    from bench.detail_choice import main

    with pytest.raises(SystemExit):
        main(["--variants", "fsr:4", "--reference", "telea"])
    assert "--reference: expected 'no detail', a variant or a classical method scored (fsr), got 'telea'" in (
        capsys.readouterr().err)
