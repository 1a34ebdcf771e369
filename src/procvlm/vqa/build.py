"""Build a ProcVQA folder from a labelled dataset: JPEG frames + chat JSONL splits.

Layout of ``out``::

    images/ep000003/000042.jpg   one JPEG (quality 90) per used (episode, frame), shared by samples
    train.jsonl, val.jsonl       episode-level split of the in-distribution tasks
    test_ood.jsonl               whole held-out tasks (only with ``ood_tasks``)
    dataset_info.json            LLaMA-Factory dataset registry for the splits (sharegpt format)
    manifest.json                seed, options, source, episodes and sample counts per split

Each JSONL line is ``{"messages": [user, assistant], "images": [...], "family", "variant",
"task", "episode_index", "frame_index", "frame_indices", "progress"}``. ``messages`` + ``images``
with one ``<image>`` per image is the multimodal format of LLaMA-Factory (``formatting:
sharegpt``, ``dataset_dir`` = ``out``) and ms-swift; TRL's ``SFTTrainer`` takes the same columns
(it prepends the images to the first user turn; use ``procvlm.vqa.structured_messages`` to keep
them interleaved). Image paths are relative to ``out``. The remaining keys are metadata.

The build is deterministic from the seed: the same seed gives byte-identical JSONL files. Every
file is written atomically; JPEGs already present are kept, so an interrupted build resumes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from procvlm._io import atomic_path, write_json, write_text
from procvlm.data.dataset import choose_camera
from procvlm.data.episode import Frames
from procvlm.errors import ProcvlmError
from procvlm.vqa.samples import (FAMILIES, WindowConfig, planning_sample, progress_sample,
                                 sample_window, segmentation_frames, segmentation_sample)

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test_ood")


@dataclass(frozen=True)
class VQAConfig:
    """What ``write_vqa`` builds.

    Attributes:
        seed: seed of every random choice (splits, frames, windows, variants).
        val_fraction: fraction of in-distribution episodes in ``val.jsonl``.
        ood_tasks: tasks held out whole into ``test_ood.jsonl``.
        samples_per_episode: current frames (anchors) drawn per episode; each gives one sample
            per family. The last frame is always one of them.
        families: which sample families to emit.
        window: how the observation window before a frame is drawn.
        jpeg_quality: JPEG quality of the saved frames.
    """

    seed: int = 0
    val_fraction: float = 0.1
    ood_tasks: tuple[str, ...] = ()
    samples_per_episode: int = 8
    families: tuple[str, ...] = FAMILIES
    window: WindowConfig = field(default_factory=WindowConfig)
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ProcvlmError(f"val_fraction={self.val_fraction}: need a fraction in [0, 1)")
        if self.samples_per_episode < 1:
            raise ProcvlmError(f"samples_per_episode={self.samples_per_episode}: need >= 1")
        unknown = sorted(set(self.families) - set(FAMILIES))
        if unknown or not self.families:
            raise ProcvlmError(f"families {list(self.families)}: choose among {list(FAMILIES)}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ProcvlmError(f"jpeg_quality={self.jpeg_quality}: need 1..100")


@dataclass
class EpisodeInput:
    """One labelled episode, as the sample builders need it.

    Attributes:
        episode_index: index in the dataset.
        task: the instruction.
        frames: the main camera's frames (T).
        progress: (T,) label progress in [0, 1].
        remaining: T lists of atomic actions still to do (empty when finished).
        subtask: (T,) the atomic action of each frame ("done" or "" where none).
    """

    episode_index: int
    task: str
    frames: Frames
    progress: np.ndarray
    remaining: Sequence[Sequence[str]]
    subtask: Sequence[str]

    def __post_init__(self) -> None:
        n = len(self.frames)
        sizes = {"progress": len(self.progress), "remaining": len(self.remaining),
                 "subtask": len(self.subtask)}
        bad = {k: v for k, v in sizes.items() if v != n}
        if n == 0 or bad:
            raise ProcvlmError(f"episode {self.episode_index}: {n} frames but label lengths "
                               f"{sizes}: relabel the dataset with procvlm label")


def image_relpath(episode_index: int, frame_index: int) -> str:
    """``images/ep000003/000042.jpg``: where a frame's JPEG lives, relative to the VQA folder."""
    return f"images/ep{episode_index:06d}/{frame_index:06d}.jpg"


