"""Reward shaping from progress, and scoring a dataset with a model."""

import numpy as np
import pyarrow as pa
import pytest

from procvlm.errors import ProcvlmError
from procvlm.reward.score import (PlanSource, default_output, parse_plan, potential_shaping,
                                  progress_delta, score_episodes, shaped_reward, to_rabc_table)


def test_progress_delta_and_potential_shaping_by_hand():
    p = np.array([0.0, 0.25, 0.25, 1.0])
    np.testing.assert_allclose(progress_delta(p), [0.25, 0.0, 0.75])
    np.testing.assert_allclose(potential_shaping(p, gamma=0.5), [0.125, -0.125, 0.25])
    np.testing.assert_allclose(shaped_reward([1, 0, 0], p, gamma=1.0, scale=2.0),
                               [1.5, 0.0, 1.5])


def test_shaping_telescopes_with_gamma_one():
    p = np.random.default_rng(0).random(20)
    assert potential_shaping(p, 1.0).sum() == pytest.approx(p[-1] - p[0], abs=1e-5)


def test_bad_shaping_inputs():
    with pytest.raises(ProcvlmError, match="gamma=0"):
        potential_shaping([0, 1], gamma=0)
    with pytest.raises(ProcvlmError, match="one reward per transition"):
        shaped_reward([1, 2, 3], [0, 1])


def test_rabc_table_has_lerobot_columns_sorted_by_index():
    t = pa.table({"index": [5, 4], "episode_index": [0, 0], "frame_index": [1, 0],
                  "progress": np.array([0.5, 0.1], np.float32),
                  "remaining": [["a"], ["a", "b"]], "stage": [1, 0]})
    r = to_rabc_table(t)
    assert r.column_names == ["index", "episode_index", "frame_index", "progress_sparse",
                              "progress_dense"]  # RA-BC reads progress_<rabc_head_mode>
    assert r.schema.field("progress_sparse").type == pa.float32()
    assert r.column("progress_dense").to_pylist() == pytest.approx([0.1, 0.5])
    assert r.column("index").to_pylist() == [4, 5]


def test_default_outputs(tmp_path):
    assert default_output(tmp_path, "lerobot-rabc") == tmp_path / "sarm_progress.parquet"
    assert default_output(tmp_path, "procvlm") == tmp_path / "meta/procvlm/scores.parquet"


def test_vlm_scores_many_episodes_in_shared_batches(tmp_path):
    from procvlm.data import open_dataset, write_dataset
    from procvlm.models.vlm.modeling_vlm import VLMProgressModel
    from procvlm.models.vlm.tiny import build_tiny_vlm
    from procvlm.reward.score import _episode_chunks, score_episodes
    from procvlm.training.data import synthetic_episodes

    eps, _ = synthetic_episodes(3, 5, 16, seed=0)
    write_dataset(tmp_path / "ds", eps, video=False)
    ds = open_dataset(tmp_path / "ds")
    assert _episode_chunks(ds, 8) == [[0, 1], [2]]
    model = VLMProgressModel.from_pretrained(build_tiny_vlm(tmp_path / "m", "qwen3_vl"),
                                             max_new_tokens=3, batch_size=2, window=2,
                                             device="cpu")
    calls = []
    batch = model.predict_batch
    model.predict_batch = lambda items, **kw: calls.append(len(items)) or batch(items, **kw)
    table = score_episodes(model, ds, show_progress=False)
    assert table.num_rows == 15 and calls == [3]  # 3 x 5 frames < 8 x batch_size: one call
    one = model.predict(ds.episode(1, cameras=[ds.cameras[0]]))
    rows = table.filter(pa.compute.equal(table["episode_index"], 1))
    np.testing.assert_allclose(rows["progress"].to_numpy(), one.progress)
    np.testing.assert_allclose(rows["done"].to_numpy(), one.done)  # the VLM's P(done)


def test_parse_plan_forms(tmp_path):
    assert parse_plan("Grasp the puck; Place it ;") == ["Grasp the puck", "Place it"]
    assert parse_plan('["a; b", "c"]') == ["a; b", "c"]
    (tmp_path / "plan.txt").write_text("Grasp the puck\nPlace it\n")
    assert parse_plan(str(tmp_path / "plan.txt")) == ["Grasp the puck", "Place it"]
    (tmp_path / "plan.json").write_text('["x", "y"]')
    assert parse_plan(str(tmp_path / "plan.json")) == ["x", "y"]
    with pytest.raises(ProcvlmError, match="JSON list of strings"):
        parse_plan("[1, 2]")
    with pytest.raises(ProcvlmError, match="holds no step"):
        parse_plan(" ; ")


