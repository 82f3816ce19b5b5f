"""bench.photographs' `--reuse`: the classical methods' scores of an earlier run are taken
case by case, never the model's, and the table says which were not measured again."""

import json

import pytest

from bench import photographs


def _results(tmp_path, hole_pixels=1000):
    def measured(psnr):
        return {"psnr": psnr, "texture": 0.5, "seconds": 1.0, "peak_mb": 100.0}

    row = {"picture": "Grey", "width": 1000, "height": 750, "hole": "object 8%", "hole_pixels": hole_pixels,
           "methods": {"telea": measured(20.0), "biharmonic": measured(21.0), "model": measured(22.0)}}  # fmt: skip
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"date": "d", "machine": "m", "checkpoint": "c", "runs": [row]}))
    return path


def test_reuse_takes_the_classical_methods_only(tmp_path):
    path = _results(tmp_path)
    found = photographs._earlier_classical(path)
    assert sorted(key[-1] for key in found) == ["biharmonic", "telea"]
    telea = found[("Grey", 1000, 750, "object 8%", 1000, "telea")]
    assert telea["psnr"] == 20.0 and telea["reused_from"] == str(path)


def test_reuse_keeps_the_first_source_and_the_table_names_it(tmp_path):
    first = _results(tmp_path)
    again = tmp_path / "again.json"
    row = json.loads(first.read_text())
    for key, measured in photographs._earlier_classical(first).items():
        row["runs"][0]["methods"][key[-1]] = measured
    again.write_text(json.dumps(row))
    assert all(m["reused_from"] == str(first) for m in photographs._earlier_classical(again).values())
    table = photographs.markdown(row)
    assert f"biharmonic, telea: scores (and times) taken from {first}" in table


def test_reuse_refuses_a_missing_file(tmp_path):
    with pytest.raises(SystemExit, match="--reuse: no results file"):
        photographs._earlier_classical(tmp_path / "nope.json")
