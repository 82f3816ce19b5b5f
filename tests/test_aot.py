"""Every kernel compiles ahead of time for sm_80 and sm_90 on this GPU-less machine, and
the static cost report holds the kernels to the figures they were built to: PTX
instructions per pixel-Gaussian pair in the hot loop, occupancy, no spills, no atomics,
no shared memory or barrier in the forward and backward hot loops."""

import json
import os
import subprocess
import sys

import pytest

from tritonsplat.aot import CHANNELS, hot_loops, loop_figures, occupancy


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """sm_90 at every channel count, sm_80 at C = 3 (the paper's)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compile for real
    rows = []
    for targets, channels in (("90", CHANNELS), ("80", (3,))):
        out = tmp_path_factory.mktemp("aot") / f"sm{targets}.json"
        cmd = [sys.executable, "-c", f"import json, dataclasses, tritonsplat.aot as a; "
               f"json.dump([dataclasses.asdict(r) for r in a.compile_all({tuple(channels)!r}, targets=({targets},))], "
               f"open({str(out)!r}, 'w'))"]  # fmt: skip
        subprocess.run(cmd, env=env, check=True)
        rows += json.loads(out.read_text())
    return rows


def _one(report, kernel, mode, c=3, arch="sm_90"):
    (row,) = [r for r in report if (r["kernel"], r["mode"], r["channels"], r["arch"]) == (kernel, mode, c, arch)]
    return row


def test_every_kernel_compiles_for_sm80_and_sm90(report):
    from tritonsplat.aot import kernel_specs

    expected = {(name, mode, c, "sm_90") for name, mode, c, *_ in kernel_specs()}
    expected |= {(name, mode, c, "sm_80") for name, mode, c, *_ in kernel_specs(channels=(3,))}
    assert {(r["kernel"], r["mode"], r["channels"], r["arch"]) for r in report} == expected


@pytest.mark.parametrize("prefix", ["rasterize_patches", "rasterize"])
def test_sum_mode_reaches_its_figures(report, prefix):
    fwd, bwd = _one(report, f"{prefix}_fwd", "sum"), _one(report, f"{prefix}_bwd", "sum")
    assert fwd["instructions_per_pair"] <= 18, fwd
    assert bwd["instructions_per_pair"] <= 60, bwd
    for row in (fwd, bwd):
        assert row["ctas_per_sm"] >= 2 and row["warps_per_sm"] >= 16, row


@pytest.mark.parametrize("prefix", ["rasterize_patches", "rasterize"])
@pytest.mark.parametrize("mode", ["alpha", "normalized"])
def test_other_modes_cost_at_most_one_and_a_half_times_sum(report, prefix, mode):
    for part in ("fwd", "bwd"):
        base = _one(report, f"{prefix}_{part}", "sum")["instructions_per_pair"]
        row = _one(report, f"{prefix}_{part}", mode)
        assert row["instructions_per_pair"] <= 1.5 * base, (row, base)


def test_no_spills_on_sm90_at_any_channel_count(report):
    spills = [r for r in report if r["arch"] == "sm_90" and (r["spill_stores"] or r["spill_loads"])]
    assert not spills, spills
    assert {r["channels"] for r in report} == set(CHANNELS)


def test_no_atomics_anywhere(report):
    assert not [r for r in report if r["atomics"]]


def test_hot_loops_have_no_shared_memory_or_barriers(report):
    bad = [r for r in report if r["kernel"].endswith(("_fwd", "_bwd")) and (r["shared_loads_per_pair"] or
           r["barriers_per_pair"] or r["shuffles_per_pair"] or r["shared_bytes"])]  # fmt: skip
    assert not bad, bad


# the PTX reading itself, on hand-written PTX

_PTX = """
$L__BB0_1:
	ld.shared.f32 %r1, [%rd1];
	ex2.approx.ftz.f32 %r2, %r1;
	bar.sync 0;
	@%p1 bra $L__BB0_1;
$L__BB0_2:
	add.f32 %r3, %r2, %r2;
	@%p2 bra $L__BB0_2;
	atom.global.add.f32 %r4, [%rd2], %r3;
	ret;
"""


def test_loop_reading_counts_only_the_loop_that_evaluates_exp2():
    (body,) = hot_loops(_PTX)
    assert body[1].startswith("ex2") and len(body) == 4
    fig = loop_figures(_PTX, pairs=2)
    assert fig == dict(instructions_per_pair=2.0, shared_loads_per_pair=0.5, barriers_per_pair=0.5,
                       shuffles_per_pair=0.0, atomics=1)  # fmt: skip


def test_occupancy_follows_the_register_file():
    assert occupancy(128, 0, 1, 90) == (16, 16)  # 128 regs x 32 threads = 4096 per warp
    assert occupancy(255, 0, 8, 90) == (1, 8)
    assert occupancy(32, 0, 1, 90) == (32, 32)  # the 32-CTA limit
    assert occupancy(64, 100 * 1024, 4, 80) == (1, 4)  # shared memory
