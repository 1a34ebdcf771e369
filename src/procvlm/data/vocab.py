"""The paper's atomic-action vocabulary, one function per verb, so that every stage names
sub-steps the same way ("Grasp the puck", "Place the puck onto the goal")."""

from __future__ import annotations

VERBS = ("Grasp", "Place", "Push", "Pull", "Open", "Close", "Press", "Rotate", "Tilt", "Hang",
         "Insert", "Lift", "Move")


def _the(obj: str) -> str:
    return obj if obj.startswith(("the ", "a ", "an ")) else f"the {obj}"


def grasp(obj: str) -> str:
    return f"Grasp {_the(obj)}"


def place(obj: str, loc: str) -> str:
    return f"Place {_the(obj)} onto {_the(loc)}"


def insert(obj: str, loc: str) -> str:
    return f"Insert {_the(obj)} into {_the(loc)}"


def push(obj: str, loc: str | None = None) -> str:
    return f"Push {_the(obj)}" + (f" to {_the(loc)}" if loc else "")


def pull(obj: str, loc: str | None = None) -> str:
    return f"Pull {_the(obj)}" + (f" to {_the(loc)}" if loc else "")


def open_(obj: str) -> str:
    return f"Open {_the(obj)}"


def close(obj: str) -> str:
    return f"Close {_the(obj)}"


def press(obj: str) -> str:
    return f"Press {_the(obj)}"


def rotate(obj: str) -> str:
    return f"Rotate {_the(obj)}"


def tilt(obj: str) -> str:
    return f"Tilt {_the(obj)}"


def hang(obj: str, loc: str) -> str:
    return f"Hang {_the(obj)} onto {_the(loc)}"


def lift(obj: str) -> str:
    return f"Lift {_the(obj)}"


def move_to(obj: str) -> str:
    return f"Move to {_the(obj)}"


def verb_of(action: str) -> str:
    """The leading verb of an atomic action ("Grasp the puck" -> "Grasp")."""
    return action.split(" ", 1)[0]


def is_done(label: str | None) -> bool:
    """True for the paper's finished markers: 'done' / 'not done' in any case, with a period."""
    if label is None:
        return False
    return label.strip().rstrip(".").strip().lower() in ("done", "not done")
