"""The whole pipeline on a small MetaWorld corpus: generate, label, ProcVQA, train, score,
evaluate, report, and policy learning with progress weights (quick setting).

Every step is one ``procvlm`` command, logged as the command line a researcher would type, so
the demo doubles as the pipeline's documentation. Every step resumes: running the demo again
on the same folder skips what is finished.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from procvlm.errors import ProcvlmError
from procvlm.labels import SCHEMES

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo corpus and training runs.

    Attributes:
        train_tasks: tasks of the training corpus and of the in-distribution test split.
        ood_tasks: tasks held out whole (out-of-distribution split).
        train_episodes: episodes in the training corpus.
        test_episodes: episodes in each test split.
        size: image width and height.
        cameras: cameras rendered (the first is the main one).
        max_steps: most frames per episode.
        train_steps: optimiser steps of every training run (the same for each model, so the
            comparison is fair whatever the machine's load).
        train_batch: windows per optimiser step of every training run.
        failure_rate: share of episodes with an injected failure.
        seed: seed of the whole demo.
    """

    train_tasks: tuple[str, ...] = ("pick-place", "assembly", "disassemble", "hammer",
                                    "shelf-place", "bin-picking", "basketball")
    ood_tasks: tuple[str, ...] = ("peg-insert-side", "stick-pull")
    train_episodes: int = 32
    test_episodes: int = 10
    size: int = 128
    cameras: tuple[str, ...] = ("corner",)
    max_steps: int = 300
    train_steps: int = 160
    train_batch: int = 32
    failure_rate: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.train_episodes < 2 or self.test_episodes < 1:
            raise ValueError(f"train_episodes={self.train_episodes}, test_episodes="
                             f"{self.test_episodes}: need at least 2 and 1")
        if self.train_steps < 1 or self.train_batch < 1:
            raise ValueError(f"train_steps={self.train_steps}, train_batch={self.train_batch}: "
                             "need at least 1 of each")

    def estimated_costs(self) -> dict[str, tuple[float, float]]:
        """Stage -> (CPU seconds, cores it keeps busy on a free 2-core machine), from the CPU
        costs measured on this project's 2-core machine (``COSTS``)."""
        c = COSTS
        gen_episodes = self.train_episodes + 2 * self.test_episodes
        frames = gen_episodes * self.max_steps * c["episode_fill"] * len(self.cameras)
        setups = len(self.train_tasks) * 2 + len(self.ood_tasks)
        runs = len(compact_runs())
        windows = self.train_steps * self.train_batch
        return {
            "generate": (frames * c["frame_s"] + setups * c["task_setup_s"], c["render_cores"]),
            "train": (runs * (windows * c["window_s"] + c["run_setup_s"]), c["train_cores"]),
            "eval": (runs * 2 * self.test_episodes * c["eval_episode_s"], 1.0),
            "other": (c["commands"] * c["command_s"] + c["policy_s"], 1.0),
        }

    def estimated_cpu_minutes(self) -> float:
        """CPU minutes of the whole demo (``estimated_costs``)."""
        return sum(cpu for cpu, _ in self.estimated_costs().values()) / 60

    def estimated_minutes(self) -> float:
        """Wall-clock minutes the demo takes on a free 2-core machine (``estimated_costs``); a
        machine shared with other work takes longer."""
        return sum(cpu / cores for cpu, cores in self.estimated_costs().values()) / 60


