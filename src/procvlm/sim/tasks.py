"""The MetaWorld v3 tasks procvlm generates, each with its fixed plan of atomic actions.

Two kinds of task, each for one object:

- ``pick``: move the gripper to the object, grasp it, lift it, then (for most tasks) a final
  action such as placing or inserting it;
- ``touch``: move the gripper to the object (a button, handle, drawer, window, plate ...), then
  act on it without grasping (press, pull, open, close, push).

The oracle in :mod:`procvlm.sim.oracle` decides from the simulator state which of these steps is
under way.
"""

from __future__ import annotations

from dataclasses import dataclass

from procvlm.data import vocab
from procvlm.errors import ProcvlmError


KINDS = ("pick", "touch")
"""Task kinds: grasp-and-lift tasks and tasks done by pushing or pulling without a grasp."""

GOALS: tuple[str, ...] = ("object", "handle", "peg-head", "nut-on-peg", "nut-off-peg", "nail")
"""The goal measures ``TaskSpec.goal`` can name."""


@dataclass(frozen=True)
class TaskSpec:
    """One MetaWorld task and how the oracle reads its state.

    Attributes:
        name: short name used on the command line ("pick-place").
        env_name: MetaWorld v3 environment name ("pick-place-v3").
        instruction: the natural-language task.
        obj: the manipulated object ("puck").
        obj_body: MuJoCo body of that object; contacts with its subtree count as grasping
            (None for ``touch`` tasks, which never grasp).
        final: the last atomic action (after move/grasp/lift, or after move for ``touch``
            tasks), or None when lifting the object is the goal itself (then "Lift" completes
            on MetaWorld's success).
        policy: class name of the scripted expert in ``metaworld.policies``.
        reach: distance (m) between the gripper's centre and the object point under which
            "Move to" counts as achieved.
        lift: height (m) above the object's start under which the object is not yet lifted.
        kind: ``"pick"`` (move, grasp, lift[, final]) or ``"touch"`` (move, final).
        goal: what MetaWorld's success measures, read by ``SimEnv.goal_gap``: ``"object"``
            (object to goal), ``"handle"`` (the second object, e.g. the thermos, to goal),
            ``"peg-head"`` (the peg's head to the hole), ``"nut-on-peg"`` (nut centre over the
            peg top, then down onto it), ``"nut-off-peg"`` (nut height up to the goal height),
            ``"nail"`` (hammer head to the nail, then the nail's depth).
        goal_tol: the gap (m) under which MetaWorld counts success (approximately). Touch tasks
            use ``"object"`` (the pressed, pulled or turned point to its target) with the
            point's distance to its target when MetaWorld's success comes on (measured on the
            scripted experts).
    """

    name: str
    env_name: str
    instruction: str
    obj: str
    obj_body: str | None
    final: str | None
    policy: str
    reach: float = 0.03
    lift: float = 0.01
    kind: str = "pick"
    goal: str = "object"
    goal_tol: float = 0.07

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"TaskSpec {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "touch" and not self.final:
            raise ValueError(f"TaskSpec {self.name!r}: a touch task needs a final action")
        if self.kind == "pick" and not self.obj_body:
            raise ValueError(f"TaskSpec {self.name!r}: a pick task needs obj_body (grasping)")
        if not self.env_name.endswith("-v3"):
            raise ValueError(f"TaskSpec {self.name!r}: env_name {self.env_name!r} is not a v3 env")
        if self.reach <= 0 or self.lift <= 0:
            raise ValueError(f"TaskSpec {self.name!r}: reach={self.reach} and lift={self.lift} "
                             "must be positive")
        if self.goal not in GOALS or self.goal_tol < 0:
            raise ValueError(f"TaskSpec {self.name!r}: goal={self.goal!r} (choose from "
                             f"{', '.join(GOALS)}) and goal_tol={self.goal_tol} (>= 0)")

    @property
    def plan(self) -> list[str]:
        """The ordered atomic actions that complete the task."""
        if self.kind == "touch":
            return [vocab.move_to(self.obj), str(self.final)]
        steps = [vocab.move_to(self.obj), vocab.grasp(self.obj), vocab.lift(self.obj)]
        return steps + ([self.final] if self.final else [])


def _spec(name: str, instruction: str, obj: str, obj_body: str, final: str | None,
          policy: str, **kw: float | str) -> TaskSpec:
    return TaskSpec(name=name, env_name=f"{name}-v3", instruction=instruction, obj=obj,
                    obj_body=obj_body, final=final, policy=policy, **kw)


