"""The ProcVQA prompt and answer templates, shared by ``procvlm.vqa`` (data) and
``procvlm.models.vlm`` (inference), so training and inference can never drift apart."""

from __future__ import annotations

PROGRESS_PROMPT = (
    'Given the recent observation and the task "{task}", first infer the remaining atomic '
    "actions required to complete the task. Then estimate the current completion percentage "
    "and output it as a float wrapped by <progress> tags."
)
NO_ACTION = "No action required"
FINISHED_REASONING = "The task has been completed. No action required."


def progress_prompt(task: str) -> str:
    """The progress question for ``task``."""
    return PROGRESS_PROMPT.format(task=task)


def progress_tag(progress: float) -> str:
    """``<progress>XX.XX%</progress>`` for a progress in [0, 1]."""
    return f"<progress>{100.0 * min(max(progress, 0.0), 1.0):.2f}%</progress>"


def progress_answer(remaining: list[str], progress: float) -> str:
    """The answer: the remaining actions first (reasoning), then the progress estimate.

    The finished case (no remaining actions) says so instead of listing nothing.
    """
    if remaining:
        steps = "\n".join(f"{i}. {a}" for i, a in enumerate(remaining, 1))
        reasoning = f"The following actions are required:\n{steps}"
    else:
        reasoning = FINISHED_REASONING
    return f"{reasoning}\nTherefore, the estimated progress is {progress_tag(progress)}."
