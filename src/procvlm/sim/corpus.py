"""A MetaWorld corpus written as a LeRobot v3 dataset, resumable episode by episode.

Everything that decides a corpus's episodes is one :class:`CorpusSettings`, validated before
anything is written and recorded in the dataset as ``meta/procvlm/generate.json``. A folder is
therefore a complete corpus, a partial one that resumes only with the same settings, or left
untouched. A new generation option joins by adding a field to ``CorpusSettings`` (with the
command-line flag that sets it in the field's metadata) and reading it in :func:`_rollout`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from procvlm._io import write_json
from procvlm.data.episode import Episode
from procvlm.errors import ProcvlmError
from procvlm.sim.env import ACTION_NAMES, CAMERAS, STATE_NAMES
from procvlm.sim.failures import task_failure_modes
from procvlm.sim.pacing import PACINGS
from procvlm.sim.randomize import RANDOMIZE_CHOICES
from procvlm.sim.rollout import FPS, MAX_PATH_LENGTH, rollout
from procvlm.sim.tasks import TaskSpec, parse_tasks

log = logging.getLogger(__name__)

SETTINGS_PATH = "meta/procvlm/generate.json"
"""Where a generated dataset records the settings it was made with (relative to its root)."""

MIN_SIZE = 16
"""Smallest image side MetaWorld's offscreen renderer is asked for."""


def _flag(name: str) -> dict[str, str]:
    return {"flag": name}


@dataclass(frozen=True)
class CorpusSettings:
    """The settings that decide a corpus's episodes (its size aside).

    Attributes:
        tasks: MetaWorld task names, used round-robin.
        failure_rate: probability that an episode gets a failure mode injected.
        seed: seed of the whole corpus.
        width: image width of every camera.
        height: image height of every camera.
        cameras: short camera names (``procvlm.sim.CAMERAS``), the first is the main one.
        max_steps: most frames per episode.
        video: mp4 videos (True) or PNG images in the parquet files (False).
        randomize: rendering conditions drawn per episode from its seed: "none" (MetaWorld's
            own), "train", "train-views" or "heldout" (see ``procvlm.sim.randomize``).
        pacing: ``human`` (uneven pace, hesitations, overshoot, re-grasps; see
            ``procvlm.sim.pacing``) or ``scripted`` (the experts' constant pace).
        antialias: render with 4x multisampling (``procvlm.sim.env.Cameras``): smoother edges,
            frames about twice as expensive to generate without a GPU; visual only.
    """

    tasks: tuple[str, ...] = field(default=("pick-place",), metadata=_flag("--tasks"))
    failure_rate: float = field(default=0.5, metadata=_flag("--failure-rate"))
    seed: int = field(default=0, metadata=_flag("--seed"))
    width: int = field(default=128, metadata=_flag("--width"))
    height: int = field(default=128, metadata=_flag("--height"))
    cameras: tuple[str, ...] = field(default=("corner", "gripper"), metadata=_flag("--cameras"))
    max_steps: int = field(default=400, metadata=_flag("--max-steps"))
    video: bool = field(default=True, metadata=_flag("--images"))
    randomize: str = field(default="none", metadata=_flag("--randomize"))
    pacing: str = field(default="human", metadata=_flag("--pacing"))
    antialias: bool = field(default=False, metadata=_flag("--antialias"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(s.name for s in parse_tasks(list(self.tasks))))
        object.__setattr__(self, "cameras", tuple(self.cameras))
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ProcvlmError(f"--failure-rate {self.failure_rate} is outside [0, 1]: pass "
                               "e.g. 0.5")
        unknown = [c for c in self.cameras if c not in CAMERAS]
        if unknown or not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ProcvlmError(f"--cameras {','.join(self.cameras) or repr('')}: name each camera "
                               f"once, choosing from {', '.join(CAMERAS)}")
        for name, value in (("--width", self.width), ("--height", self.height)):
            if value < MIN_SIZE or (self.video and value % 2):
                raise ProcvlmError(f"{name} {value}: pass an even size of at least {MIN_SIZE} "
                                   "pixels (odd sizes only with --images)")
        if self.randomize not in RANDOMIZE_CHOICES:
            raise ProcvlmError(f"--randomize {self.randomize!r}: choose from "
                               f"{', '.join(RANDOMIZE_CHOICES)}")
        if self.pacing not in PACINGS:
            raise ProcvlmError(f"--pacing {self.pacing}: choose from {', '.join(PACINGS)}")
        if not 1 <= self.max_steps <= MAX_PATH_LENGTH:
            raise ProcvlmError(f"--max-steps {self.max_steps} is outside 1..{MAX_PATH_LENGTH} "
                               "(MetaWorld's horizon): pass e.g. 400")

    @property
    def specs(self) -> list[TaskSpec]:
        """The tasks' specs, in order."""
        return parse_tasks(list(self.tasks))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as recorded in ``meta/procvlm/generate.json``."""
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> CorpusSettings:
        """Settings read back from a record; ``where`` names the record in errors."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ProcvlmError(f"{where} records settings {unknown} this procvlm does not know: "
                               "update procvlm or pass a new --out")
        # Recorded before these settings existed: scripted pacing, antialiased rendering.
        data = {"pacing": "scripted", "antialias": True, **data}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def differences(self, other: CorpusSettings) -> list[str]:
        """``--flag recorded -> given`` for every setting that differs from ``other``'s."""
        out = []
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine != theirs:
                out.append(f"{f.metadata['flag']} {_show(mine)} (given: {_show(theirs)})")
        return out


