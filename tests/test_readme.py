"""Walks the README: every command of its ```bash blocks runs, in order, in a temporary folder.

The walker is generic: it parses every ```bash block (continuation lines joined, comments
dropped), so a command added to the README is walked without touching this file. Two fixed,
mechanical rules keep it small enough for the test suite:

- ``SKIP``: commands that cannot run here: ``make`` (sets up a virtualenv and runs the whole
  demo or suite), the VLM on a GPU (``--model vlm``), and ``procvlm serve`` (it blocks until
  Ctrl-C). A skipped command is listed in the test's output.
- ``SMALL``: per subcommand, flags that shrink the work (fewer and shorter episodes, smaller
  images, fewer training steps). A flag the README sets is replaced, one it does not is added.

``PROCVLM_README_FULL=1`` turns ``SMALL`` off (the README's own sizes) and
``PROCVLM_README_TIMES=FILE`` writes each command's wall-clock seconds to FILE as JSON; that is
how the README's command times were measured.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

SKIP = [r"^make\b", r"--model vlm\b", r"^procvlm serve\b"]

SMALL: dict[str, dict[str, str | None]] = {
    "generate": {"--episodes": "4", "--width": "48", "--height": "48", "--max-steps": "80"},
    "train": {"--steps": "4", "--batch-size": "8"},
    "vqa": {"--samples-per-episode": "1"},
    "policy": {"--quick": None, "--episodes": "4", "--seeds": "1", "--rollouts": "2",
               "--steps": "20"},
}
"""subcommand -> flag -> value (None: a flag without a value); at most ``--episodes 4`` (a
smaller README value is kept)."""


def bash_commands(text: str) -> list[str]:
    """The commands of every ```bash block, continuation lines joined, comments dropped."""
    out = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                out.append(shlex.join(words))
    return out


def shrink(argv: list[str]) -> list[str]:
    """``argv`` with the ``SMALL`` flags of its subcommand set."""
    rules = SMALL.get(argv[1] if len(argv) > 1 else "", {})
    argv = list(argv)
    for flag, value in rules.items():
        if value is None:
            argv += [] if flag in argv else [flag]
        elif flag in argv:
            i = argv.index(flag)
            if flag == "--episodes":
                value = str(min(int(argv[i + 1]), int(value)))
            argv[i + 1] = value
        else:
            argv += [flag, value]
    return argv


def test_bash_commands_and_shrink_are_mechanical():
    text = "x\n```bash\n# c\nprocvlm generate --episodes 20 \\\n    --out d  # note\nmake x\n```\n"
    assert bash_commands(text) == ["procvlm generate --episodes 20 --out d", "make x"]
    assert shrink(["procvlm", "generate", "--episodes", "20", "--out", "d"]) == [
        "procvlm", "generate", "--episodes", "4", "--out", "d", "--width", "48", "--height",
        "48", "--max-steps", "80"]
    assert shrink(["procvlm", "generate", "--episodes", "2"])[3] == "2"
    assert shrink(["procvlm", "policy", "--out", "p", "--quick"]).count("--quick") == 1
    assert shrink(["procvlm", "policy", "--out", "p"])[3:5] == ["p", "--quick"]


def test_readme_points_only_at_files_in_the_repository():
    root = README.parent
    text = README.read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not target.startswith(("http://", "https://")):
            assert (root / target).exists(), f"README links to {target}, not in the repository"
    for path in re.findall(r"`((?:src|tests|docs|benchmarks|configs)/[^`<> ]+)`", text):
        assert (root / path.rstrip("/")).exists(), f"README names {path}, not in the repository"
    assert "shared/spec" not in text and "DESIGN.md" not in text


@pytest.mark.slow
@pytest.mark.sim
def test_every_readme_command_runs_in_order(tmp_path, monkeypatch, capsys):
    from procvlm.cli.main import main

    full = os.environ.get("PROCVLM_README_FULL") == "1"
    monkeypatch.chdir(tmp_path)
    commands = bash_commands(README.read_text())
    assert any(c.startswith("procvlm generate") for c in commands)
    times, skipped = {}, []
    for line in commands:
        if any(re.search(p, line) for p in SKIP):
            skipped.append(line)
            continue
        argv = shlex.split(line)
        assert argv[0] == "procvlm", f"README command {line!r}: teach the walker or SKIP it"
        if not full:
            argv = shrink(argv)
        start = time.monotonic()
        code = main(argv[1:])
        times[line] = round(time.monotonic() - start, 1)
        captured = capsys.readouterr()
        assert code == 0, f"README command failed: {line}\n{captured.err[-2000:]}"
    if os.environ.get("PROCVLM_README_TIMES"):
        Path(os.environ["PROCVLM_README_TIMES"]).write_text(
            json.dumps({"full": full, "seconds": times, "skipped": skipped}, indent=2))
    with capsys.disabled():
        print(f"\nREADME walked: {len(times)} commands run, skipped: {skipped}")
