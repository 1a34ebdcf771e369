import pytest

from procvlm.models.vlm.parsing import parse_answer, parse_answers, stage_of
from procvlm.models.vlm.processor_vlm import progress_answer

PLAN = ["Grasp the puck", "Place the puck onto the goal"]


def test_template_answer_round_trips():
    p = parse_answer(progress_answer(PLAN[1:], 0.4237))
    assert p.flag == "ok" and p.progress == pytest.approx(0.4237, abs=1e-4)
    assert p.remaining == PLAN[1:]


def test_finished_answer_has_no_remaining():
    p = parse_answer(progress_answer([], 1.0))
    assert p.flag == "ok" and p.remaining == [] and p.progress == 1.0


@pytest.mark.parametrize("text,progress,flag", [
    ("1. Grasp the puck\n<progress>0.42</progress>", 0.42, "fraction"),
    ("1. Grasp the puck\n<progress>42</progress>", 0.42, "no_percent"),
    ("1. Grasp the puck\n<progress>150%</progress>", 1.0, "out_of_range"),
    ("1. Grasp the puck\n<progress>-5%</progress>", 0.0, "out_of_range"),
    ("1. Grasp the puck\n<progress>lots</progress>", 0.3, "garbage"),
    ("1. Grasp the puck\nprogress is 42%", 0.3, "missing_tag"),
    ("<progress>42.00%</progress>", 0.42, "no_actions"),
    ("\x00\x01", 0.3, "missing_tag+no_actions"),
])
def test_bad_answers_are_flagged_not_fatal(text, progress, flag):
    p = parse_answer(text, previous=0.3)
    assert p.progress == pytest.approx(progress) and p.flag == flag


def test_previous_estimate_is_carried_across_missing_tags():
    texts = [progress_answer(PLAN, 0.2), "garbage", progress_answer(PLAN[1:], 0.7), "<progress>"]
    got = parse_answers(texts)
    assert [round(p.progress, 4) for p in got] == [0.2, 0.2, 0.7, 0.7]
    assert got[1].flag.startswith("missing_tag") and got[3].flag.startswith("garbage")


def test_non_string_is_garbage_in():
    assert parse_answer(None).flag == "missing_tag+no_actions"  # type: ignore[arg-type]


def test_stage_from_remaining():
    assert stage_of(PLAN, PLAN) == 0
    assert stage_of(PLAN[1:], PLAN) == 1
    assert stage_of([], PLAN) == 2
    assert stage_of(["Unknown step"], PLAN) == 1
    assert stage_of(PLAN, None) == -1