def split_episodes(episode_tasks: dict[int, str], seed: int, val_fraction: float,
                   ood_tasks: Sequence[str] = ()) -> dict[str, list[int]]:
    """Episode-level splits: OOD tasks whole into ``test_ood``, the rest into train / val.

    Args:
        episode_tasks: episode index -> task.
        seed: seed of the val draw.
        val_fraction: fraction of in-distribution episodes for ``val`` (at least one when > 0
            and there are two or more episodes; train always keeps one).
        ood_tasks: tasks to hold out, each a task of the dataset given by its instruction or
            (MetaWorld) its short name, e.g. ``assembly``.

    Returns:
        ``{"train": [...], "val": [...], "test_ood": [...]}``, each sorted.
    """
    from procvlm.sim.tasks import resolve_task

    tasks = sorted(set(episode_tasks.values()))
    ood_tasks = [resolve_task(t, tasks) for t in ood_tasks]
    ood = sorted(e for e, t in episode_tasks.items() if t in set(ood_tasks))
    ind = sorted(e for e, t in episode_tasks.items() if t not in set(ood_tasks))
    if not ind:
        raise ProcvlmError(f"OOD tasks {list(ood_tasks)} leave no episode for training: "
                           "hold out fewer tasks")
    n_val = int(round(len(ind) * val_fraction))
    if val_fraction > 0 and len(ind) >= 2:
        n_val = min(max(n_val, 1), len(ind) - 1)
    rng = np.random.default_rng([seed, 0x5EED])
    val = sorted(int(e) for e in rng.permutation(ind)[:n_val])
    train = sorted(set(ind) - set(val))
    return {"train": train, "val": val, "test_ood": ood}


def anchor_frames(rng: np.random.Generator, num_frames: int, n: int) -> list[int]:
    """``n`` current frames: the last frame plus ``n - 1`` others drawn without replacement."""
    last = num_frames - 1
    k = min(n - 1, last)
    others = rng.choice(last, size=k, replace=False) if k > 0 else np.empty(0, dtype=np.int64)
    return sorted(int(t) for t in others) + [last]


def episode_samples(ep: EpisodeInput, config: VQAConfig) -> list[dict[str, Any]]:
    """All samples of one episode, deterministic from ``(config.seed, ep.episode_index)``.

    A frame whose label progress is 1 counts as finished (no remaining action), so progress and
    planning answers never list actions at 100%.

    Returns:
        Samples with ``images`` (relative paths) and metadata, in anchor then family order.
    """
    rng = np.random.default_rng([config.seed, ep.episode_index])
    samples = []
    for t in anchor_frames(rng, len(ep.frames), config.samples_per_episode):
        # progress 1 means finished even where the labels still name the step that just
        # completed (the last frame of the last sub-step): the answer must not contradict it
        remaining = [] if ep.progress[t] >= 1.0 - 1e-9 else list(ep.remaining[t])
        for family in config.families:
            if family == "progress":
                s = progress_sample(ep.task, sample_window(rng, t, config.window), remaining,
                                    float(ep.progress[t]))
            elif family == "planning":
                variant = "next" if rng.random() < 0.5 else "remaining"
                s = planning_sample(ep.task, sample_window(rng, t, config.window), remaining,
                                    variant)
            else:
                task = ep.task if rng.random() < 0.5 else None
                s = segmentation_sample(task, segmentation_frames(rng, t), ep.subtask)
            samples.append(_finish(s, ep, t))
    return samples


def _finish(sample: dict[str, Any], ep: EpisodeInput, t: int) -> dict[str, Any]:
    frames = sample["frames"]
    return {"messages": sample["messages"],
            "images": [image_relpath(ep.episode_index, f) for f in frames],
            "family": sample["family"], "variant": sample["variant"], "task": ep.task,
            "episode_index": int(ep.episode_index), "frame_index": int(t),
            "frame_indices": frames, "progress": round(float(ep.progress[t]), 6)}


def write_images(ep: EpisodeInput, frame_indices: Iterable[int], out: Path, quality: int
                 ) -> int:
    """Save the episode's frames as JPEGs under ``out/images``, skipping those already there.

    Returns:
        The number of JPEGs written.
    """
    from PIL import Image

    wanted = sorted({int(f) for f in frame_indices})
    todo = [f for f in wanted if not (out / image_relpath(ep.episode_index, f)).exists()]
    if not todo:
        return 0
    pixels = np.asarray(ep.frames[np.asarray(todo, dtype=np.int64)])  # (N, H, W, 3)
    for f, img in zip(todo, pixels):
        with atomic_path(out / image_relpath(ep.episode_index, f)) as tmp:
            Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8)).save(
                tmp, format="JPEG", quality=quality)
    return len(todo)


def dataset_info(splits: Iterable[str]) -> dict[str, Any]:
    """LLaMA-Factory's ``dataset_info.json`` entries (``procvqa_<split>``) for the JSONL files."""
    return {f"procvqa_{s}": {
        "file_name": f"{s}.jsonl", "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                 "assistant_tag": "assistant"},
    } for s in splits}


