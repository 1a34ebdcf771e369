"""The VLM annotator end to end against a loopback OpenAI-compatible server."""

import json
import socket

import numpy as np
import pytest

from procvlm.annotate import get_annotator
from procvlm.annotate.vlm import (AnswerError, Segment, VLMAnnotator, parse_grounding,
                                  parse_plan, segments_to_subtasks)
from procvlm.data.episode import Subtask
from procvlm.errors import ProcvlmError

PLAN = ["Grasp the puck", "Place the puck onto the goal"]


def _is_grounding(payload) -> bool:
    return any(p.get("type") == "text" and p["text"].startswith("Frame ")
               for p in payload["messages"][0]["content"])


def scripted(malformed_first: bool = True):
    """Plan pass -> PLAN; grounding pass -> one malformed answer, then segments over 8 frames.
    Episodes whose task names "drawer" get a different split, to check answer order."""
    state = {"bad": malformed_first}

    def answer(payload):
        if not _is_grounding(payload):
            return "Sure! ```json\n" + json.dumps(PLAN) + "\n```"
        if state["bad"] and len(payload["messages"]) == 1:
            state["bad"] = False
            return '[{"action": "Grasp the puck", "start_frame": 0}'  # truncated JSON
        task = payload["messages"][0]["content"][-1]["text"]
        cut = 5 if "drawer" in task else 3
        return json.dumps([{"action": PLAN[0], "start_frame": 0, "end_frame": cut},
                           {"action": PLAN[1], "start_frame": cut + 1, "end_frame": 7}])
    return answer


@pytest.fixture
def episode(synth):
    """Factory: a 36-frame episode whose frames all differ."""
    return lambda task="pick up the puck", index=0, success=True: synth.make_episode(
        synth.pick_place_state(36), task=task, index=index, success=success)


def test_two_passes_with_retry_and_cache(episode, chat_server, tmp_path):
    server = chat_server(scripted())
    ann_r = VLMAnnotator(base_url=server.url, num_frames=8, cache_dir=tmp_path, max_retries=2)
    ann = ann_r.annotate(episode())
    # 8 samples of 36 frames: idx = [0, 5, 10, 15, 20, 25, 30, 35]; second segment starts at tag 4
    assert ann.plan == PLAN
    assert ann.subtasks == [Subtask(PLAN[0], 0, 20), Subtask(PLAN[1], 20, 36)]
    assert len(server.requests) == 3  # plan, malformed grounding, retried grounding
    retry = server.requests[2]["messages"]
    assert retry[1]["role"] == "assistant" and "invalid" in retry[2]["content"]
    parts = server.requests[1]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "Frame 0 (t=0.00s)"}
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert parts[3]["image_url"]["url"] and parts[2]["text"] == "Frame 1 (t=0.50s)"
    assert server.requests[0]["model"] == "scripted-vlm"
    # cached: a fresh annotator on the same cache answers without the endpoint
    again = VLMAnnotator(base_url=server.url, num_frames=8, cache_dir=tmp_path).annotate(episode())
    assert again.subtasks == ann.subtasks and len(server.requests) == 3
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_annotate_many_concurrent_in_order(episode, chat_server):
    server = chat_server(scripted(malformed_first=False), delay=0.15)
    episodes = [episode("open the drawer" if i % 2 else "pick up the puck", index=i)
                for i in range(4)]
    annotator = get_annotator("vlm", base_url=server.url, num_frames=8, concurrency=4,
                              plan=PLAN)
    out = annotator.annotate_many(episodes)
    assert [a.subtasks[1].start for a in out] == [20, 30, 20, 30]
    assert server.max_in_flight >= 2
    assert len(server.requests) == 4  # plan given: grounding pass only


def test_failed_episode_marks_last_step(episode, chat_server):
    server = chat_server(scripted(malformed_first=False))
    ann = VLMAnnotator(base_url=server.url, num_frames=8).annotate(episode(success=False))
    assert [s.completed for s in ann.subtasks] == [True, False]


def test_gives_up_after_retries(episode, chat_server):
    server = chat_server(lambda payload: "I cannot tell.")
    with pytest.raises(ProcvlmError, match="no valid answer in 2 attempts"):
        VLMAnnotator(base_url=server.url, model="m", max_retries=1, plan=PLAN,
                     num_frames=4).annotate(episode())
    assert len(server.requests) == 2


def test_unreachable_endpoint(episode):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    with pytest.raises(ProcvlmError, match=r"cannot reach VLM endpoint http://127\.0\.0\.1:\d+/v1"
                                           r".*--annotator-arg base_url"):
        VLMAnnotator(base_url=f"http://127.0.0.1:{port}/v1", model="m",
                     timeout=5).annotate(episode())


def test_parsers_validate():
    assert parse_plan('["1. Grasp the puck.", "Place the puck onto the goal"]') == PLAN
    with pytest.raises(AnswerError, match="non-empty string"):
        parse_plan('["Grasp", 3]')
    ok = '[{"action": "grasp the puck", "start_frame": 0, "end_frame": 2}]'
    assert parse_grounding(ok, PLAN, 4) == [Segment(PLAN[0], 0, 2)]
    bad = {
        "not in the plan": '[{"action": "Fly", "start_frame": 0, "end_frame": 1}]',
        "within frames": '[{"action": "Grasp the puck", "start_frame": 2, "end_frame": 9}]',
        "before the previous": json.dumps([
            {"action": PLAN[0], "start_frame": 2, "end_frame": 3},
            {"action": PLAN[1], "start_frame": 1, "end_frame": 3}]),
        "needs action": '[{"action": "Grasp the puck"}]',
        "no JSON list": "nothing here",
    }
    for reason, text in bad.items():
        with pytest.raises(AnswerError, match=reason):
            parse_grounding(text, PLAN, 4)


def test_segments_to_subtasks_gap_and_shared_frame():
    idx = np.array([0, 10, 20, 30])
    segs = [Segment("a", 0, 0), Segment("b", 2, 2), Segment("c", 2, 3)]
    with pytest.raises(ValueError):  # b and c would share a start: parse_grounding rejects it
        parse_grounding(json.dumps([{"action": s.action, "start_frame": s.start,
                                     "end_frame": s.end} for s in segs]), ["a", "b", "c"], 4)
    segs = [Segment("a", 0, 0), Segment("b", 2, 3, completed=False)]
    assert segments_to_subtasks(segs, idx, 35, None) == [Subtask("a", 0, 10),
                                                         Subtask("b", 20, 35, False)]


def test_bad_settings():
    with pytest.raises(ProcvlmError, match="num_frames"):
        VLMAnnotator(num_frames=1)
