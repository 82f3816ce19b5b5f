"""Every kernel compiles ahead of time for sm_80 and sm_90 on this GPU-less machine, and
the resource report holds the kernels to their register budget."""

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("aot") / "report.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compile for real
    subprocess.run([sys.executable, "-m", "tritonsplat.aot", "--json", str(out)], env=env, check=True)
    return json.loads(out.read_text())


def test_every_kernel_compiles_for_sm80_and_sm90(report):
    from tritonsplat.aot import kernel_specs

    expected = {(name, label, arch) for name, label, *_ in kernel_specs() for arch in ("sm_80", "sm_90")}
    assert {(r["kernel"], r["config"], r["arch"]) for r in report} == expected
    assert all(0 < r["registers"] <= 255 and r["ptx_lines"] > 100 for r in report)


def test_no_register_spills_on_sm90(report):
    spills = [r for r in report if r["arch"] == "sm_90" and (r["spill_stores"] or r["spill_loads"])]
    assert not spills, spills