def write_vqa(episodes: Iterable[EpisodeInput], out: str | Path, config: VQAConfig,
              splits: dict[str, list[int]], source: str = "", camera: str | None = None,
              scheme: str | None = None) -> Path:
    """Write images, the JSONL splits, ``dataset_info.json`` and ``manifest.json``.

    Args:
        episodes: the labelled episodes (any order; episodes in no split are skipped).
        out: the ProcVQA folder.
        config: what to build.
        splits: split name -> episode indices (from ``split_episodes``).
        source: where the episodes came from (recorded in the manifest).
        camera: the camera whose frames are shown (recorded; training copies it to the model).
        scheme: the label scheme of the progress targets (recorded likewise).

    Returns:
        ``out``.
    """
    out = Path(out)
    where = {e: s for s, eps in splits.items() for e in eps}
    lines: dict[str, dict[int, list[str]]] = {s: {} for s in splits}
    for ep in episodes:
        split = where.get(ep.episode_index)
        if split is None:
            continue
        samples = episode_samples(ep, config)
        written = write_images(ep, (f for s in samples for f in s["frame_indices"]), out,
                               config.jpeg_quality)
        logger.debug("episode %d: %d samples, %d new JPEGs", ep.episode_index, len(samples),
                     written)
        lines[split][ep.episode_index] = [json.dumps(s, ensure_ascii=False) for s in samples]
    names = [s for s in SPLITS if s in splits and (s != "test_ood" or splits[s])]
    counts = {}
    for s in names:
        rows = [line for e in sorted(lines[s]) for line in lines[s][e]]
        write_text(out / f"{s}.jsonl", "".join(line + "\n" for line in rows))
        counts[s] = {"episodes": len(lines[s]), "samples": len(rows)}
    write_json(out / "dataset_info.json", dataset_info(names))
    write_json(out / "manifest.json", {"source": source, "camera": camera, "scheme": scheme,
                                       "config": asdict(config),
                                       "splits": {s: splits[s] for s in names},
                                       "counts": counts})
    logger.info("ProcVQA: %s", ", ".join(f"{s} {c['samples']} samples" for s, c in counts.items()))
    return out


def _dataset_episodes(ds: Any, table: Any, indices: Sequence[int], scheme: str | None,
                      camera: str | None) -> Iterable[EpisodeInput]:
    from procvlm.labels import episode_labels

    cam = choose_camera(ds.cameras, camera)
    for i in indices:
        ep = ds.episode(i, cameras=[cam])
        lab = episode_labels(table, i, scheme)
        yield EpisodeInput(episode_index=int(i), task=ep.task, frames=ep.frames[cam],
                           progress=np.asarray(lab.progress, dtype=np.float64),
                           remaining=lab.remaining, subtask=list(lab.subtask))


def build_vqa(root: str | Path, out: str | Path, *, seed: int = 0, val_fraction: float = 0.1,
              ood_tasks: Sequence[str] = (), samples_per_episode: int = 8,
              scheme: str | None = None, camera: str | None = None,
              families: Sequence[str] = FAMILIES, progress_bar: bool = False) -> Path:
    """Derive ProcVQA (progress, segmentation, planning samples) from a labelled dataset.

    Args:
        root: a dataset ``procvlm.data.open_dataset`` reads, labelled by ``procvlm label``.
        out: the ProcVQA folder to write (see the module docstring for its layout).
        seed: seed of every random choice; the same seed gives byte-identical JSONL.
        val_fraction: fraction of in-distribution episodes in ``val.jsonl``.
        ood_tasks: tasks held out whole into ``test_ood.jsonl``.
        samples_per_episode: current frames per episode (one sample per family each).
        scheme: which label scheme's progress to teach (default: the scheme the dataset was
            labelled with; any of ``procvlm.labels.SCHEMES``, all stored in labels.parquet).
        camera: camera whose frames are shown (default: the dataset's first).
        families: sample families to emit.
        progress_bar: show a tqdm bar over episodes.

    Returns:
        ``out``.
    """
    from tqdm.auto import tqdm

    from procvlm.data import open_dataset

    config = VQAConfig(seed=seed, val_fraction=val_fraction, ood_tasks=tuple(ood_tasks),
                       samples_per_episode=samples_per_episode, families=tuple(families))
    ds = open_dataset(root)
    camera = choose_camera(ds.cameras, camera)
    from procvlm.labels import read_labels

    table = read_labels(root)
    indices = list(ds.episode_indices)
    episode_tasks = {i: ds.episode(i, cameras=[camera]).task for i in indices}
    splits = split_episodes(episode_tasks, seed, val_fraction, config.ood_tasks)
    episodes = tqdm(_dataset_episodes(ds, table, indices, scheme, camera), total=len(indices),
                    desc="vqa", unit="ep", disable=not progress_bar)
    main_scheme = json.loads((table.schema.metadata or {}).get(b"procvlm", b"{}")).get("scheme")
    return write_vqa(episodes, out, config, splits, source=str(root),
                     camera=camera, scheme=scheme or main_scheme)
