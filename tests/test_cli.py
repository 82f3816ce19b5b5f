"""What a new user meets first: every model command's --help names itself as it is typed,
and describes every option, with its default where it has one."""

import argparse
import importlib

import pytest

COMMANDS = ["train", "evaluate", "compare", "inpaint", "ablate", "prior", "release"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_a_description_and_the_usage_names_the_command(name, monkeypatch, capsys):
    module = importlib.import_module(f"tritonsplat_inpaint.commands.{name}")
    seen = []
    parse = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        seen.append(self)
        return parse(self, args, namespace)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    monkeypatch.setattr("sys.argv", [f"/clone/model/{name}.py"])
    with pytest.raises(SystemExit) as stop:
        module.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: python -m model.{name}")
    undescribed = [a.option_strings for a in seen[0]._actions if a.option_strings and not a.help]
    assert not undescribed
    for action in seen[0]._actions:  # a default worth showing is shown
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and action.help:
            assert "default" in seen[0].formatter_class("x")._get_help_string(action)


def test_threads_are_set_and_a_bad_count_is_named(monkeypatch):
    import torch

    from tritonsplat_inpaint.cli import set_threads

    before = torch.get_num_threads()
    try:
        set_threads(1)
        assert torch.get_num_threads() == 1
        set_threads(None)  # no option: left as it is
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="--threads: expected a positive number of threads, got 0"):
            set_threads(0)
    finally:
        torch.set_num_threads(before)
