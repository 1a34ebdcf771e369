"""The ``procvlm`` command itself: one-line usage errors, defaults in --help, errors that
start their own line after a progress bar."""

import pytest

from procvlm.cli.main import main


def _stderr_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("argv, named", [
    (["label", "data", "--scheme", "foo"], "--scheme"),
    (["train", "--model", "compact", "data"], "--out"),
    (["eval", "--out", "r", "--window", "x"], "--window"),
    (["nosuchcommand"], "nosuchcommand"),
    (["generate", "--out", "x", "--episodes"], "--episodes"),
])
def test_usage_errors_are_one_line(argv, named, capsys):
    assert main(argv) == 2
    lines = _stderr_lines(capsys)
    assert len(lines) == 1, lines
    assert lines[0].startswith("procvlm") and "error:" in lines[0] and named in lines[0]
    assert "--help" in lines[0] and "usage:" not in lines[0]


@pytest.mark.parametrize("command", ["generate", "label", "vqa", "train", "score", "eval",
                                     "serve", "view", "demo"])
def test_every_option_with_a_default_shows_it_in_help(command, capsys):
    import argparse

    from procvlm.cli.main import build_parser

    assert main([command, "--help"]) == 0
    assert "usage: procvlm " + command in capsys.readouterr().out
    sub = next(a for a in build_parser([command])._actions
               if isinstance(a, argparse._SubParsersAction)).choices[command]
    formatter = sub._get_formatter()
    for action in sub._actions:
        if (not action.option_strings or action.required or action.default is False
                or isinstance(action, (argparse._HelpAction, argparse._AppendAction))):
            continue
        shown = formatter._get_help_string(action)
        assert "default" in shown, f"{command} {action.option_strings} shows no default"


def test_an_error_after_a_progress_bar_starts_its_own_line(monkeypatch, capsys):
    from tqdm import tqdm

    from procvlm.cli import label
    from procvlm.errors import ProcvlmError

    def failing_run(args):
        bar = tqdm(total=10, desc="label")
        bar.update(3)
        raise ProcvlmError("episode 3 is broken: fix it")

    monkeypatch.setattr(label, "run", failing_run)
    assert main(["label", "somewhere"]) == 2
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last == "procvlm label: error: episode 3 is broken: fix it", err
    assert "\n" in err.split("procvlm label: error")[0][-2:] or err.startswith("procvlm label")
