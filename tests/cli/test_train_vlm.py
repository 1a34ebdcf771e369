"""`procvlm train --model vlm` then `procvlm score` with the trained run: a tiny VLM, no download."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from procvlm.cli.main import main
from procvlm.data import ArrayFrames, Episode, Subtask, write_dataset
from procvlm.models.base import load_model
from procvlm.models.vlm.tiny import build_tiny_vlm, write_tiny_vqa

pytestmark = pytest.mark.slow


def _dataset(root):
    rng = np.random.default_rng(0)
    eps = [Episode(i, "put the puck on the goal", 10.0,
                   {"corner": ArrayFrames(rng.integers(0, 255, (5, 32, 32, 3), dtype=np.uint8))},
                   np.zeros((5, 2), np.float32), np.zeros((5, 2), np.float32), success=True,
                   subtasks=[Subtask("Grasp the puck", 0, 5)], plan=["Grasp the puck"])
           for i in range(2)]
    return write_dataset(root, eps, video=False)


def test_train_lora_then_score_a_dataset(tmp_path):
    base = build_tiny_vlm(tmp_path / "base", "qwen3_vl")
    vqa = write_tiny_vqa(tmp_path / "vqa", 3, frames=2)
    run = tmp_path / "run"
    assert main(["train", "--model", "vlm", "--base", str(base), "--data", str(vqa),
                 "--out", str(run), "--max-steps", "2", "--image-size", "32",
                 "--lora-r", "4", "--batch-size", "2"]) == 0
    model = load_model(run)
    assert model.model_type == "vlm"
    ds = _dataset(tmp_path / "ds")
    out = tmp_path / "scores.parquet"
    assert main(["score", str(run), str(ds), "--out", str(out)]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 10
    progress = np.asarray(table.column("progress"))
    assert ((progress >= 0) & (progress <= 1)).all()


def test_train_vlm_names_missing_data(tmp_path, capsys):
    assert main(["train", "--model", "vlm", "--base", str(tmp_path / "base"), "--data",
                 str(tmp_path / "nope"), "--out", str(tmp_path / "run")]) == 2
    assert "nope" in capsys.readouterr().err