COSTS = {
    "frame_s": 0.015,       # CPU s to simulate, render (one sample per pixel) and encode a
                            # frame of one camera; 64 and 128 px cost about the same
    "episode_fill": 0.70,   # mean episode length / max_steps (211 of 300 over the demo's 52
                            # human-paced episodes)
    "task_setup_s": 1.5,    # CPU s to build one task's simulator and renderer
    "render_cores": 1.3,    # cores generation keeps busy (the simulation, llvmpipe's threads)
    "window_s": 0.0024,     # CPU s per training window (forward, backward, augmentation)
    "run_setup_s": 18.0,    # CPU s per training run outside its steps (decoding the corpus,
                            # validation, saving)
    "train_cores": 1.7,     # cores a training run keeps busy (2 torch threads)
    "eval_episode_s": 0.73,  # CPU s of `eval` per model and held-out episode, plots included
    "commands": 8,          # label, vqa, score and view commands
    "command_s": 4.0,       # CPU s each of those takes
    "policy_s": 19.0,       # CPU s of `procvlm policy --quick` (its worker processes included)
}
"""CPU costs behind ``DemoConfig.estimated_costs``, measured on this project's 2-core machine:
each command's CPU seconds in a full ``procvlm demo`` (the demo prints them), frames against
rollout CPU time (``time.process_time``), ``procvlm train --steps 1`` against ``--steps 41``,
and the cores from all threads' CPU time against the main thread's (``time.thread_time``)."""

QUICK = DemoConfig(train_tasks=("pick-place", "assembly", "hammer"),
                   ood_tasks=("shelf-place",), train_episodes=12, test_episodes=6,
                   size=64, max_steps=300, train_steps=60)


@dataclass
class DemoResult:
    """Where the demo put things, and what it cost.

    Attributes:
        seconds: wall-clock seconds of the whole demo.
        cpu_seconds: CPU seconds of the whole demo (every thread, and worker processes).
        command_seconds: wall-clock seconds of each command.
        command_cpu_seconds: CPU seconds of each command.
    """

    out: Path
    report: Path
    strip: Path
    seconds: float
    cpu_seconds: float = 0.0
    commands: list[str] = field(default_factory=list)
    command_seconds: list[float] = field(default_factory=list)
    command_cpu_seconds: list[float] = field(default_factory=list)


def cpu_seconds() -> float:
    """CPU seconds used so far by this process (all its threads) and its finished children."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class _Runner:
    """Runs ``procvlm`` subcommands in-process and remembers their command lines and costs."""

    def __init__(self) -> None:
        self.commands: list[str] = []
        self.seconds: list[float] = []
        self.cpu: list[float] = []

    def __call__(self, *argv: str) -> None:
        from procvlm.cli.main import main

        line = "procvlm " + " ".join(argv)
        logger.info("$ %s", line)
        self.commands.append(line)
        start, cpu = time.monotonic(), cpu_seconds()
        code = main(list(argv))
        self.seconds.append(time.monotonic() - start)
        self.cpu.append(cpu_seconds() - cpu)
        if code != 0:
            raise ProcvlmError(f"demo step failed ({line}, exit {code}): fix the error above "
                               "and run the demo again; finished steps are kept")


def _generate(run: _Runner, out: Path, tasks: Sequence[str], episodes: int, seed: int,
              cfg: DemoConfig) -> Path:
    run("generate", "--env", "metaworld", "--tasks", ",".join(tasks), "--episodes",
        str(episodes), "--failure-rate", str(cfg.failure_rate), "--seed", str(seed),
        "--width", str(cfg.size), "--height", str(cfg.size), "--cameras", ",".join(cfg.cameras),
        "--max-steps", str(cfg.max_steps), "--out", str(out))
    run("label", str(out), "--annotator", "oracle", "--scheme", "procvlm")
    return out


def compact_runs() -> dict[str, tuple[str, str]]:
    """Model name -> (label scheme, head) of every compact model the demo trains: one per
    scheme with the reasoning head, and the direct-regression ablation on ``procvlm`` labels."""
    runs = {f"compact[{s}]": (s, "reason") for s in SCHEMES}
    runs["compact-direct[procvlm]"] = ("procvlm", "direct")
    return runs


def _train(run: _Runner, data: Path, runs: Path, cfg: DemoConfig) -> dict[str, Path]:
    out = {}
    for name, (scheme, head) in compact_runs().items():
        folder = runs / (scheme if head == "reason" else f"{scheme}-{head}")
        resume = ["--resume"] if (folder / "checkpoints").exists() else []
        if not (folder / "model" / "config.json").is_file():
            run("train", "--model", "compact", str(data), "--out", str(folder), "--scheme",
                scheme, "--head", head, "--seed", str(cfg.seed), "--steps",
                str(cfg.train_steps), "--batch-size", str(cfg.train_batch), *resume)
        out[name] = folder
    return out


RECORD = "demo.json"
"""The demo's settings, recorded in its folder so that a rerun resumes only the same demo."""


