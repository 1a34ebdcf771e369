"""Annotator options: listed from signatures and config dataclasses, typed from strings."""

import pytest

from procvlm.annotate.base import (annotator_options, get_annotator, parse_annotator_args,
                                   parse_value)
from procvlm.annotate.gripper import GripperConfig
from procvlm.errors import ProcvlmError


def test_options_come_from_the_signature_and_config_fields():
    gripper = annotator_options("gripper")
    assert {"hand_dims", "gripper_dims", "object_dims", "smooth", "goal_fraction"} <= set(gripper)
    assert "config" not in gripper and "dataset" not in annotator_options("dataset")
    assert gripper["smooth"].describe() == "smooth=int (default: 3)"
    assert annotator_options("oracle") == {}


def test_values_typed_by_annotation():
    got = parse_annotator_args("gripper", [
        ("gripper_dims", "3"), ("hand_dims", "0,1,2"), ("object_dims", "4,5,6;7,8,9"),
        ("empty_level", "none"), ("gripper_open_high", "False"), ("min_change", "0.5"),
        ("plan", '["Reach, then grasp", "Lift"]'), ("objects", "cube,bin")])
    assert got == {"gripper_dims": [3], "hand_dims": [0, 1, 2],
                   "object_dims": [[4, 5, 6], [7, 8, 9]], "empty_level": None,
                   "gripper_open_high": False, "min_change": 0.5,
                   "plan": ["Reach, then grasp", "Lift"], "objects": ["cube", "bin"]}
    assert parse_annotator_args("gripper", [("hand_dims", "[0, 1, 2]")]) == {
        "hand_dims": [0, 1, 2]}
    assert parse_annotator_args("vlm", [("timeout", "30"), ("plan", "a; b")]) == {
        "timeout": 30.0, "plan": ["a", "b"]}
    with pytest.raises(ValueError):
        parse_value("1.5", int)
    with pytest.raises(ValueError):
        parse_value("true", float)


def test_config_fields_build_the_config_and_errors_are_one_line():
    ann = get_annotator("gripper", smooth=5, hand_dims=[0, 1, 2])
    assert ann.config == GripperConfig(smooth=5)
    with pytest.raises(ProcvlmError, match="no such option; choose from"):
        parse_annotator_args("gripper", [("gripper_dim", "3")])
    with pytest.raises(ProcvlmError, match="given twice"):
        parse_annotator_args("gripper", [("smooth", "3"), ("smooth", "4")])
    with pytest.raises(ProcvlmError, match="does not take"):
        get_annotator("oracle", threshold=1)


def test_python_values_are_checked_and_coerced_too():
    """``label_dataset(annotator_kwargs={"gripper_dims": 3})`` no longer ends in a TypeError
    deep inside the annotator."""
    ann = get_annotator("gripper", gripper_dims=3, hand_dims=(0, 1, 2), object_dims=[4, 5, 6],
                        smooth=2, min_change=1)
    assert ann._explicit == ([0, 1, 2], [3], [[4, 5, 6]])
    assert ann.config.smooth == 2 and ann.config.min_change == 1.0
    assert get_annotator("gripper", hand_dims="0,1,2")._explicit[0] == [0, 1, 2]
    with pytest.raises(ProcvlmError, match="smooth=2.5: not int"):
        get_annotator("gripper", smooth=2.5)
    with pytest.raises(ProcvlmError, match="gripper_open_high=1: not bool"):
        get_annotator("gripper", gripper_open_high=1)
    with pytest.raises(ProcvlmError, match="objects"):
        get_annotator("gripper", objects=5)
