"""``procvlm train --model compact``: end to end on a tiny labelled LeRobot dataset."""

import json

import pyarrow.parquet as pq
import pytest

from procvlm.cli.main import main
from procvlm.training.data import synthetic_episodes


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from procvlm.data import write_dataset
    from procvlm.labels import label_dataset

    root = tmp_path_factory.mktemp("train") / "ds"
    eps, _ = synthetic_episodes(5, 20, 32, seed=0, failure_rate=0.4)
    write_dataset(root, eps, video=False)
    label_dataset(root)
    return root


@pytest.mark.slow
def test_train_then_score(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--model", "compact", str(dataset), "--out", str(run), "--steps", "2",
            "--image-size", "32", "--batch-size", "8", "--threads", "1", "--scheme", "sarm",
            "--window", "2", "--stride", "3", "--val-fraction", "0.4"]
    assert main(args) == 0
    assert "metrics.json" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["scheme"] == "sarm" and "mae" in metrics["val"]
    cfg = json.loads((run / "model" / "config.json").read_text())
    assert cfg["type"] == "compact" and (cfg["window"], cfg["stride"]) == (2, 3)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000002.pt"]
    assert main(["score", str(run), str(dataset), "--out", str(tmp_path / "s.parquet")]) == 0
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 100


def test_train_errors(dataset, tmp_path, capsys):
    assert main(["train", "--model", "compact", "--out", str(tmp_path / "r")]) == 2
    assert "no dataset given" in capsys.readouterr().err
    assert main(["train", "--model", "compact", str(tmp_path / "none"), "--out",
                 str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--model", "compact", str(dataset), "--out", str(tmp_path / "r"),
                 "--image-size", "30"]) == 2
    assert "image_size=30" in capsys.readouterr().err
