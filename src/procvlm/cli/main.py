"""procvlm: procedure-grounded progress rewards for robotic manipulation.

Each subcommand lives in its own module ``procvlm.cli.<name>`` with two functions:
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their
subcommand runs, so ``procvlm label`` never pays for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from procvlm import __version__
from procvlm.errors import ProcvlmError

COMMANDS = {
    "generate": "write a MetaWorld demonstration corpus as a LeRobot v3 dataset",
    "view": "draw an episode's frame strip with sub-steps and progress curves",
    "label": "compute frame-level procedure-grounded progress labels for a dataset",
    "vqa": "derive ProcVQA chat samples (progress, segmentation, planning) from labels",
    "train": "train a progress model (compact on CPU, or a VLM)",
    "ensemble": "join compact models trained alike into one that averages their outputs",
    "score": "score a dataset with a trained progress model",
    "eval": "compare progress models and label schemes on held-out episodes",
    "policy": "behaviour cloning vs progress-weighted behaviour cloning on MetaWorld",
    "serve": "serve a progress model over HTTP",
    "demo": "the whole pipeline on a small MetaWorld corpus",
}


class DefaultsFormatter(argparse.HelpFormatter):
    """Help text that shows each option's default, unless its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False
                or default is argparse.SUPPRESS or not action.option_strings or default == []):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
        return f"{text} (default: {shown})"


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the fix, not a usage block."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = Parser(prog="procvlm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"procvlm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if a in COMMANDS), None)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=DefaultsFormatter)
        # Only the chosen subcommand's module is imported (keeps `procvlm label` free of torch).
        if name == wanted:
            _module(name).add_arguments(p)
    return parser


def _module(name: str):
    return importlib.import_module(f"procvlm.cli.{name}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a one-line usage error already printed
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        with logging_redirect_tqdm():  # log lines go above progress bars, not into them
            return int(_module(args.command).run(args) or 0)
    except ProcvlmError as e:
        _close_bars()
        print(f"procvlm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_bars()
        print(f"procvlm {args.command}: interrupted; run the same command again to resume",
              file=sys.stderr)
        return 130


def _close_bars() -> None:
    """End every open progress bar's line, so that a message after it starts a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


if __name__ == "__main__":
    sys.exit(main())
