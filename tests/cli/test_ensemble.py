"""``procvlm ensemble``: join saved compact models, refuse what cannot be joined."""

import json

import numpy as np
import torch

from procvlm.cli.main import main
from procvlm.models import load_model
from procvlm.models.compact import CompactConfig, CompactProgressModel, TextEncoder
from procvlm.models.compact.text import hash_embeddings

PLAN = ["Move to the puck", "Push the puck"]


def saved(path, seed, **kw):
    torch.manual_seed(seed)
    cfg = CompactConfig(image_size=16, channels=(4, 8), hidden=16, key_dim=8, **kw)
    model = CompactProgressModel(cfg, {"Push the puck": [0.0, 0.5, 1.0]},
                                 {"Push the puck": PLAN}, TextEncoder(encode_fn=hash_embeddings),
                                 {"steps": 10 + seed}).eval()
    model.save_pretrained(path)
    return model


def test_joins_two_runs_into_one_model(tmp_path, capsys):
    a, b = saved(tmp_path / "a", 0), saved(tmp_path / "b" / "model", 1)  # model and run folder
    out = tmp_path / "joined"
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    assert "2 networks averaged" in capsys.readouterr().out
    record = json.loads((out / "training.json").read_text())
    assert record["steps"] == 21 and len(record["ensemble_of"]) == 2
    frames = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    joined = load_model(out).predict(frames, "Push the puck")
    want = (a.predict(frames, "Push the puck").progress
            + b.predict(frames, "Push the puck").progress) / 2
    np.testing.assert_allclose(joined.progress, want, atol=1e-6)


def test_refusals_are_one_line_and_keep_the_output(tmp_path, capsys):
    saved(tmp_path / "a", 0)
    saved(tmp_path / "b", 1, window=2)
    out = tmp_path / "joined"
    assert main(["ensemble", str(tmp_path / "a"), "--out", str(out)]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 2
    assert "window=2" in capsys.readouterr().err and not out.exists()
    (tmp_path / "vlm").mkdir()
    (tmp_path / "vlm" / "config.json").write_text('{"type": "vlm"}')
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "vlm"), "--out", str(out)]) == 2
    assert "only compact models" in capsys.readouterr().err
    saved(out, 2)
    before = (out / "model.safetensors").read_bytes()
    assert main(["ensemble", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(out)]) == 2
    assert "already holds a model" in capsys.readouterr().err
    assert (out / "model.safetensors").read_bytes() == before
