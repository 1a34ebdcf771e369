"""The ``ProgressModel`` interface every progress model implements, and its one result type."""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from procvlm.data.episode import Episode, Frames
from procvlm.errors import ProcvlmError


@dataclass
class ProgressPrediction:
    """What a progress model says about every frame of an episode.

    Attributes:
        progress: (T,) float in [0, 1].
        stage: (T,) int, index into the plan of the current step; ``len(plan)`` means done,
            -1 when the model has no plan (e.g. a VLM without one).
        remaining: T lists of the atomic actions still to do (decided before ``progress``).
        text: the VLM's raw answers, one per frame, when the model writes text.
        flags: per-frame parser flags for text models ("ok", "missing_tag", "fraction", ...).
        done: (T,) probability that the task is finished at each frame, from the model's step
            decision (the "done" stage): its own success detector. None for models that decide
            no step or give no probability.
    """

    progress: np.ndarray
    stage: np.ndarray
    remaining: list[list[str]]
    text: list[str] | None = None
    flags: list[str] | None = None
    extra: dict = field(default_factory=dict)
    done: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.progress = np.asarray(self.progress, dtype=np.float32)
        self.stage = np.asarray(self.stage, dtype=np.int64)
        n = len(self.progress)
        if len(self.stage) != n or len(self.remaining) != n:
            raise ValueError(f"ProgressPrediction lengths disagree: progress {n}, "
                             f"stage {len(self.stage)}, remaining {len(self.remaining)}")
        if self.done is not None:
            self.done = np.asarray(self.done, dtype=np.float32)
            if len(self.done) != n:
                raise ValueError(f"ProgressPrediction lengths disagree: progress {n}, "
                                 f"done {len(self.done)}")

    def __len__(self) -> int:
        return len(self.progress)


class LastScores(NamedTuple):
    """What a model says about the newest frame of each of B clips (``score_last``)."""

    progress: np.ndarray
    """(B,) float32 progress in [0, 1]."""
    done: np.ndarray | None
    """(B,) float32 probability that the task is finished (``ProgressPrediction.done``);
    None when the model gives none."""

    @classmethod
    def collect(cls, progress: Sequence[float], done: Sequence[float | None]) -> LastScores:
        """Per-clip values gathered one by one; ``done`` is None unless every clip has one."""
        values = np.asarray(progress, np.float32)
        if not done or any(d is None for d in done):
            return cls(values, None)
        return cls(values, np.asarray(done, np.float32))


PredictItem = tuple[Episode | Frames, str | None, list[str] | None]
"""One input of ``ProgressModel.predict_batch``: (episode or frames, task, plan)."""


@dataclass(frozen=True)
class TrainedOn:
    """What a model's ``config.json`` records about its training data; None = not recorded
    (older checkpoints). Scoring and evaluation default to these.

    Attributes:
        camera: the camera whose frames it saw.
        image_size: the square side frames are resized to.
        window: frames it sees at each step.
        scheme: the label scheme of its targets.
    """

    camera: str | None = None
    image_size: int | None = None
    window: int | None = None
    scheme: str | None = None


