"""ProcVQA sample builders: exact templates, finished cases, segmentation JSON, windows."""

import json

import numpy as np
import pytest

from procvlm.errors import ProcvlmError
from procvlm.vqa.samples import (IMAGE_TOKEN, WindowConfig, planning_sample, progress_sample,
                                 sample_window, segmentation_frames, segmentation_sample,
                                 segments_of, structured_messages)
from procvlm.models.vlm.processor_vlm import NO_ACTION, progress_answer, progress_prompt

TASK = "put the puck on the goal"
PLAN = ["Grasp the puck", "Place the puck onto the goal"]


def test_progress_answer_is_exactly_the_template():
    s = progress_sample(TASK, [3, 5, 7], PLAN[1:], 0.4567)
    user, assistant = s["messages"]
    assert user == {"role": "user", "content": IMAGE_TOKEN * 3 + "\n" + progress_prompt(TASK)}
    assert assistant["content"] == progress_answer(PLAN[1:], 0.4567)
    assert assistant["content"] == ("The following actions are required:\n1. Place the puck "
                                    "onto the goal\nTherefore, the estimated progress is "
                                    "<progress>45.67%</progress>.")
    assert s["frames"] == [3, 5, 7] and s["family"] == "progress"


def test_progress_finished_case():
    s = progress_sample(TASK, [9], [], 1.0)
    assert s["messages"][1]["content"] == ("The task has been completed. No action required.\n"
                                           "Therefore, the estimated progress is "
                                           "<progress>100.00%</progress>.")


def test_planning_next_and_remaining():
    nxt = planning_sample(TASK, [1, 2], PLAN, "next")
    assert nxt["messages"][1]["content"] == "Grasp the puck"
    assert nxt["messages"][0]["content"].startswith(IMAGE_TOKEN * 2 + "\n")
    rem = planning_sample(TASK, [2], PLAN, "remaining")
    assert rem["messages"][1]["content"] == "1. Grasp the puck\n2. Place the puck onto the goal"


@pytest.mark.parametrize("variant", ["next", "remaining"])
def test_planning_finished_says_no_action(variant):
    s = planning_sample(TASK, [4], [], variant)
    assert s["messages"][1]["content"] == NO_ACTION == "No action required"


def test_planning_bad_variant():
    with pytest.raises(ProcvlmError, match="planning variant"):
        planning_sample(TASK, [0], PLAN, "later")


def test_segments_of_runs_and_done_frames():
    labels = ["Grasp the puck"] * 4 + ["Place the puck onto the goal"] * 4 + ["done"] * 2
    assert segments_of([0, 2, 3, 5, 7, 9], labels) == [
        {"action": "Grasp the puck", "start_frame": 0, "end_frame": 3},
        {"action": "Place the puck onto the goal", "start_frame": 5, "end_frame": 7},
    ]
    # an action that returns after an empty frame is a new segment
    assert [s["start_frame"] for s in segments_of([0, 1, 2], ["A", "", "A"])] == [0, 2]


def test_segmentation_sample_tags_frames_and_parses():
    labels = ["Grasp the puck"] * 5 + ["Place the puck onto the goal"] * 5
    s = segmentation_sample(TASK, [0, 4, 6, 9], labels)
    user = s["messages"][0]["content"]
    assert user.startswith(f"Frame 0: {IMAGE_TOKEN}\nFrame 4: {IMAGE_TOKEN}\nFrame 6: ")
    assert user.count(IMAGE_TOKEN) == 4 and TASK in user and s["variant"] == "with_task"
    answer = json.loads(s["messages"][1]["content"])
    assert answer == [{"action": "Grasp the puck", "start_frame": 0, "end_frame": 4},
                      {"action": "Place the puck onto the goal", "start_frame": 6,
                       "end_frame": 9}]
    no_task = segmentation_sample(None, [0, 9], labels)
    assert TASK not in no_task["messages"][0]["content"] and no_task["variant"] == "no_task"


def test_sample_window_single_and_context():
    rng = np.random.default_rng(0)
    always_single = WindowConfig(single_frame_prob=1.0)
    assert sample_window(rng, 50, always_single) == [50]
    never = WindowConfig(single_frame_prob=0.0, min_context=4, max_context=16, max_stride=3)
    for t in [0, 1, 3, 10, 100]:
        w = sample_window(rng, t, never)
        assert w[-1] == t and w[0] >= 0 and all(np.diff(w) > 0)
        if t >= 4:
            assert 5 <= len(w) <= 17
        strides = set(np.diff(w).tolist())
        assert len(strides) <= 1 and (not strides or max(strides) <= 3)


def test_window_config_validates():
    with pytest.raises(ProcvlmError, match="single_frame_prob"):
        WindowConfig(single_frame_prob=1.5)
    with pytest.raises(ProcvlmError, match="min_context"):
        WindowConfig(min_context=8, max_context=4)


def test_segmentation_frames_end_at_t():
    rng = np.random.default_rng(1)
    for t in [0, 5, 40]:
        f = segmentation_frames(rng, t)
        assert f[-1] == t and f == sorted(set(f)) and len(f) <= 12


def test_structured_messages_interleaves_images():
    labels = ["A"] * 10
    s = segmentation_sample(None, [0, 5], labels)
    s["images"] = ["images/a.jpg", "images/b.jpg"]
    user = structured_messages(s)[0]["content"]
    assert [c["type"] for c in user] == ["text", "image", "text", "image", "text"]
    assert user[1]["image"] == "images/a.jpg" and user[2]["text"] == "Frame 5: "
    s["images"] = ["images/a.jpg"]
    with pytest.raises(ProcvlmError, match="placeholders"):
        structured_messages(s)
