"""The configuration: saved and loaded whole, older saves with fields this version lacks
still load (with a warning), the dataclasses' defaults are the defaults of a loaded dict,
and `--set` says what it expected."""

import json

import pytest

from tritonsplat_inpaint.config import Config, override, preset


def test_a_saved_configuration_loads_back_equal(tmp_path):
    cfg = preset("paper")
    cfg.save(tmp_path / "c.json")
    assert Config.load(tmp_path / "c.json") == cfg


def test_from_dict_takes_the_dataclass_defaults_and_warns_about_unknown_fields():
    assert Config.from_dict({}) == Config(preset="custom")
    assert Config.from_dict({}).dino_random is Config().dino_random is True
    old = {"preset": "cpu-small", "model": {"image_size": 64, "retired": 1}, "train": {"compile": True},
           "dino_source": "random:seed=0", "world_size": 1, "command": "python -m model.train"}  # fmt: skip
    with pytest.warns(UserWarning) as caught:
        cfg = Config.from_dict(old)
    said = sorted(str(w.message) for w in caught)
    assert said == [
        "configuration: ignoring ModelConfig fields this version does not have: ['retired']",
        "configuration: ignoring TrainConfig fields this version does not have: ['compile']",
    ]  # a run folder's records (dino_source, world_size, command) are not configuration: no warning
    assert cfg.model.image_size == 64 and cfg.preset == "cpu-small"
    with pytest.warns(UserWarning, match=r"ignoring Config fields this version does not have: \['colour'\]"):
        Config.from_dict({"colour": "red"})


def test_a_run_folders_config_json_loads(tmp_path):
    record = Config().to_dict() | {"dino_source": "random:seed=0", "world_size": 2, "command": "x"}
    (tmp_path / "config.json").write_text(json.dumps(record))
    assert Config.load(tmp_path / "config.json") == Config()


def test_set_overrides_fields_and_names_what_it_expected():
    cfg = override(Config(), ["train.steps=7", "model.prefill=[]", "dino_weights=/w.pt", "train.schedule=constant"])
    assert (cfg.train.steps, cfg.model.prefill, cfg.dino_weights, cfg.train.schedule) == (7, [], "/w.pt", "constant")
    for bad in ["train.stpes=7", "train.steps", "nosuch.steps=1", "model=1"]:
        with pytest.raises(ValueError, match=rf"--set: expected section.field=value with a known field, got '{bad}'"):
            override(Config(), [bad])
    with pytest.raises(ValueError, match=r"--set: train.steps expected a int \(now 600\), got 'many'"):
        override(Config(), ["train.steps=many"])
    with pytest.raises(ValueError, match="--set: train.lr expected a float"):
        override(Config(), ["train.lr=true"])
    assert override(Config(), ["train.lr=1"]).train.lr == 1.0
    with pytest.raises(ValueError, match="preset: expected one of 'cpu-small', 'paper', got 'big'"):
        preset("big")


def test_a_bad_set_on_the_command_line_is_one_line_and_exit_1(tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "model.train", "--out", str(tmp_path / "r"), "--set", "train.stpes=5"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "error: --set: expected section.field=value with a known field, got 'train.stpes=5' (--debug for the traceback)"
    ]
    assert not (tmp_path / "r").exists()
