"""procvlm.vqa: ProcVQA chat samples (progress with reasoning, action segmentation, planning)
derived from procedure-grounded labels, written as JSONL + JPEG frames."""

from procvlm.vqa.build import (SPLITS, EpisodeInput, VQAConfig, build_vqa, dataset_info,
                               episode_samples, image_relpath, split_episodes, write_vqa)
from procvlm.vqa.samples import (FAMILIES, IMAGE_TOKEN, WindowConfig, planning_sample,
                                 progress_sample, sample_window, segmentation_frames,
                                 segmentation_sample, segments_of, structured_messages)

__all__ = [
    "FAMILIES", "IMAGE_TOKEN", "SPLITS", "EpisodeInput", "VQAConfig", "WindowConfig",
    "build_vqa", "dataset_info", "episode_samples", "image_relpath", "planning_sample",
    "progress_sample", "sample_window", "segmentation_frames", "segmentation_sample",
    "segments_of", "split_episodes", "structured_messages", "write_vqa",
]
