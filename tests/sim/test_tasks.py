"""The task table: enough tasks, plans in the atomic-action vocabulary, helpful errors."""

import pytest

from procvlm.data import vocab
from procvlm.errors import ProcvlmError
from procvlm.sim.tasks import TASKS, TaskSpec, get_task, parse_tasks, resolve_task


def test_many_tasks_with_plans_in_the_vocabulary():
    assert len(TASKS) >= 25
    assert {s.kind for s in TASKS.values()} == {"pick", "touch"}
    for spec in TASKS.values():
        assert all(vocab.verb_of(a) in vocab.VERBS for a in spec.plan)
        if spec.kind == "pick":
            assert len(spec.plan) >= 3
            assert spec.plan[:3] == [vocab.move_to(spec.obj), vocab.grasp(spec.obj),
                                     vocab.lift(spec.obj)]
        else:
            assert spec.plan == [vocab.move_to(spec.obj), spec.final]


def test_pick_place_plan():
    assert TASKS["pick-place"].plan == ["Move to the puck", "Grasp the puck", "Lift the puck",
                                        "Place the puck onto the goal"]
    assert TASKS["disassemble"].plan[-1] == "Lift the nut"
    assert TASKS["drawer-open"].plan == ["Move to the drawer handle", "Open the drawer"]


def test_get_task_accepts_v3_suffix_and_lists_known_tasks_on_error():
    assert get_task("assembly-v3") is TASKS["assembly"]
    with pytest.raises(ProcvlmError, match=r"unknown MetaWorld task 'pick-plaice'.*pick-place"):
        get_task("pick-plaice")


def test_parse_tasks():
    assert [s.name for s in parse_tasks("pick-place, hammer")] == ["pick-place", "hammer"]
    assert [s.name for s in parse_tasks(["basketball"])] == ["basketball"]
    with pytest.raises(ProcvlmError, match="no MetaWorld task"):
        parse_tasks(" , ")


def test_spec_validates():
    with pytest.raises(ValueError, match="not a v3 env"):
        TaskSpec("x", "x-v2", "do x", "x", "obj", None, "P")
    with pytest.raises(ValueError, match="must be positive"):
        TaskSpec("x", "x-v3", "do x", "x", "obj", None, "P", reach=0.0)
    with pytest.raises(ValueError, match="kind 'slide'"):
        TaskSpec("x", "x-v3", "do x", "x", "obj", None, "P", kind="slide")
    with pytest.raises(ValueError, match="needs a final action"):
        TaskSpec("x", "x-v3", "do x", "x", None, None, "P", kind="touch")
    with pytest.raises(ValueError, match="needs obj_body"):
        TaskSpec("x", "x-v3", "do x", "x", None, None, "P")


def test_tasks_are_named_by_short_name_or_instruction():
    assembly = TASKS["assembly"].instruction
    assert get_task(assembly) is TASKS["assembly"]
    assert get_task(" pick up the NUT and place it onto the peg. ") is TASKS["assembly"]
    dataset = [assembly, "Open the drawer"]
    for name in ("assembly", "assembly-v3", assembly, assembly.lower()):
        assert resolve_task(name, dataset) == assembly
    assert resolve_task("open the drawer", dataset) == "Open the drawer"
    with pytest.raises(ProcvlmError, match=r"'hammer' is not in the dataset.*assembly \('Pick"):
        resolve_task("hammer", dataset)
