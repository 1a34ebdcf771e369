"""Reward shaping from progress, and scoring a dataset with a model."""

import numpy as np
import pyarrow as pa
import pytest

from procvlm.errors import ProcvlmError
from procvlm.reward.score import (default_output, potential_shaping, progress_delta,
                                  shaped_reward, to_rabc_table)


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
    assert r.column_names == ["index", "episode_index", "frame_index", "progress_sparse"]
    assert r.schema.field("progress_sparse").type == pa.float32()
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