class _Model:
    """Knows one task's plan; records what it was asked to predict."""

    def __init__(self):
        from procvlm.models.base import TrainedOn

        self.trained_on = TrainedOn()
        self.asked = []

    def known_plan(self, task):
        return ["learned 1", "learned 2"] if task == "known task" else None

    def predict_batch(self, items, *, window=None, batch_size=None):
        from procvlm.models.base import ProgressPrediction

        out = []
        for ep, task, plan in items:
            self.asked.append((task, plan))
            n = len(ep)
            out.append(ProgressPrediction(np.linspace(0, 1, n), np.zeros(n),
                                          [list(plan)] * n))
        return out


def _episode(i, task, plan=None, subtasks=None, t=12):
    from procvlm.data import Episode

    frames = np.zeros((t, 8, 8, 3), np.uint8)
    return Episode(episode_index=i, task=task, fps=10.0, frames={"top": frames},
                   state=np.zeros((t, 2), np.float32), action=np.zeros((t, 2), np.float32),
                   plan=plan, subtasks=subtasks)


def test_plan_source_order_and_one_line_per_task(tmp_path, caplog):
    """--plan, the episode's plan, plans.json, the model's, the sub-step names, the task."""
    import json

    from procvlm.data import Subtask

    (tmp_path / "meta/procvlm").mkdir(parents=True)
    (tmp_path / "meta/procvlm/plans.json").write_text(json.dumps({"labelled": ["l1", "l2"]}))
    subs = [Subtask("reach", 0, 4), Subtask("push", 4, 8), Subtask("reach", 8, 10),
            Subtask("idle", 10, 12)]
    eps = [_episode(0, "own", plan=["o1"]), _episode(1, "labelled"), _episode(2, "known task"),
           _episode(3, "annotated", subtasks=subs), _episode(4, "Pick up the puck"),
           _episode(5, "Pick up the puck")]
    src = PlanSource(_Model(), tmp_path)
    with caplog.at_level("INFO", logger="procvlm.reward.score"):
        got = [src.choose(e) for e in eps]
        for e in eps:
            src(e)
    assert got == [(["o1"], "the episode's plan"), (["l1", "l2"], "plans.json"),
                   (["learned 1", "learned 2"], "the model's training plan"),
                   (["reach", "push"], "the dataset's sub-step names"),
                   (["Pick up the puck"], "one whole-task step")] + [got[4]]
    lines = [r for r in caplog.records if "plan of task" in r.getMessage()]
    assert len(lines) == 5  # one per task, not per episode
    assert lines[-1].levelname == "WARNING" and "one whole-task step" in lines[-1].getMessage()
    assert PlanSource(_Model(), tmp_path, ["a", "b"]).choose(eps[0]) == (["a", "b"], "--plan")


def test_scores_a_dataset_whose_task_the_model_never_saw(tmp_path):
    """Finding 1: a LeRobot dataset with an unseen task, no plan and no sub-steps scores (one
    whole-task step) instead of failing with 'no plan for task'."""
    import torch

    from procvlm.data import open_dataset, write_dataset
    from procvlm.models.compact import CompactConfig, TextEncoder
    from procvlm.models.compact.text import hash_embeddings
    from procvlm.training.compact import build_model
    from procvlm.training.data import corpus_from_episodes, synthetic_episodes

    train, targets = synthetic_episodes(2, 12, 16, seed=0)
    torch.manual_seed(0)
    model = build_model(corpus_from_episodes(train, targets, 16), [0, 1],
                        CompactConfig(image_size=16, channels=(4, 8), hidden=16, key_dim=8),
                        TextEncoder(encode_fn=hash_embeddings)).eval()
    eps = [_episode(i, "Pick up the puck and place it at the goal", t=10) for i in range(2)]
    write_dataset(tmp_path / "ds", eps, video=False)
    table = score_episodes(model, open_dataset(tmp_path / "ds"), show_progress=False)
    assert table.num_rows == 20
    assert table.column("remaining").to_pylist()[0] in (
        [], ["Pick up the puck and place it at the goal"])
    p = np.asarray(table.column("progress"))
    assert np.all((p >= 0) & (p <= 1))
    # the compact model's P(done) per frame, as predict gives it
    ep0 = open_dataset(tmp_path / "ds").episode(0)
    want = model.predict(ep0, plan=["Pick up the puck and place it at the goal"]).done
    np.testing.assert_allclose(table.column("done").to_numpy()[:10], want, atol=1e-6)
    with pytest.raises(ProcvlmError, match="pass --camera"):
        score_episodes(model, open_dataset(tmp_path / "ds"), camera="corner",
                       show_progress=False)
