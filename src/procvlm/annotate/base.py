"""The annotator interface: an episode in, its timeline of atomic actions and its plan out."""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass

from procvlm.data.episode import Episode, Subtask
from procvlm.errors import ProcvlmError


@dataclass
class Annotation:
    """Sub-steps of one episode.

    Attributes:
        subtasks: the timeline (segments in frame order, may repeat a step after a regression).
        plan: the ordered atomic actions that complete the task.
    """

    subtasks: list[Subtask]
    plan: list[str]


class Annotator(abc.ABC):
    """Segments an episode into atomic actions."""

    name: str = ""

    @abc.abstractmethod
    def annotate(self, episode: Episode) -> Annotation:
        """Return the episode's sub-steps and plan."""

    def annotate_many(self, episodes: list[Episode]) -> list[Annotation]:
        """Annotate several episodes; annotators that can overlap requests override this."""
        return [self.annotate(e) for e in episodes]


class OracleAnnotator(Annotator):
    """The simulator's own sub-steps, stored in the dataset by ``procvlm generate``."""

    name = "oracle"

    def annotate(self, episode: Episode) -> Annotation:
        if not episode.subtasks or not episode.plan:
            raise ProcvlmError(
                f"episode {episode.episode_index} has no oracle sub-steps: the oracle annotator "
                "needs a dataset written by `procvlm generate`; use --annotator dataset, "
                "gripper or vlm instead")
        return Annotation(subtasks=list(episode.subtasks), plan=list(episode.plan))


ANNOTATORS = {
    "oracle": "procvlm.annotate.base:OracleAnnotator",
    "dataset": "procvlm.annotate.dataset:DatasetAnnotator",
    "gripper": "procvlm.annotate.gripper:GripperAnnotator",
    "vlm": "procvlm.annotate.vlm:VLMAnnotator",
}


def get_annotator(name: str, **kwargs) -> Annotator:
    """Build the annotator called ``name`` (oracle, dataset, gripper, vlm)."""
    if name not in ANNOTATORS:
        raise ProcvlmError(f"unknown annotator {name!r}: choose one of {', '.join(ANNOTATORS)}")
    module, cls = ANNOTATORS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)
