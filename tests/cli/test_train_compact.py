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
            "--window", "2", "--stride", "3", "--val-fraction", "0.4", "--hflip", "0.5",
            "--vflip", "0.5", "--flip-average", "--jitter", "0.4",
            "--still", "0.3", "--anchor", "--shift", "0.125", "--zoom", "0.1", "--rotate", "5",
            "--channel-shuffle", "0.5", "--lowres", "0.5", "--tilt", "8", "--end-weight", "2",
            "--end-frames", "4", "--channels", "8,16", "--hidden", "32",
            "--pool", "meanmax", "--ema", "0.99", "--input-norm", "window"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "metrics.json" in captured.out
    assert captured.out.count('"mae"') == 1 and "mae" not in captured.err  # reported once
    assert "validation on 2 held-out episodes" in captured.out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["scheme"] == "sarm" and "mae" in metrics["val"]
    cfg = json.loads((run / "model" / "config.json").read_text())
    assert cfg["type"] == "compact" and (cfg["window"], cfg["stride"]) == (2, 3)
    assert cfg["flip_average"] is True  # travels with the model to score, eval and serve
    assert cfg["anchor"] is True
    assert (cfg["channels"], cfg["hidden"]) == ([8, 16], 32)  # the model's size, as asked
    assert cfg["pool"] == "meanmax" and cfg["input_norm"] == "window"
    recorded = json.loads((run / "train_config.json").read_text())["train"]["augmentation"]
    assert (recorded["hflip"], recorded["vflip"]) == (0.5, 0.5)
    assert recorded["brightness"] == recorded["contrast"] == recorded["saturation"] == 0.4
    assert recorded["still"] == 0.3 and recorded["shift"] == 0.125
    assert (recorded["zoom"], recorded["rotate"], recorded["channel_shuffle"]) == (0.1, 5, 0.5)
    assert recorded["lowres"] == 0.5 and recorded["tilt"] == 8.0
    train = json.loads((run / "train_config.json").read_text())["train"]
    assert (train["end_weight"], train["end_frames"]) == (2.0, 4)
    assert train["ema"] == 0.99
    assert json.loads((run / "model" / "training.json").read_text())["ema"] == 0.99
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
    assert main(["train", "--model", "compact", str(dataset), "--out", str(tmp_path / "r"),
                 "--vflip", "1.5"]) == 2
    assert "vflip=1.5" in capsys.readouterr().err
    assert main(["train", "--model", "compact", str(dataset), "--out", str(tmp_path / "r"),
                 "--ema", "1"]) == 2
    assert "ema=1.0: need 0 (off) <= ema < 1" in capsys.readouterr().err
    assert main(["train", "--model", "compact", str(dataset), "--out", str(tmp_path / "r"),
                 "--jitter", "1"]) == 2
    assert "--jitter 1.0: need 0 <= jitter < 1" in capsys.readouterr().err
    assert main(["train", "--model", "compact", str(dataset), "--out", str(tmp_path / "r"),
                 "--still", "2"]) == 2
    assert "still=2.0" in capsys.readouterr().err
    assert main(["train", "--model", "compact", str(dataset), "--out", str(tmp_path / "r"),
                 "--rotate", "-3"]) == 2
    assert "rotate=-3.0" in capsys.readouterr().err
    assert main(["train", "--model", "compact", str(dataset), "--out", str(tmp_path / "r"),
                 "--shift", "1"]) == 2
    assert "shift=1.0: need 0 <= value < 1" in capsys.readouterr().err
    assert main(["train", "--model", "compact", str(dataset), "--out", str(tmp_path / "r"),
                 "--lowres", "1"]) == 2
    assert "lowres=1.0: need 0 (off) or a share" in capsys.readouterr().err
    assert main(["train", "--model", "compact", str(dataset), "--out", str(tmp_path / "r"),
                 "--end-weight", "-1"]) == 2
    assert "end_weight=-1.0" in capsys.readouterr().err
    assert main(["train", "--model", "compact", str(dataset), "--out", str(tmp_path / "r"),
                 "--channels", "8,wide"]) == 2
    assert "'8,wide': give positive ints separated by commas" in capsys.readouterr().err


@pytest.mark.slow
def test_too_few_episodes_for_validation_says_so_in_words(dataset, tmp_path, capsys):
    args = ["train", str(dataset), "--out", str(tmp_path / "run"), "--steps", "1",
            "--image-size", "32", "--batch-size", "4", "--threads", "1", "--window", "2",
            "--val-fraction", "0.05"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "validation: none, no episode was held out (--val-fraction 0.05" in out
    assert "{}" not in out


def test_an_option_of_the_other_model_is_refused(tmp_path, capsys):
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "r"), "--epochs", "3"]) == 2
    assert "--epochs is an option of --model vlm" in capsys.readouterr().err
    assert main(["train", "--model", "vlm", "--data", str(tmp_path), "--out",
                 str(tmp_path / "r"), "--window", "8"]) == 2
    assert "--window is an option of --model compact" in capsys.readouterr().err


def test_training_bar_total_is_the_step_budget_from_start_to_end(dataset, tmp_path,
                                                                 monkeypatch):
    import procvlm.training.compact as compact

    seen = []

    class Recording(compact.tqdm):
        def update(self, n=1):
            seen.append(self.total)
            return super().update(n)

    monkeypatch.setattr(compact, "tqdm", Recording)
    assert main(["train", str(dataset), "--out", str(tmp_path / "run"), "--steps", "5",
                 "--image-size", "32", "--batch-size", "4", "--threads", "1", "--window",
                 "2", "--val-fraction", "0.4"]) == 0
    assert seen == [5] * 5
