"""CompactConfig: validation and dict round trip."""

import pytest

from procvlm.errors import ProcvlmError
from procvlm.models.compact.configuration_compact import CompactConfig


def test_round_trip_keeps_every_field_and_type():
    cfg = CompactConfig(window=3, stride=2, image_size=32, channels=(8, 16), stage_mode="argmax")
    d = cfg.to_dict()
    assert d["type"] == "compact" and d["channels"] == [8, 16]
    assert CompactConfig.from_dict(d) == cfg


def test_records_what_it_was_trained_on():
    cfg = CompactConfig(camera="corner", scheme="time", head="direct")
    d = cfg.to_dict()
    assert (d["camera"], d["scheme"], d["head"]) == ("corner", "time", "direct")
    assert CompactConfig.from_dict(d) == cfg
    legacy = {k: v for k, v in d.items() if k not in ("camera", "scheme", "head")}
    old = CompactConfig.from_dict(legacy)  # configs written before these fields load
    assert (old.camera, old.scheme, old.head) == (None, None, "reason")


def test_pool_travels_and_old_configs_flatten():
    cfg = CompactConfig(pool="meanmax")
    assert CompactConfig.from_dict(cfg.to_dict()).pool == "meanmax"
    legacy = {k: v for k, v in cfg.to_dict().items() if k != "pool"}
    assert CompactConfig.from_dict(legacy).pool == "flatten"  # shipped checkpoints load as built


def test_input_norm_travels_and_old_configs_have_none():
    cfg = CompactConfig(input_norm="window")
    assert CompactConfig.from_dict(cfg.to_dict()).input_norm == "window"
    legacy = {k: v for k, v in cfg.to_dict().items() if k != "input_norm"}
    assert CompactConfig.from_dict(legacy).input_norm == "none"  # shipped checkpoints as built


def test_window_span():
    assert CompactConfig(window=4, stride=4).window_span == 13


@pytest.mark.parametrize("kwargs, match", [
    ({"window": 0}, "window=0"),
    ({"stride": 0}, "stride=0"),
    ({"image_size": 40}, "image_size=40"),
    ({"channels": ()}, "channels"),
    ({"dropout": 1.0}, "dropout=1.0"),
    ({"stage_mode": "mean"}, "stage_mode='mean'"),
    ({"type": "vlm"}, "type='vlm'"),
    ({"head": "regress"}, "head='regress'"),
    ({"scheme": "paper"}, "scheme='paper'"),
    ({"pool": "attention"}, "pool='attention'"),
    ({"input_norm": "frame"}, "input_norm='frame'"),
])
def test_bad_values_name_the_value(kwargs, match):
    with pytest.raises(ProcvlmError, match=match):
        CompactConfig(**kwargs)


def test_unknown_keys_are_named():
    with pytest.raises(ProcvlmError, match="unknown keys \\['colour'\\]"):
        CompactConfig.from_dict({"colour": 1})


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        CompactConfig().window = 2  # type: ignore[misc]


def test_members_travel_and_old_configs_have_one():
    cfg = CompactConfig(members=3)
    assert CompactConfig.from_dict(cfg.to_dict()).members == 3
    legacy = {k: v for k, v in cfg.to_dict().items() if k != "members"}
    assert CompactConfig.from_dict(legacy).members == 1
    with pytest.raises(ProcvlmError, match="members=0"):
        CompactConfig(members=0)