def record_settings(out: Path, cfg: DemoConfig) -> None:
    """Record ``cfg`` in ``out/demo.json``, or check it against the one recorded there.

    Raises:
        ProcvlmError: ``out`` holds a demo made with other settings (naming them), or holds
            something that is not a demo; nothing is written then.
    """
    from procvlm._io import write_json

    mine = json.loads(json.dumps(dataclasses.asdict(cfg)))
    path = out / RECORD
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ProcvlmError(f"{path} is not readable JSON: delete {out} or pass another "
                               "--out") from err
        diff = [f"{k} {old.get(k)} (given: {mine.get(k)})" for k in sorted(set(old) | set(mine))
                if old.get(k) != mine.get(k)]
        if diff:
            raise ProcvlmError(f"--out {out} holds a demo made with {'; '.join(diff)}: pass "
                               "another --out, or the same options to resume it")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ProcvlmError(f"--out {out} exists and holds no procvlm demo (no {RECORD}): pass "
                           "a new folder, or delete it")
    write_json(path, mine)


def _first_failure(root: Path) -> int | None:
    from procvlm.data import open_dataset

    ds = open_dataset(root)
    return next((i for i in ds.episode_indices if ds.episode(i).success is False), None)


def run_demo(out: str | Path, config: DemoConfig | None = None) -> DemoResult:
    """Run the whole pipeline into ``out``; see the module docstring.

    Args:
        out: the demo folder (data/, vqa/, runs/, scores/, report/, policy/).
        config: corpus and training sizes (``DemoConfig()``; ``QUICK``, about 4 minutes).

    Returns:
        Where the report, the frame strip and the scores went, and the commands that ran.
    """
    cfg = config or DemoConfig()
    out = Path(out)
    record_settings(out, cfg)
    start, cpu = time.monotonic(), cpu_seconds()
    run = _Runner()
    train = _generate(run, out / "data" / "train", cfg.train_tasks, cfg.train_episodes,
                      cfg.seed, cfg)
    test_id = _generate(run, out / "data" / "test_id", cfg.train_tasks, cfg.test_episodes,
                        cfg.seed + 1000, cfg)
    test_ood = _generate(run, out / "data" / "test_ood", cfg.ood_tasks, cfg.test_episodes,
                         cfg.seed + 2000, cfg)
    run("vqa", str(train), "--out", str(out / "vqa"), "--seed", str(cfg.seed),
        "--samples-per-episode", "2")
    runs = _train(run, train, out / "runs", cfg)
    ours = str(runs["compact[procvlm]"])
    run("score", ours, str(test_id), "--out", str(out / "scores" / "test_id.parquet"))
    run("score", ours, str(test_id), "--format", "lerobot-rabc", "--out",
        str(out / "scores" / "test_id_rabc.parquet"))
    strip = out / "report" / "episode_strip.png"
    run("view", str(test_id), "--episode", "0", "--out", str(strip))
    failed = _first_failure(test_id)
    if failed is not None:  # where time-based labels go wrong, for a person to see
        run("view", str(test_id), "--episode", str(failed), "--out",
            str(out / "report" / "failed_episode_strip.png"))
    models = [a for name, folder in runs.items() for a in ("--model", f"{name}={folder}")]
    run("eval", *models, "--split", f"test_id={test_id}", "--split", f"test_ood={test_ood}",
        "--out", str(out / "report"))
    # progress as a reward: BC vs progress-weighted BC (policy.md, policy.png), quick setting
    run("policy", "--quick", "--out", str(out / "policy"))
    return DemoResult(out=out, report=out / "report" / "index.html", strip=strip,
                      seconds=time.monotonic() - start, cpu_seconds=cpu_seconds() - cpu,
                      commands=run.commands, command_seconds=run.seconds,
                      command_cpu_seconds=run.cpu)
