"""Tiny VLM fixtures: random-weight models of each architecture, and one trained to answer a
fixed progress (session scoped: built once)."""

import pytest

from procvlm.models.vlm.tiny import ARCHITECTURES, build_tiny_vlm, write_tiny_vqa

FIXED = 0.5


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_vlms")
    return {arch: build_tiny_vlm(root / arch, arch) for arch in ARCHITECTURES}


def _fixed(tmp_path_factory, tiny_dirs, progress: float):
    from procvlm.training.vlm_sft import VLMTrainConfig, train_vlm

    root = tmp_path_factory.mktemp("fixed")
    data = write_tiny_vqa(root / "vqa", 4, progress=progress)
    cfg = VLMTrainConfig(data=str(data), out=str(root / "run"), base=str(tiny_dirs["qwen3_vl"]),
                         full=True, max_steps=30, lr=1e-2, batch_size=2, image_size=32,
                         logging_steps=4, save_steps=100)
    return train_vlm(cfg)


@pytest.fixture(scope="session")
def fixed_run(tmp_path_factory, tiny_dirs):
    """A Qwen3-VL tiny model fully fine-tuned to always answer FIXED progress (one action
    remaining)."""
    return _fixed(tmp_path_factory, tiny_dirs, FIXED)


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, tiny_dirs):
    """The same, fine-tuned to always answer that the task is finished."""
    return _fixed(tmp_path_factory, tiny_dirs, 1.0)