def _show(value: Any) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


@dataclass(frozen=True)
class GenerateResult:
    """What one ``generate`` call did.

    Attributes:
        root: the dataset folder.
        written: indices of the episodes added by this call.
        redone: indices of the episodes generated again and replaced by this call.
        total: episodes the dataset holds now.
    """

    root: Path
    written: list[int]
    redone: list[int]
    total: int


def episode_plans(episodes: int, tasks: Sequence[TaskSpec], failure_rate: float,
                  seed: int) -> list[tuple[TaskSpec, int, str | None]]:
    """Task, seed and failure mode of each episode, a pure function of the arguments.

    Tasks go round-robin; episode i's seed is drawn from (seed, i); an episode fails with
    probability ``failure_rate`` (drawn from (seed, i) too), and the failing episodes cycle
    through ``FAILURE_MODES`` in order (over the modes that apply to the episode's task).
    """
    plans, failing = [], 0
    for i in range(episodes):
        rng = np.random.default_rng([int(seed), int(i)])
        ep_seed = int(rng.integers(0, 2**31 - 1))
        spec, failure = tasks[i % len(tasks)], None
        if rng.random() < failure_rate:
            modes = task_failure_modes(spec)
            failure = modes[failing % len(modes)]
            failing += 1
        plans.append((spec, ep_seed, failure))
    return plans


