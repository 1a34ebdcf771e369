import argparse

import pytest

from procvlm.cli import serve
from procvlm.errors import ProcvlmError


def _parse(argv):
    p = argparse.ArgumentParser()
    serve.add_arguments(p)
    return p.parse_args(argv)


def test_defaults():
    args = _parse(["RUN"])
    assert (args.host, args.port, args.max_batch, args.max_queue, args.max_request_mb) == (
        "127.0.0.1", 8000, 16, 256, 32.0)
    assert args.data_root is None  # datasets are refused unless a root is given


def test_bad_limits_are_refused():
    with pytest.raises(ProcvlmError, match="must be positive"):
        serve.run(_parse(["RUN", "--max-batch", "0"]))


def test_missing_run_is_named(tmp_path):
    with pytest.raises(ProcvlmError, match="no config.json"):
        serve.run(_parse([str(tmp_path), "--port", "1"]))


def test_a_bad_run_fails_before_any_url_is_printed(tmp_path, capsys):
    from procvlm.cli.main import main

    assert main(["serve", str(tmp_path / "nope_run")]) == 2
    captured = capsys.readouterr()
    assert "http://" not in captured.out + captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_missing_data_root_is_refused_before_loading(tmp_path):
    with pytest.raises(ProcvlmError, match="--data-root .* is not a folder"):
        serve.run(_parse([str(tmp_path / "nope_run"), "--data-root", str(tmp_path / "none")]))