def _touch(name: str, instruction: str, obj: str, final: str, reach: float,
           tol: float) -> TaskSpec:
    """A task done without grasping; ``reach`` is how close (m) the gripper's centre gets to the
    object point MetaWorld observes once it is in contact (a button's face, a handle), ``tol``
    the distance (m) from that point to its target at which MetaWorld's success comes on (its
    own success test measures other points for some tasks, e.g. a window's edge)."""
    policy = "Sawyer" + "".join(w.capitalize() for w in name.split("-")) + "V3Policy"
    return TaskSpec(name=name, env_name=f"{name}-v3", instruction=instruction, obj=obj,
                    obj_body=None, final=final, policy=policy, reach=reach, kind="touch",
                    goal_tol=tol)


TASKS: dict[str, TaskSpec] = {s.name: s for s in [
    _spec("pick-place", "Pick up the puck and place it onto the goal", "puck", "obj",
          vocab.place("puck", "goal"), "SawyerPickPlaceV3Policy"),
    _spec("assembly", "Pick up the nut and place it onto the peg", "nut", "RoundNut",
          vocab.place("nut", "peg"), "SawyerAssemblyV3Policy", goal="nut-on-peg", goal_tol=0.02),
    _spec("disassemble", "Pick up the nut and lift it off the peg", "nut", "RoundNut",
          None, "SawyerDisassembleV3Policy", goal="nut-off-peg", goal_tol=0.0),
    _spec("hammer", "Pick up the hammer and hammer the nail in", "hammer", "hammer",
          vocab.push("nail"), "SawyerHammerV3Policy", reach=0.045, goal="nail",
          goal_tol=0.0),
    _spec("shelf-place", "Pick up the block and place it onto the shelf", "block", "obj",
          vocab.place("block", "shelf"), "SawyerShelfPlaceV3Policy"),
    _spec("bin-picking", "Pick up the cube and place it into the target bin", "cube", "obj",
          vocab.place("cube", "target bin"), "SawyerBinPickingV3Policy", goal_tol=0.05),
    _spec("basketball", "Pick up the ball and dunk it into the hoop", "ball", "bsktball",
          vocab.insert("ball", "hoop"), "SawyerBasketballV3Policy", goal_tol=0.08),
    _spec("peg-insert-side", "Pick up the peg and insert it sideways into the hole", "peg",
          "peg", vocab.insert("peg", "hole"), "SawyerPegInsertionSideV3Policy", reach=0.035,
          goal="peg-head"),
    _spec("stick-pull", "Grasp the stick and pull the thermos with it", "stick", "stick",
          vocab.pull("thermos"), "SawyerStickPullV3Policy", goal="handle", goal_tol=0.12),
    _spec("pick-place-wall", "Pick up the puck and place it onto the goal behind the wall",
          "puck", "obj", vocab.place("puck", "goal"), "SawyerPickPlaceWallV3Policy"),
    _spec("pick-out-of-hole", "Pick the peg up out of the hole", "peg", "obj", None,
          "SawyerPickOutOfHoleV3Policy", goal_tol=0.02),
    _spec("box-close", "Pick up the lid and place it onto the box", "lid", "top_link",
          vocab.place("lid", "box"), "SawyerBoxCloseV3Policy"),
    _touch("button-press-topdown", "Press the button down from the top", "button",
           vocab.press("button"), reach=0.03, tol=0.025),
    _touch("button-press", "Press the button in from the front", "button",
           vocab.press("button"), reach=0.13, tol=0.02),
    _touch("coffee-button", "Press the button of the coffee machine", "coffee machine button",
           vocab.press("coffee machine button"), reach=0.14, tol=0.02),
    _touch("handle-press", "Press the handle down", "handle", vocab.press("handle"),
           reach=0.03, tol=0.02),
    _touch("handle-pull", "Pull the handle up", "handle", vocab.pull("handle"), reach=0.055,
           tol=0.07),
    _touch("drawer-open", "Open the drawer", "drawer handle", vocab.open_("drawer"),
           reach=0.03, tol=0.03),
    _touch("drawer-close", "Close the drawer", "drawer", vocab.close("drawer"), reach=0.085,
           tol=0.065),
    _touch("door-open", "Open the door", "door handle", vocab.open_("door"), reach=0.055,
           tol=0.085),
    _touch("window-open", "Slide the window open", "window handle", vocab.open_("window"),
           reach=0.065, tol=0.105),
    _touch("window-close", "Slide the window closed", "window handle", vocab.close("window"),
           reach=0.06, tol=0.105),
    _touch("faucet-open", "Turn the faucet on", "faucet handle", vocab.open_("faucet"),
           reach=0.05, tol=0.046),
    _touch("faucet-close", "Turn the faucet off", "faucet handle", vocab.close("faucet"),
           reach=0.04, tol=0.062),
    _touch("dial-turn", "Turn the dial", "dial", vocab.rotate("dial"), reach=0.085, tol=0.068),
    _touch("plate-slide", "Slide the plate into the goal", "plate", vocab.push("plate", "goal"),
           reach=0.055, tol=0.068),
    # Added later; reach and tol measured on the scripted experts over seeds 0-5
    # (closest approach before success, and the goal gap when success comes on).
    _touch("button-press-topdown-wall", "Press the button down from the top behind the wall",
           "button", vocab.press("button"), reach=0.06, tol=0.025),
    _touch("button-press-wall", "Press the button in from the front behind the wall",
           "button", vocab.press("button"), reach=0.04, tol=0.032),
    _touch("coffee-pull", "Pull the mug out of the coffee machine", "mug", vocab.pull("mug"),
           reach=0.03, tol=0.07),
    _touch("coffee-push", "Push the mug under the coffee machine", "mug",
           vocab.push("mug", "coffee machine"), reach=0.035, tol=0.072),
    _touch("door-lock", "Turn the lock of the door", "door lock", vocab.rotate("door lock"),
           reach=0.04, tol=0.05),
    _touch("hand-insert", "Push the block into the hole", "block", vocab.push("block", "hole"),
           reach=0.02, tol=0.052),
    _touch("handle-pull-side", "Pull the handle up from the side", "handle",
           vocab.pull("handle"), reach=0.03, tol=0.085),
    _touch("peg-unplug-side", "Pull the peg out of the side hole", "peg", vocab.pull("peg"),
           reach=0.03, tol=0.075),
    _touch("plate-slide-back", "Slide the plate back into the goal", "plate",
           vocab.push("plate", "goal"), reach=0.075, tol=0.075),
    _touch("plate-slide-back-side", "Slide the plate back sideways into the goal", "plate",
           vocab.push("plate", "goal"), reach=0.035, tol=0.075),
    _touch("plate-slide-side", "Slide the plate sideways into the goal", "plate",
           vocab.push("plate", "goal"), reach=0.075, tol=0.072),
    _touch("push", "Push the puck to the goal", "puck", vocab.push("puck", "goal"),
           reach=0.02, tol=0.055),
    _touch("push-wall", "Push the puck to the goal behind the wall", "puck",
           vocab.push("puck", "goal"), reach=0.02, tol=0.075),
    _touch("sweep", "Sweep the cube off the table", "cube", vocab.push("cube", "table edge"),
           reach=0.02, tol=0.052),
    _touch("sweep-into", "Sweep the cube into the hole", "cube", vocab.push("cube", "hole"),
           reach=0.025, tol=0.075),
]}


