"""The shipped ``metaworld`` checkpoint on held-out rendered MetaWorld episodes, scored the way
a user scores a LeRobot dataset (``procvlm score metaworld DATASET``).

The thresholds are ones a random model of the same architecture fails (checked in the same
test), so a broken checkpoint, reader, writer or scorer fails here.
"""

import dataclasses

import numpy as np
import pyarrow.parquet as pq
import pytest

from procvlm.cli.main import main
from procvlm.eval.metrics import auroc, success_score, voc

pytestmark = [pytest.mark.sim, pytest.mark.slow]

# (task, seed, failure): seeds far from the training corpus's, one success and one failure
# per task.
HELD_OUT = [("pick-place", 1001, None), ("pick-place", 1002, "truncate"),
            ("assembly", 1003, None), ("assembly", 1004, "drop")]


@pytest.fixture(scope="module")
def episodes():
    pytest.importorskip("metaworld")
    from procvlm.sim import close_envs, rollout

    eps = [rollout(task, seed, failure, cameras=("corner",), episode_index=i)
           for i, (task, seed, failure) in enumerate(HELD_OUT)]
    close_envs()
    assert [bool(e.success) for e in eps] == [True, False, True, False]
    return eps


def separation(progress: list[np.ndarray], success: list[bool]) -> dict[str, float]:
    """VOC on successes, success/failure AUROC of final progress, and the gap between the
    mean final progress of successes and of failures."""
    final = np.array([p[-1] for p in progress])
    ok = np.array(success)
    return {"voc": voc([p for p, s in zip(progress, ok) if s]), "auroc": auroc(final, ok),
            "gap": float(final[ok].mean() - final[~ok].mean())}


def score_cli(root, out) -> list[np.ndarray]:
    assert main(["score", "metaworld", str(root), "--out", str(out)]) == 0
    table = pq.read_table(out)
    ep = table.column("episode_index").to_numpy()
    p = table.column("progress").to_numpy()
    return [p[ep == i] for i in range(len(HELD_OUT))]


def test_shipped_checkpoint_on_held_out_rendered_episodes(episodes, tmp_path, caplog):
    import torch

    from procvlm.data import open_dataset, write_dataset
    from procvlm.models import load_model
    from procvlm.models.compact import CompactProgressModel
    from procvlm.reward.score import score_episodes

    success = [bool(e.success) for e in episodes]
    # 1. a dataset as procvlm writes it (videos, plans, sub-steps)
    write_dataset(tmp_path / "own", episodes)
    own = separation(score_cli(tmp_path / "own", tmp_path / "own.parquet"), success)
    assert own["voc"] >= 0.9 and own["auroc"] >= 0.99 and own["gap"] >= 0.4, own
    # 2. as another LeRobot dataset: a task text the model never saw, no plan, only per-frame
    # sub-steps (finding 1: this failed with "no plan for task")
    foreign = [dataclasses.replace(e, plan=None, task=e.task.replace(" onto the ", " at the "))
               for e in episodes]
    write_dataset(tmp_path / "foreign", foreign)
    got = separation(score_cli(tmp_path / "foreign", tmp_path / "foreign.parquet"), success)
    assert "the dataset's sub-step names" in caplog.text
    assert got["voc"] >= 0.8 and got["auroc"] >= 0.99 and got["gap"] >= 0.25, got
    # 3. the same thresholds fail for random weights of the same architecture
    shipped = load_model("metaworld")
    torch.manual_seed(0)
    rand = CompactProgressModel(shipped.config, shipped.budgets, shipped.plans,
                                shipped.text).eval()
    table = score_episodes(rand, open_dataset(tmp_path / "own"), show_progress=False)
    ep, p = table.column("episode_index").to_numpy(), table.column("progress").to_numpy()
    bad = separation([p[ep == i] for i in range(len(episodes))], success)
    assert not (bad["voc"] >= 0.8 and bad["auroc"] >= 0.99 and bad["gap"] >= 0.25), bad


# (task, seed, failure): training tasks of `metaworld-randomized` at seeds far from its corpus,
# rendered under held-out conditions (camera pose, lighting, colours, resolution and an upside-
# down image never drawn in training); one success and one failure per task.
HELD_OUT_RENDER = [("pick-place", 3001, None), ("pick-place", 3002, "truncate"),
                   ("drawer-open", 3003, None), ("drawer-open", 3004, "truncate"),
                   ("button-press-topdown", 3005, None),
                   ("button-press-topdown", 3006, "truncate")]


def test_randomized_checkpoint_on_held_out_rendering():
    import torch

    pytest.importorskip("metaworld")
    from procvlm.models import load_model
    from procvlm.models.compact import CompactProgressModel
    from procvlm.sim import close_envs, rollout

    eps = [rollout(task, seed, failure, cameras=("corner",), episode_index=i, max_steps=200,
                   randomize="heldout")
           for i, (task, seed, failure) in enumerate(HELD_OUT_RENDER)]
    close_envs()
    success = [bool(e.success) for e in eps]
    assert success == [True, False] * 3

    def scored(model):
        preds = model.predict_batch([(e, None, None) for e in eps])
        got = separation([p.progress for p in preds], success)
        # the model's own success detector: each task's success above its failure, by a margin
        done = np.array([success_score(p.done) for p in preds])
        return {**got, "done_gap": float(np.min(done[0::2] - done[1::2]))}

    # A guard against a broken checkpoint, not a quality bar (benchmarks/generalize.py is, on
    # 108 episodes per split). On these six episodes the shipped checkpoint gives VOC 0.88, a
    # final-progress gap of 0.215 and a P(done) margin of 0.144 (the zoom-0.15 checkpoint
    # before it: 0.86, 0.054, 0.091; its twin trained with seed 0 fails the margin: 0.72,
    # 0.061, -0.094; the two before, on half the data: 0.90, 0.149, 0.050 after 18000 steps;
    # 0.90, 0.197, 0.032 after 9000); random weights give VOC below 0 and gaps within 0.02
    # of 0 (seeds 0-2).
    shipped = load_model("metaworld-randomized")
    got = scored(shipped)
    assert got["voc"] >= 0.7 and got["gap"] >= 0.04 and got["done_gap"] >= 0.05, got
    torch.manual_seed(0)
    rand = CompactProgressModel(shipped.config, shipped.budgets, shipped.plans,
                                shipped.text).eval()
    bad = scored(rand)
    assert not (bad["voc"] >= 0.7 and bad["gap"] >= 0.04), bad
    assert bad["done_gap"] < 0.02, bad