class ProgressModel(abc.ABC):
    """A model that estimates task progress frame by frame, reasoning before estimating:
    it decides the remaining atomic actions first, then the progress conditioned on them."""

    model_type: str = ""

    @property
    def trained_on(self) -> TrainedOn:
        """The camera, image size, window and scheme the model was trained with, as far as its
        checkpoint records them (nothing by default)."""
        return TrainedOn()

    def known_plan(self, task: str) -> list[str] | None:
        """The plan the model learned for ``task`` in training, if any (None by default)."""
        return None

    def predict_batch(self, items: Sequence[PredictItem], *, window: int | None = None,
                      batch_size: int | None = None) -> list[ProgressPrediction]:
        """``predict`` for several inputs at once; models that can share forward passes
        between inputs override it (the default predicts them one by one).

        Args:
            items: (episode or frames, task, plan) triples, as ``predict`` takes them.
            window: frames the model sees at each step (None: the model's own).
            batch_size: windows or prompts per forward pass (None: the model's own).
        """
        kwargs = {} if window is None else {"window": window}
        return [self.predict(source, task, plan, **kwargs) for source, task, plan in items]

    @abc.abstractmethod
    def predict(self, episode: Episode | Frames, task: str | None = None,
                plan: list[str] | None = None, *, window: int = 8) -> ProgressPrediction:
        """Estimate progress at every frame.

        Args:
            episode: an ``Episode`` (its main camera, task and plan are used) or bare frames.
            task: the instruction; required with bare frames.
            plan: the task's atomic actions, when known.
            window: how many recent frames the model sees at each step.
        """

    @abc.abstractmethod
    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` (with ``"type"``) and the weights to ``directory``."""

    @property
    def history(self) -> int:
        """Frames of the past (the newest included) that the estimate at one frame depends on.

        A caller scoring a live stream keeps this many frames (``procvlm.reward.wrapper``).
        """
        cfg = getattr(self, "config", None)
        window, stride = getattr(cfg, "window", 1), getattr(cfg, "stride", 1)
        return (int(window) - 1) * int(stride) + 1

    @property
    def anchored(self) -> bool:
        """Whether the estimate also depends on the episode's first frame; a live stream then
        keeps it and puts it in front of each clip (False unless the model says so)."""
        return False

    def score_last(self, clips: Sequence[tuple[Frames, str, list[str] | None]]
                   ) -> LastScores:
        """Progress and P(done) at the newest frame of each clip.

        Models that can batch windows override this (the compact model scores all clips in one
        forward pass); the default predicts each clip and keeps its last values. ``done`` is
        None unless every clip's prediction has one.

        Args:
            clips: (frames, task, plan) triples; a clip holds at least the last ``history``
                frames of a stream (fewer at its start), and for an ``anchored`` model starts
                with the stream's first frame.
        """
        preds = [self.predict(frames, task, plan) for frames, task, plan in clips]
        return LastScores.collect([p.progress[-1] for p in preds],
                                  [None if p.done is None else p.done[-1] for p in preds])

    def predict_last(self, clips: Sequence[tuple[Frames, str, list[str] | None]]
                     ) -> np.ndarray:
        """Progress at the newest frame of each clip, shape (B,): ``score_last``'s progress."""
        return self.score_last(clips).progress


PRETRAINED_DIR = Path(__file__).parent / "compact" / "pretrained"
"""Checkpoints installed with the package, by name (``procvlm score metaworld DATASET``)."""


def pretrained_names() -> list[str]:
    """Names of the checkpoints shipped with the package."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file())


def resolve_model_dir(path: str | Path) -> Path:
    """The model folder of ``path``: a model folder itself, a run folder holding ``model/``,
    or the name of a checkpoint shipped with the package (see ``pretrained_names``)."""
    path = Path(path)
    if not path.exists() and str(path) in pretrained_names():
        return PRETRAINED_DIR / str(path)
    if not path.exists():
        shipped = ", ".join(pretrained_names()) or "none"
        raise ProcvlmError(f"{path} does not exist: pass a run folder from `procvlm train`, "
                           f"a model folder with config.json, or a shipped model ({shipped})")
    if (path / "config.json").is_file():
        return path
    if (path / "model" / "config.json").is_file():
        return path / "model"
    raise ProcvlmError(f"{path} holds no model (no config.json, no model/config.json): pass a "
                       "run folder from `procvlm train` or a model folder")


def model_type_of(directory: str | Path) -> str:
    """The ``"type"`` recorded in a checkpoint's ``config.json`` ("compact" or "vlm")."""
    cfg = Path(directory) / "config.json"
    if not cfg.is_file():
        raise ProcvlmError(f"{directory} is not a procvlm checkpoint (no config.json): "
                           "pass the folder written by `procvlm train`")
    data = json.loads(cfg.read_text())
    if "type" in data:
        return str(data["type"])
    if "model_type" in data or (Path(directory) / "adapter_config.json").is_file():
        return "vlm"  # a plain transformers / peft folder
    raise ProcvlmError(f"{cfg} has no \"type\": pass a folder written by `procvlm train`")


def load_model(directory: str | Path, **kwargs) -> ProgressModel:
    """Load any procvlm checkpoint, dispatching on its ``config.json`` type."""
    directory = resolve_model_dir(directory)
    kind = model_type_of(directory)
    if kind == "compact":
        from procvlm.models.compact.modeling_compact import CompactProgressModel

        return CompactProgressModel.from_pretrained(directory, **kwargs)
    if kind == "vlm":
        from procvlm.models.vlm.modeling_vlm import VLMProgressModel

        return VLMProgressModel.from_pretrained(directory, **kwargs)
    raise ProcvlmError(f"{directory}/config.json has unknown type {kind!r}: expected compact or vlm")