def _lookup(name: str) -> TaskSpec | None:
    """The task whose short name (with or without ``-v3``) or instruction is ``name``."""
    key = name.strip().removesuffix("-v3")
    if key in TASKS:
        return TASKS[key]
    folded = " ".join(name.split()).rstrip(".").casefold()
    return next((s for s in TASKS.values() if s.instruction.casefold() == folded), None)


def get_task(name: str) -> TaskSpec:
    """The task called ``name``: its short name (with or without ``-v3``) or its instruction.

    Raises:
        ProcvlmError: the task is unknown; the message lists the known ones.
    """
    spec = _lookup(name)
    if spec is None:
        raise ProcvlmError(f"unknown MetaWorld task {name!r}: choose from {', '.join(TASKS)}")
    return spec


def resolve_task(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """The entry of ``choices`` (a dataset's task instructions) that ``name`` names.

    ``name`` may be the instruction itself or, for MetaWorld tasks, the short name used on the
    command line ("assembly" for "Pick up the nut and place it onto the peg").

    Raises:
        ProcvlmError: no entry matches; the message lists the choices with their short names.
    """
    if name in choices:
        return name
    folded = " ".join(name.split()).rstrip(".").casefold()
    spec = _lookup(name)
    for choice in choices:
        if choice.casefold() == folded or (spec is not None and choice == spec.instruction):
            return choice
    shown = [next((f"{s.name} ({c!r})" for s in TASKS.values() if s.instruction == c), repr(c))
             for c in choices]
    raise ProcvlmError(f"task {name!r} is not in the dataset: choose from "
                       f"{', '.join(shown)}")


def parse_tasks(text: str | list[str] | tuple[str, ...]) -> list[TaskSpec]:
    """Tasks from a comma-separated string ("pick-place,assembly") or a list of names.

    Raises:
        ProcvlmError: empty list or unknown task name.
    """
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ProcvlmError(f"no MetaWorld task given: pass e.g. --tasks {','.join(list(TASKS)[:2])}")
    return [get_task(n) for n in names]
