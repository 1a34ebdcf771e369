"""``procvlm score``: the score file's keys for both formats, and bad input."""


import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from procvlm.models.compact.text import hash_embeddings
from procvlm.cli.main import main
from procvlm.models.compact import CompactConfig, TextEncoder
from procvlm.training.compact import build_model
from procvlm.training.data import corpus_from_episodes, synthetic_episodes


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from procvlm.data import write_dataset

    root = tmp_path_factory.mktemp("score")
    eps, targets = synthetic_episodes(3, 20, 32, seed=0, failure_rate=0.34)
    write_dataset(root / "ds", eps, video=False)
    corpus = corpus_from_episodes(eps, targets, 16)
    torch.manual_seed(0)
    model = build_model(corpus, [0, 1, 2], CompactConfig(image_size=16, channels=(4, 8),
                                                         hidden=16, key_dim=8),
                        TextEncoder(encode_fn=hash_embeddings))
    model.eval().save_pretrained(root / "run" / "model")  # text cache covers every plan text
    return root, eps


def test_score_writes_procvlm_keys(setup, capsys):
    root, eps = setup
    out = root / "scores.parquet"
    assert main(["score", str(root / "run"), str(root / "ds"), "--out", str(out),
                 "--batch-size", "7"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed
    t = pq.read_table(out)
    assert t.column_names == ["index", "episode_index", "frame_index", "progress", "remaining",
                              "stage", "done"]
    assert t.num_rows == 60 and t.column("index").to_pylist() == list(range(60))
    rows = t.to_pylist()
    for r in rows:
        plan = eps[r["episode_index"]].plan
        assert 0 <= r["progress"] <= 1 and r["remaining"] == plan[r["stage"]:]
        assert 0 <= r["done"] <= 1
    finished = [i for i in range(3)
                if np.mean([r["done"] for r in rows if r["episode_index"] == i][-3:]) > 0.5]
    want = f"{len(finished)} of 3 episodes"
    assert want in printed and "finished by the model's P(done)" in printed
    if finished:
        assert f"({', '.join(map(str, finished))})" in printed


def test_score_lerobot_rabc_format_defaults_to_the_dataset_root(setup):
    root, _ = setup
    assert main(["score", str(root / "run" / "model"), str(root / "ds"),
                 "--format", "lerobot-rabc"]) == 0
    t = pq.read_table(root / "ds" / "sarm_progress.parquet")
    assert t.column_names == ["index", "episode_index", "frame_index", "progress_sparse",
                              "progress_dense"]


def test_score_bad_inputs(setup, tmp_path, capsys):
    root, _ = setup
    assert main(["score", str(tmp_path), str(root / "ds")]) == 2
    assert "model/config.json" in capsys.readouterr().err
    assert main(["score", str(root / "run"), str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.fixture
def hashed_text(monkeypatch):
    """Loaded models encode unseen texts with hash embeddings instead of MiniLM (fast)."""
    import functools

    from procvlm.models.compact import modeling_compact

    monkeypatch.setattr(modeling_compact, "TextEncoder",
                        functools.partial(TextEncoder, encode_fn=hash_embeddings))


def test_score_unseen_task_with_plan_option_or_dataset_sub_steps(setup, tmp_path, capsys,
                                                                  hashed_text, caplog):
    """Finding 1: `procvlm score RUN DS` on a LeRobot dataset whose task the model never saw."""
    from procvlm.data import Episode, Subtask, write_dataset

    root, eps = setup
    unseen = [Episode(episode_index=i, task="Pick up the puck and place it at the goal",
                      fps=10.0, frames={"top": eps[i].frames["main"][:]}, state=eps[i].state,
                      action=eps[i].action,
                      subtasks=[Subtask("Grasp the puck", 0, 8), Subtask("Place it", 8, 16)])
              for i in range(2)]
    ds = write_dataset(tmp_path / "ds", unseen, video=False)
    out = tmp_path / "s.parquet"
    assert main(["score", str(root / "run"), str(ds), "--out", str(out)]) == 0
    assert "the dataset's sub-step names" in caplog.text
    assert pq.read_table(out).column("remaining").to_pylist()[0] in (
        ["Grasp the puck", "Place it"], ["Place it"], [])
    assert main(["score", str(root / "run"), str(ds), "--out", str(out),
                 "--plan", "Reach; Grasp; Place"]) == 0
    remaining = pq.read_table(out).column("remaining").to_pylist()
    assert all(r == ["Reach", "Grasp", "Place"][3 - len(r):] for r in remaining)
    assert main(["score", str(root / "run"), str(ds), "--plan", "[1]"]) == 2
    assert "--plan '[1]' must be a JSON list of strings" in capsys.readouterr().err


def test_score_vlm_run_takes_engine_options(setup, tmp_path, monkeypatch):
    """--batch-size, --cache, --workers and --reasoning reach a VLM run's config; the run is
    scored with them (a tiny random-weight model, 4 new tokens per answer)."""
    from procvlm.models.vlm.modeling_vlm import VLMProgressModel
    from procvlm.models.vlm.tiny import build_tiny_vlm

    root, _ = setup
    base = build_tiny_vlm(tmp_path / "tiny", "qwen3_vl")
    VLMProgressModel.from_pretrained(base, max_new_tokens=4, window=1, image_size=32,
                                     device="cpu").save_pretrained(tmp_path / "run")
    seen = []
    original = VLMProgressModel.from_config.__func__

    def spy(cls, config):
        seen.append(config)
        return original(cls, config)

    monkeypatch.setattr(VLMProgressModel, "from_config", classmethod(spy))
    out = tmp_path / "scores.parquet"
    assert main(["score", str(tmp_path / "run"), str(root / "ds"), "--out", str(out),
                 "--batch-size", "7", "--cache", "static", "--workers", "1",
                 "--reasoning", "reuse"]) == 0
    cfg = seen[-1]
    assert (cfg.batch_size, cfg.cache, cfg.workers, cfg.reasoning) == (7, "static", 1, "reuse")
    assert pq.read_table(out).num_rows == 60


def test_score_engine_options_rejected_for_a_compact_model(setup, capsys):
    root, _ = setup
    assert main(["score", str(root / "run"), str(root / "ds"), "--cache", "static"]) == 2
    assert "--cache applies to a VLM run" in capsys.readouterr().err
    assert main(["score", str(root / "run"), str(root / "ds"), "--workers", "-1"]) == 2
    assert "--workers -1: need >= 0" in capsys.readouterr().err