def _read_json(path: Path, root: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ProcvlmError(f"{path} is not readable JSON ({type(err).__name__}): {root} is "
                           "damaged, delete it or pass another --out") from err
    if not isinstance(data, dict):
        raise ProcvlmError(f"{path} holds no JSON object: {root} is damaged, delete it or pass "
                           "another --out")
    return data


def read_settings(root: str | Path) -> tuple[CorpusSettings, int] | None:
    """The settings and episode target recorded in a generated dataset, None when absent.

    Raises:
        ProcvlmError: the record is unreadable or names unknown settings.
    """
    path = Path(root) / SETTINGS_PATH
    if not path.is_file():
        return None
    data = _read_json(path, Path(root))
    settings = data.get("settings")
    if not isinstance(settings, dict) or not isinstance(data.get("episodes"), int):
        raise ProcvlmError(f"{path} lacks 'settings' or 'episodes': {root} is damaged, delete "
                           "it or pass another --out")
    return CorpusSettings.from_dict(settings, str(path)), int(data["episodes"])


def check_folder(root: str | Path, settings: CorpusSettings) -> tuple[int, int | None]:
    """Check that ``root`` may receive a corpus made with ``settings``; write nothing.

    Returns:
        (episodes the folder holds, episode target it records or None).

    Raises:
        ProcvlmError: ``root`` is a file, is a damaged or foreign dataset, holds another
            folder's files, or holds a corpus made with other settings (naming them).
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ProcvlmError(f"--out {root} is a file: pass a folder (new, empty, or a dataset "
                           "to resume)")
    info_path = root / "meta" / "info.json"
    if not info_path.exists():
        if root.exists() and any(root.iterdir()):
            raise ProcvlmError(f"--out {root} exists, is not empty and holds no dataset (no "
                               "meta/info.json): pass a new or empty folder")
        return 0, None
    info = _read_json(info_path, root)
    held = int(info.get("total_episodes", 0) or 0)
    recorded = read_settings(root)
    if recorded is None:
        if held:
            raise ProcvlmError(f"--out {root} holds a dataset that procvlm generate did not "
                               f"write (no {SETTINGS_PATH}): pass a new folder")
        return 0, None
    old, target = recorded
    diff = old.differences(settings)
    if diff:
        raise ProcvlmError(f"--out {root} was generated with {'; '.join(diff)}: pass the same "
                           "settings to resume it, or a new --out")
    return held, target


def _rollout(job: tuple[CorpusSettings, tuple[TaskSpec, int, str | None], int]) -> Episode:
    settings, (spec, ep_seed, failure), index = job
    return rollout(spec, ep_seed, failure, width=settings.width, height=settings.height,
                   cameras=settings.cameras, max_steps=settings.max_steps, episode_index=index,
                   randomize=settings.randomize, pacing=settings.pacing,
                   antialias=settings.antialias)


def _episodes(jobs: list[tuple[CorpusSettings, tuple[TaskSpec, int, str | None], int]],
              workers: int) -> Iterator[Episode]:
    """The episodes of ``jobs`` in order, run in ``workers`` spawned processes (each with its
    own environments and GL context) when more than one."""
    if workers == 1 or len(jobs) <= 1:
        yield from map(_rollout, jobs)
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(_rollout, jobs)


def generate_corpus(out: str | Path, settings: CorpusSettings, episodes: int | None = None, *,
                    redo: Sequence[int] = (), progress: bool = True,
                    workers: int = 1) -> GenerateResult:
    """Write a MetaWorld corpus into ``out``, resuming a partial one made with ``settings``.

    Args:
        out: dataset folder (new, empty, or a corpus made with the same settings).
        settings: what decides the episodes.
        episodes: episodes the finished dataset holds (default: the target recorded in
            ``out``, or 20 for a new dataset). A dataset already holding as many is left alone.
        redo: indices of held episodes to generate again and replace (e.g. a corrupt video);
            the same seed gives the same episode.
        progress: show a tqdm progress bar.
        workers: processes that run episodes in parallel (the episodes and the dataset are the
            same for any number).

    Returns:
        What was written and redone, and how many episodes the dataset holds.

    Raises:
        ProcvlmError: bad counts, episodes to redo that are not held, or a folder that cannot
            take this corpus; all checked before anything is written.
    """
    from procvlm.data.lerobot import LeRobotWriter

    out = Path(out)
    if episodes is not None and episodes < 1:
        raise ProcvlmError(f"--episodes {episodes}: pass at least 1")
    if workers < 1:
        raise ProcvlmError(f"--workers {workers}: pass at least 1")
    held, target = check_folder(out, settings)
    wanted = episodes if episodes is not None else (target or 20)
    bad = sorted(i for i in redo if not 0 <= i < held)
    if bad:
        raise ProcvlmError(f"--redo-episode {bad[0]}: {out} holds episodes 0..{held - 1}, redo "
                           "one of those")
    if wanted <= held and not redo:
        return GenerateResult(root=out, written=[], redone=[], total=held)
    cams = {c: (settings.height, settings.width) for c in settings.cameras}
    writer = LeRobotWriter(out, fps=FPS, cameras=cams, state_dim=len(STATE_NAMES),
                           action_dim=len(ACTION_NAMES), robot_type="sawyer",
                           video=settings.video, state_names=STATE_NAMES,
                           action_names=ACTION_NAMES, true_progress=True)
    write_json(out / SETTINGS_PATH, {"settings": settings.to_dict(),
                                     "episodes": max(wanted, target or 0, held)})
    plans = episode_plans(max(wanted, held), settings.specs, settings.failure_rate, settings.seed)
    redo = sorted(set(redo))
    todo = list(range(writer.num_episodes, wanted))
    jobs = [(settings, plans[i], i) for i in redo + todo]
    for i, ep in zip(redo + todo, tqdm(_episodes(jobs, workers), total=len(jobs),
                                       desc="generate", unit="ep", disable=not progress)):
        if i < writer.num_episodes:
            writer.replace_episode(i, ep)
        else:
            writer.add_episode(ep)
    writer.finalize()
    return GenerateResult(root=out, written=todo, redone=redo, total=writer.num_episodes)


def generate(out: str | Path, tasks: str | Sequence[str], episodes: int, failure_rate: float,
             seed: int, width: int = 128, height: int = 128, *,
             cameras: Sequence[str] = ("corner", "gripper"), max_steps: int = 400,
             video: bool = True, progress: bool = True, randomize: str = "none",
             workers: int = 1, pacing: str = "human", antialias: bool = False) -> Path:
    """Write ``episodes`` MetaWorld episodes to a LeRobot v3 dataset at ``out``.

    A convenience over :func:`generate_corpus` with the settings as arguments. Running it again
    on the same folder with the same settings resumes: episodes already written are not redone.

    Args:
        out: dataset folder.
        tasks: task names (list or comma-separated), used round-robin.
        episodes: number of episodes in the finished dataset.
        failure_rate: probability that an episode gets a failure mode injected.
        seed: seed of the whole corpus.
        width: image width.
        height: image height.
        cameras: short camera names, the first is the main one.
        max_steps: most frames per episode.
        video: store mp4 videos (True) or PNG images.
        progress: show a tqdm progress bar.
        randomize: rendering conditions, a name of ``RANDOMIZE_CHOICES`` (``CorpusSettings``).
        workers: processes that run episodes in parallel.
        pacing: ``human`` or ``scripted`` (see ``CorpusSettings.pacing``).
        antialias: render with 4x multisampling (see ``CorpusSettings.antialias``).

    Returns:
        The dataset folder.

    Raises:
        ProcvlmError: bad task names, counts, rates, sizes or cameras, or a folder holding
            something else; nothing is written then.
    """
    names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
    settings = CorpusSettings(tasks=tuple(names), failure_rate=failure_rate, seed=seed,
                              width=width, height=height, cameras=tuple(cameras),
                              max_steps=max_steps, video=video, randomize=randomize,
                              pacing=pacing, antialias=antialias)
    return generate_corpus(out, settings, episodes, progress=progress, workers=workers).root
