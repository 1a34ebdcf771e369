"""Trainer of the compact progress model on labelled episodes (CPU, minutes).

A run is a fixed number of optimisation steps (``TrainConfig.steps``, never a wall-clock
budget), so every model of a comparison trains the same number of steps on the same data
whatever the machine's load. ``CompactTrainer`` holds one run (model, optimizer, sampler,
counters); its ``fit`` is a plain loop: draw a batch, take a step, and at each epoch end validate
and write a checkpoint. Checkpoints are atomic and hold the optimizer state, the sampling
generator and the RNG, so ``resume=True`` continues exactly where the newest one left off; with
a fixed seed two runs give the same weights. The steps reached are recorded in the run folder
(``metrics.json``) and beside the model (``model/training.json``).

Process-wide torch settings (CPU threads, deterministic algorithms, the global RNG) are set for
the run by ``torch_settings`` and restored when it ends, however it ends.

The loss follows the model's head (``CompactConfig.head``): stage cross-entropy + within-step L1
+ overall progress L1 for ``"reason"``; the overall progress L1 alone for ``"direct"``. The stage
cross-entropy is class-balanced (``TrainConfig.stage_balance``): each class (plan position, or
"done") weighs ``frequency ** -stage_balance`` over the training frames, scaled so an average frame
weighs 1. Without it the "done" class, the ~10 frames after a success (2% of the frames), is never
predicted, and a successful episode ends no higher than one stuck in its last step.
``TrainConfig.end_weight`` weighs the last ``end_frames`` frames of every episode (a success's
final state, a failure's last state) ``1 + end_weight`` in every term: the final progress is what
tells a success from a failure.

``TrainConfig.ema`` keeps an exponential moving average of the weights beside the trained ones
(``torch.optim.swa_utils.AveragedModel``): validation and the saved ``model/`` then use the
average, and checkpoints hold both, so a resumed run averages on as the uninterrupted one does.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from procvlm._io import atomic_path, write_json
from procvlm.errors import ProcvlmError
from procvlm.eval.metrics import auroc, stall_drift, value_order_correlation
from procvlm.models.compact.configuration_compact import CompactConfig
from procvlm.models.compact.modeling_compact import CompactOutput, CompactProgressModel
from procvlm.models.compact.processor_compact import AugmentConfig, augment_windows
from procvlm.models.compact.text import TextEncoder
from procvlm.training.data import Corpus, check_scheme, split_episodes

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"


@dataclass(frozen=True)
class TrainConfig:
    """How to train the compact model (the model itself is ``CompactConfig``)."""

    scheme: str = field(default="procvlm", metadata={"help": "label scheme to learn"})
    steps: int = field(default=1500, metadata={"help": "optimiser steps of the run"})
    batch_size: int = field(default=64, metadata={"help": "windows per step"})
    lr: float = field(default=2e-3, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up steps"})
    val_fraction: float = field(default=0.2, metadata={"help": "episodes held out"})
    seed: int = field(default=0, metadata={"help": "seed of init, split and sampling"})
    threads: int = field(default=2, metadata={"help": "torch CPU threads during the run"})
    stage_weight: float = field(default=1.0, metadata={"help": "weight of the stage CE"})
    within_weight: float = field(default=1.0, metadata={"help": "weight of within-step L1"})
    progress_weight: float = field(default=2.0, metadata={"help": "weight of progress L1"})
    stage_balance: float = field(default=0.5, metadata={
        "help": "stage CE class weights: frequency ** -this over the training frames (0: none)"})
    end_weight: float = field(default=0.0, metadata={
        "help": "extra loss weight of each episode's last end_frames frames (they weigh 1 + "
                "this): where a success is told from a failure"})
    end_frames: int = field(default=10, metadata={"help": "frames at an episode's end that "
                                                          "end_weight weighs"})
    ema: float = field(default=0.0, metadata={
        "help": "decay of an exponential moving average of the weights, which validation and "
                "the saved model use, e.g. 0.999 (0: off, the trained weights)"})
    augment: bool = field(default=True, metadata={"help": "augment training windows"})
    augmentation: AugmentConfig = field(default_factory=AugmentConfig, metadata={
        "help": "amounts of the augmentation (processor_compact.AugmentConfig)"})
    keep_checkpoints: int = field(default=2, metadata={"help": "checkpoints kept on disk"})
    eval_batch_size: int = field(default=256, metadata={"help": "windows per eval forward"})

    def __post_init__(self) -> None:
        check_scheme(self.scheme)
        if self.steps < 1:
            raise ProcvlmError(f"steps={self.steps}: need at least 1 optimiser step")
        if self.batch_size < 1 or self.lr <= 0 or self.threads < 1:
            raise ProcvlmError(f"batch_size={self.batch_size}, lr={self.lr}, "
                               f"threads={self.threads}: need positive values")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ProcvlmError(f"val_fraction={self.val_fraction}: need 0 <= fraction < 1")
        if not 0.0 <= self.stage_balance <= 1.0:
            raise ProcvlmError(f"stage_balance={self.stage_balance}: need 0 (plain CE) to 1 "
                               "(inverse class frequency)")
        if self.end_weight < 0 or self.end_frames < 1:
            raise ProcvlmError(f"end_weight={self.end_weight}, end_frames={self.end_frames}: "
                               "need end_weight >= 0 and end_frames >= 1")
        if not 0.0 <= self.ema < 1.0:
            raise ProcvlmError(f"ema={self.ema}: need 0 (off) <= ema < 1, e.g. 0.999")
        if self.keep_checkpoints < 1:
            raise ProcvlmError(f"keep_checkpoints={self.keep_checkpoints}: need >= 1")


@dataclass
class TrainState:
    """Everything that changes during training and goes into a checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_pos: int = 0
    perm: torch.Tensor | None = None
    elapsed: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainResult:
    """What ``train_compact`` returns: the trained model and its final validation metrics."""

    model: CompactProgressModel
    metrics: dict[str, Any]
    model_dir: Path


@contextlib.contextmanager
def torch_settings(threads: int, seed: int) -> Iterator[None]:
    """Set torch's CPU threads, deterministic algorithms and global seed for a run; restore
    the previous threads, determinism flags and global RNG state on exit."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(), torch.get_rng_state())
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1], warn_only=saved[2])
        torch.set_rng_state(saved[3])


# ---------------------------------------------------------------- budgets and batches


def compute_budgets(corpus: Corpus, episodes: list[int]) -> dict[str, list[float]]:
    """Per-task cumulative step budgets: mean label progress where each stage starts.

    Stage 0 starts at 0 and "done" at 1; stages no episode reached fall back to uniform
    budgets; the result is made non-decreasing.
    """
    starts: dict[str, list[list[float]]] = {}
    for e in episodes:
        task, k = corpus.tasks[e], len(corpus.plans[e])
        rows = starts.setdefault(task, [[] for _ in range(k + 1)])
        if len(rows) != k + 1:
            continue  # same task with another plan length: keep the first plan's table
        stage = corpus.stage[corpus.offsets[e]:corpus.offsets[e + 1]]
        prog = corpus.progress[corpus.offsets[e]:corpus.offsets[e + 1]]
        for j in range(1, k):
            hit = np.flatnonzero(stage == j)
            if len(hit):
                rows[j].append(float(prog[hit[0]]))
    table = {}
    for task, rows in starts.items():
        k = len(rows) - 1
        b = np.linspace(0.0, 1.0, k + 1)
        for j in range(1, k):
            if rows[j]:
                b[j] = np.mean(rows[j])
        table[task] = np.clip(np.maximum.accumulate(b), 0.0, 1.0).round(6).tolist()
    return table


def training_plans(corpus: Corpus, episodes: list[int]) -> dict[str, list[str]]:
    """Task -> plan of the training episodes (the first plan seen for a task)."""
    plans: dict[str, list[str]] = {}
    for e in episodes:
        plans.setdefault(corpus.tasks[e], list(corpus.plans[e]))
    return plans


def stage_classes(corpus: Corpus, ids: np.ndarray, max_plan_len: int) -> np.ndarray:
    """Stage class of each frame: its plan position, ``max_plan_len`` for "done", -1 unlabelled."""
    k = np.array([len(p) for p in corpus.plans])[corpus.episode_of(ids)]
    stage = corpus.stage[ids]
    return np.where(stage < 0, -1, np.where(stage >= k, max_plan_len, stage))


def stage_class_weights(corpus: Corpus, episodes: list[int], max_plan_len: int,
                        balance: float) -> np.ndarray:
    """(max_plan_len + 1,) stage CE weights per class (plan positions, then "done"):
    ``frequency ** -balance`` over the labelled frames of ``episodes``, scaled so that the
    average labelled frame weighs 1; 1 for classes that never occur (they are no target)."""
    cls = stage_classes(corpus, corpus.frame_ids(episodes), max_plan_len)
    counts = np.bincount(cls[cls >= 0], minlength=max_plan_len + 1).astype(np.float64)
    if balance == 0 or counts.sum() == 0:
        return np.ones(max_plan_len + 1, np.float32)
    freq = counts / counts.sum()
    w = np.where(counts > 0, np.maximum(freq, 1e-12) ** -balance, 1.0)
    return (w / float((freq * w).sum())).astype(np.float32)


def end_weights(corpus: Corpus, ids: np.ndarray, weight: float, frames: int) -> np.ndarray:
    """(B,) loss weight of each frame: ``1 + weight`` for the last ``frames`` frames of its
    episode (a success's final state, a failure's last state), 1 elsewhere."""
    ends = corpus.offsets[corpus.episode_of(ids) + 1]
    return np.where(ends - ids <= frames, 1.0 + weight, 1.0).astype(np.float32)


def make_batch(model: CompactProgressModel, corpus: Corpus, ids: np.ndarray,
               augment: AugmentConfig | None = None, gen: torch.Generator | None = None,
               class_weights: np.ndarray | None = None,
               frame_weights: np.ndarray | None = None) -> tuple[torch.Tensor, Any, dict]:
    """Windows, text inputs and targets of the given global frame ids; windows are augmented
    with ``augment`` (drawing from ``gen``) when it is given; ``class_weights``
    (``stage_class_weights``) give each frame its stage CE weight (1 when None);
    ``frame_weights`` (B,) weigh every loss term of each frame (``end_weights``; none when
    None)."""
    cfg = model.config
    eps = corpus.episode_of(ids)
    idx = corpus.windows(ids, cfg.window, cfg.stride, cfg.anchor)
    frames = torch.from_numpy(corpus.frames[idx])
    if augment is not None:
        if gen is None:
            raise ProcvlmError("make_batch(augment=...) needs gen=torch.Generator()")
        frames = augment_windows(frames, gen, augment, anchor=cfg.anchor)
    inputs = model.plan_inputs([corpus.tasks[e] for e in eps], [corpus.plans[e] for e in eps])
    stage = torch.from_numpy(corpus.stage[ids])
    progress = torch.from_numpy(corpus.progress[ids])
    k = inputs.lengths
    kmax = inputs.step_mask.shape[1]
    in_step = (stage >= 0) & (stage < k)
    s = stage.clamp(0, kmax - 1)
    lo = inputs.bounds.gather(1, s[:, None]).squeeze(1)
    hi = inputs.bounds.gather(1, (s + 1)[:, None]).squeeze(1)
    within = ((progress - lo) / (hi - lo).clamp(min=1e-6)).clamp(0, 1)
    cls = stage_classes(corpus, ids, cfg.max_plan_len)
    weight = (np.ones(len(ids), np.float32) if class_weights is None
              else np.asarray(class_weights, np.float32)[np.maximum(cls, 0)])
    targets = {"stage": stage, "column": torch.where(stage >= k, torch.full_like(stage, kmax), s),
               "in_step": in_step, "within": within, "progress": progress,
               "stage_weight": torch.from_numpy(weight)}
    if frame_weights is not None:
        targets["frame_weight"] = torch.from_numpy(np.asarray(frame_weights, np.float32))
        targets["stage_weight"] = targets["stage_weight"] * targets["frame_weight"]
    return frames, inputs, targets


def compute_loss(out: CompactOutput, targets: dict, tcfg: TrainConfig
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """Stage cross-entropy (each frame weighted by ``targets["stage_weight"]``, a weighted
    mean) + within-step L1 (at the labelled step) + overall progress L1; the progress L1 alone
    for a direct head (``out.stage_logits is None``). With ``targets["frame_weight"]`` the L1
    terms are weighted means too (the stage weights already hold it)."""
    fw = targets.get("frame_weight")
    if fw is None:
        prog = F.l1_loss(out.progress, targets["progress"])
    else:
        prog = ((out.progress - targets["progress"]).abs() * fw).sum() / fw.sum()
    if out.stage_logits is None:
        loss = tcfg.progress_weight * prog
        return loss, {"loss": float(loss.detach()), "progress_l1": float(prog.detach())}
    labelled = targets["stage"] >= 0
    if labelled.any():
        w = targets["stage_weight"][labelled]
        per_frame = F.cross_entropy(out.stage_logits[labelled], targets["column"][labelled],
                                    reduction="none")
        ce = (per_frame * w).sum() / w.sum().clamp(min=1e-12)
    else:
        ce = out.progress.sum() * 0
    col = targets["column"].clamp(max=out.within.shape[1] - 1)
    q = out.within.gather(1, col[:, None]).squeeze(1)
    mask = targets["in_step"].float() * (1.0 if fw is None else fw)
    within = ((q - targets["within"]).abs() * mask).sum() / mask.sum().clamp(min=1)
    loss = tcfg.stage_weight * ce + tcfg.within_weight * within + tcfg.progress_weight * prog
    parts = {"loss": loss, "stage_ce": ce, "within_l1": within, "progress_l1": prog}
    return loss, {k: float(v.detach()) for k, v in parts.items()}


# ---------------------------------------------------------------- validation


@torch.inference_mode()
def predict_episodes(model: CompactProgressModel, corpus: Corpus, episodes: list[int],
                     batch_size: int = 256) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Corpus episode -> (progress (T,), stage (T,)) from the cached frames."""
    was_training = model.training
    model.eval()
    out = {}
    for e in episodes:
        ids = np.arange(corpus.offsets[e], corpus.offsets[e + 1])
        prog, stage = [], []
        for i in range(0, len(ids), batch_size):
            frames, inputs, _ = make_batch(model, corpus, ids[i:i + batch_size])
            scores = model.score_windows(frames, inputs)
            stage.append(scores.stage)
            prog.append(scores.progress)
        out[e] = (np.concatenate(prog), np.concatenate(stage))
    model.train(was_training)
    return out


def _stall_drift(corpus: Corpus, preds: dict) -> float | None:
    """Mean progress gained across the still stretches (stall and hesitation events)."""
    drifts = []
    for e, (p, _) in preds.items():
        events = (corpus.meta[e] or {}).get("events", []) or []
        still = [(int(ev["start"]), int(ev["end"])) for ev in events
                 if isinstance(ev, dict) and ev.get("type") in ("stall", "hesitation")]
        if still:
            drifts.append(stall_drift(p, still))
    return float(np.mean(drifts)) if drifts else None


def evaluate(model: CompactProgressModel, corpus: Corpus, episodes: list[int],
             batch_size: int = 256) -> dict[str, Any]:
    """Validation metrics: progress MAE against the labels, stage accuracy (None for a direct
    head), VOC on successful episodes, success/failure AUROC of final progress, drift over
    still stretches."""
    if not episodes:
        return {}
    preds = predict_episodes(model, corpus, episodes, batch_size)
    err, acc, voc, final = [], [], [], {0: [], 1: []}
    for e, (p, s) in preds.items():
        sl = slice(corpus.offsets[e], corpus.offsets[e + 1])
        err.append(np.abs(p - corpus.progress[sl]))
        lab = corpus.stage[sl]
        acc.append((s == lab)[lab >= 0])
        if corpus.success[e] == 1:
            voc.append(value_order_correlation(p))
        if corpus.success[e] in (0, 1):
            final[int(corpus.success[e])].append(float(p[-1]))
    reasons = model.config.head == "reason"
    return {"mae": float(np.concatenate(err).mean()),
            "stage_acc": float(np.concatenate(acc).mean()) if reasons else None,
            "voc": float(np.mean(voc)) if voc else None,
            "auroc": (auroc(final[1] + final[0], [True] * len(final[1]) + [False] * len(final[0]))
                      if final[0] and final[1] else None),
            "stall_drift": _stall_drift(corpus, preds),
            "final_progress_success": float(np.mean(final[1])) if final[1] else None,
            "final_progress_failure": float(np.mean(final[0])) if final[0] else None,
            "episodes": len(episodes)}


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(run: Path, model: CompactProgressModel, opt: torch.optim.Optimizer,
                    state: TrainState, gen: torch.Generator, keep: int,
                    ema: AveragedModel | None = None) -> Path:
    """Write ``run/checkpoints/step_<7-digit step>.pt`` atomically and prune old ones (the
    trained weights, and with ``ema`` their moving average too)."""
    path = run / CHECKPOINT_DIR / f"step_{state.step:07d}.pt"
    payload = {"model": model.net.state_dict(), "optim": opt.state_dict(),
               "state": {k: v for k, v in asdict(state).items() if k != "perm"},
               "perm": state.perm, "gen": gen.get_state(), "torch_rng": torch.get_rng_state(),
               "model_config": model.config.to_dict()}
    if ema is not None:
        payload["ema"] = ema.state_dict()
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    for old in sorted((run / CHECKPOINT_DIR).glob("step_*.pt"))[:-keep]:
        old.unlink()
    return path


def latest_checkpoint(run: Path) -> Path | None:
    """Newest checkpoint of a run folder, or None."""
    found = sorted((run / CHECKPOINT_DIR).glob("step_*.pt"))
    return found[-1] if found else None


def load_checkpoint(path: Path, model: CompactProgressModel, opt: torch.optim.Optimizer,
                    gen: torch.Generator, ema: AveragedModel | None = None) -> TrainState:
    """Restore weights (and with ``ema`` their moving average), optimizer, sampler and RNG
    from ``path``; returns the train state."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload["model_config"] != model.config.to_dict():
        raise ProcvlmError(f"{path} was trained with another model config: resume with the "
                           "same options, or use a new --out folder")
    if (ema is None) != ("ema" not in payload):
        had = "with" if "ema" in payload else "without"
        raise ProcvlmError(f"{path} was trained {had} a moving average of the weights (--ema): "
                           "resume with the same options, or use a new --out folder")
    if ema is not None:
        ema.load_state_dict(payload["ema"])
    model.net.load_state_dict(payload["model"])
    opt.load_state_dict(payload["optim"])
    gen.set_state(payload["gen"])
    torch.set_rng_state(payload["torch_rng"])
    known = {f.name for f in fields(TrainState)} - {"perm"}
    return TrainState(**{k: v for k, v in payload["state"].items() if k in known},
                      perm=payload["perm"])



# ---------------------------------------------------------------- the loop


def lr_at(step: int, total: int, tcfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    warm = min(1.0, (step + 1) / max(1, tcfg.warmup_steps))
    frac = min(1.0, step / max(1, total))
    return tcfg.lr * warm * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))


def train_step(model: CompactProgressModel, opt: torch.optim.Optimizer, corpus: Corpus,
               ids: np.ndarray, lr: float, tcfg: TrainConfig, gen: torch.Generator,
               class_weights: np.ndarray | None = None) -> dict[str, float]:
    """One optimisation step on the windows of ``ids`` (stage CE weighted by
    ``class_weights``, see ``stage_class_weights``)."""
    model.train()
    augment = tcfg.augmentation if tcfg.augment else None
    ends = (end_weights(corpus, ids, tcfg.end_weight, tcfg.end_frames)
            if tcfg.end_weight > 0 else None)
    frames, inputs, targets = make_batch(model, corpus, ids, augment, gen, class_weights, ends)
    loss, parts = compute_loss(model(frames, inputs), targets, tcfg)
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.net.parameters(), 1.0)
    opt.step()
    return parts


def build_model(corpus: Corpus, train: list[int], model_config: CompactConfig,
                text_encoder: TextEncoder | None = None) -> CompactProgressModel:
    """A fresh model with the budget table and plans of the training episodes."""
    if model_config.members != 1:
        raise ProcvlmError(f"CompactConfig.members={model_config.members}: train one network "
                           "per run and join the trained runs with `procvlm ensemble`")
    return CompactProgressModel(model_config, compute_budgets(corpus, train),
                                training_plans(corpus, train), text_encoder)


class CompactTrainer:
    """One training run of the compact model in a run folder.

    Build it inside ``torch_settings`` (the model's initial weights come from the global seed).

    Args:
        corpus: decoded episodes and labels.
        run: the run folder (checkpoints, ``train_config.json``, ``metrics.json``, ``model/``).
        model_config: the model, with ``camera`` and ``scheme`` recorded.
        train_config: the training options.
        text_encoder: the cached MiniLM encoder (default: a new one).
    """

    def __init__(self, corpus: Corpus, run: Path, model_config: CompactConfig,
                 train_config: TrainConfig, text_encoder: TextEncoder | None = None) -> None:
        self.corpus, self.run, self.tcfg = corpus, run, train_config
        self.train_eps, self.val_eps = split_episodes(corpus, train_config.val_fraction,
                                                      train_config.seed)
        self.train_ids = corpus.frame_ids(self.train_eps)
        self.batch_size = min(train_config.batch_size, len(self.train_ids))
        self.per_epoch = max(1, len(self.train_ids) // self.batch_size)
        self.model = build_model(corpus, self.train_eps, model_config, text_encoder)
        self.class_weights = stage_class_weights(corpus, self.train_eps,
                                                 model_config.max_plan_len,
                                                 train_config.stage_balance)
        self.opt = torch.optim.AdamW(self.model.net.parameters(), lr=train_config.lr,
                                     weight_decay=train_config.weight_decay)
        self.ema = (AveragedModel(self.model.net, multi_avg_fn=get_ema_multi_avg_fn(
            train_config.ema), use_buffers=True) if train_config.ema > 0 else None)
        self.gen = torch.Generator().manual_seed(train_config.seed + 1)
        self.state = TrainState()
        self.last: dict[str, float] = {}  # loss parts of the latest step
        self._clock = time.monotonic()

    def resume(self) -> None:
        """Continue from the newest checkpoint of the run folder, if there is one."""
        ckpt = latest_checkpoint(self.run)
        if ckpt is None:
            return
        self.state = load_checkpoint(ckpt, self.model, self.opt, self.gen, self.ema)
        if self.state.step > self.tcfg.steps:
            raise ProcvlmError(f"{ckpt} is at step {self.state.step}, past steps="
                               f"{self.tcfg.steps}: pass at least that many steps, or a new "
                               "--out folder")
        logger.info("resuming from %s (step %d of %d)", ckpt, self.state.step, self.tcfg.steps)

    def next_batch(self) -> np.ndarray:
        """Global frame ids of the next batch; a new epoch draws a new permutation."""
        s, bs = self.state, self.batch_size
        if s.perm is None or s.batch_pos >= self.per_epoch:
            s.epoch, s.batch_pos = s.epoch + 1, 0
            s.perm = torch.randperm(len(self.train_ids), generator=self.gen)
        return self.train_ids[s.perm[s.batch_pos * bs:(s.batch_pos + 1) * bs].numpy()]

    def fit(self, show_progress: bool = True) -> None:
        """Train until ``steps``; validate and checkpoint at every epoch end, and checkpoint
        before re-raising a KeyboardInterrupt."""
        total = self.tcfg.steps
        bar = tqdm(total=total, initial=self.state.step, desc="training",
                   disable=not show_progress)
        try:
            while self.state.step < total:
                lr = lr_at(self.state.step, total, self.tcfg)
                self.last = train_step(self.model, self.opt, self.corpus, self.next_batch(), lr,
                                       self.tcfg, self.gen, self.class_weights)
                if self.ema is not None:
                    self.ema.update_parameters(self.model.net)
                self.state.step += 1
                self.state.batch_pos += 1
                bar.update(1)
                bar.set_postfix(loss=f"{self.last['loss']:.3f}", refresh=False)
                if self.state.batch_pos == self.per_epoch and self.state.step < total:
                    self.record(self.validate())
                    self.checkpoint()
        except KeyboardInterrupt:
            self.checkpoint()
            raise
        finally:
            bar.close()

    @contextlib.contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """The moving average of the weights in the model while the block runs (nothing
        changes without ``TrainConfig.ema``); the trained weights are put back after it."""
        if self.ema is None:
            yield
            return
        trained = {k: v.clone() for k, v in self.model.net.state_dict().items()}
        self.model.net.load_state_dict(self.ema.module.state_dict())
        try:
            yield
        finally:
            self.model.net.load_state_dict(trained)

    def validate(self) -> dict[str, Any]:
        """Metrics of the model (its moving average with ``TrainConfig.ema``) on the
        validation episodes."""
        with self.averaged_weights():
            return evaluate(self.model, self.corpus, self.val_eps, self.tcfg.eval_batch_size)

    def record(self, metrics: dict[str, Any], log: bool = True) -> None:
        """Append the latest losses and validation metrics to the history; log them unless
        ``log`` is False (the final metrics, which the command reports once)."""
        row = {"epoch": self.state.epoch, "step": self.state.step, **self.last,
               **{f"val_{k}": v for k, v in metrics.items()}}
        self.state.history.append(row)
        if log:
            logger.info("epoch %d step %d: %s", self.state.epoch, self.state.step,
                        {k: round(v, 4) for k, v in row.items() if isinstance(v, float)})

    def checkpoint(self) -> Path:
        """Write a checkpoint of the current state (with the time spent so far)."""
        now = time.monotonic()
        self.state.elapsed += now - self._clock
        self._clock = now
        return save_checkpoint(self.run, self.model, self.opt, self.state, self.gen,
                               self.tcfg.keep_checkpoints, self.ema)

    def training_record(self, dataset: str | None) -> dict[str, Any]:
        """What ``model/training.json`` says about this run."""
        ep = self.corpus.episode_index
        return {"steps": self.state.step, "epochs": self.state.epoch,
                "scheme": self.tcfg.scheme, "head": self.model.config.head,
                "camera": self.model.config.camera, "seed": self.tcfg.seed,
                "batch_size": self.batch_size, "augment": self.tcfg.augment,
                "ema": self.tcfg.ema,
                "dataset": dataset, "train_frames": int(len(self.train_ids)),
                "train_episodes": ep[self.train_eps].tolist(),
                "val_episodes": ep[self.val_eps].tolist()}

    def finish(self, dataset: str | None = None) -> TrainResult:
        """Final validation and checkpoint; write ``model/`` (the moving average of the
        weights with ``TrainConfig.ema``) and ``metrics.json``."""
        final = self.validate()
        if not self.state.history or self.state.history[-1]["step"] != self.state.step:
            self.record(final, log=False)
        self.checkpoint()
        if self.ema is not None:
            self.model.net.load_state_dict(self.ema.module.state_dict())
        self.model.training_record = self.training_record(dataset)
        self.model.eval()
        self.model.save_pretrained(self.run / "model")
        metrics = {"val": final, "steps": self.state.step, "epochs": self.state.epoch,
                   "elapsed_s": round(self.state.elapsed, 1), "scheme": self.tcfg.scheme,
                   "head": self.model.config.head, "train_frames": int(len(self.train_ids)),
                   "val_episodes": len(self.val_eps), "history": self.state.history}
        write_json(self.run / "metrics.json", metrics)
        logger.info("model written to %s after %d steps", self.run / "model", self.state.step)
        return TrainResult(self.model, metrics, self.run / "model")


def _recorded_config(corpus: Corpus, mcfg: CompactConfig, tcfg: TrainConfig) -> CompactConfig:
    """The model config with the corpus's camera and the label scheme recorded."""
    if mcfg.image_size != corpus.image_size:
        raise ProcvlmError(f"model image_size {mcfg.image_size} != corpus frames "
                           f"{corpus.image_size}: decode the corpus at the model's size")
    if mcfg.scheme not in (None, tcfg.scheme):
        raise ProcvlmError(f"model config says scheme {mcfg.scheme!r} but the run learns "
                           f"{tcfg.scheme!r}: leave CompactConfig.scheme unset")
    if mcfg.camera not in (None, corpus.camera):
        raise ProcvlmError(f"model config says camera {mcfg.camera!r} but the corpus frames "
                           f"come from {corpus.camera!r}: leave CompactConfig.camera unset")
    return replace(mcfg, camera=corpus.camera, scheme=tcfg.scheme)


def train_compact(corpus: Corpus, out: str | Path, model_config: CompactConfig | None = None,
                  train_config: TrainConfig | None = None, *, resume: bool = False,
                  text_encoder: TextEncoder | None = None, show_progress: bool = True,
                  dataset: str | None = None) -> TrainResult:
    """Train the compact model on a corpus; write checkpoints, ``model/`` and ``metrics.json``.

    Args:
        corpus: decoded episodes and labels (``load_corpus`` / ``corpus_from_episodes``).
        out: the run folder.
        model_config: model hyper-parameters (its image size must match the corpus); the
            corpus's camera and the scheme are recorded in the saved ``config.json``.
        train_config: training options (``steps`` is the whole budget).
        resume: continue from the newest checkpoint in ``out`` (fresh start if none).
        text_encoder: the cached MiniLM encoder to use (default: a new one).
        show_progress: draw a tqdm bar.
        dataset: where the corpus came from, recorded in ``model/training.json``.
    """
    tcfg = train_config or TrainConfig()
    mcfg = _recorded_config(corpus, model_config or CompactConfig(image_size=corpus.image_size),
                            tcfg)
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    with torch_settings(tcfg.threads, tcfg.seed):
        trainer = CompactTrainer(corpus, run, mcfg, tcfg, text_encoder)
        if resume:
            trainer.resume()
        write_json(run / "train_config.json", {
            "train": asdict(tcfg), "model": mcfg.to_dict(), "dataset": dataset,
            "train_episodes": corpus.episode_index[trainer.train_eps].tolist(),
            "val_episodes": corpus.episode_index[trainer.val_eps].tolist()})
        trainer.fit(show_progress)
        return trainer.finish(dataset)


def train_from_dataset(root: str | Path, out: str | Path, model_config: CompactConfig,
                       train_config: TrainConfig, *, resume: bool = False,
                       camera: str | None = None, show_progress: bool = True) -> TrainResult:
    """Decode a labelled dataset at the model's resolution, then ``train_compact``.

    Args:
        root: a labelled dataset (LeRobot v3 folder or HDF5 file, ``procvlm label``).
        out: the run folder.
        model_config: model hyper-parameters.
        train_config: training options.
        resume: continue from the newest checkpoint in ``out``.
        camera: the camera to train on (default: the dataset's first).
        show_progress: tqdm bars while decoding and training.
    """
    from procvlm.training.data import load_corpus

    corpus = load_corpus(root, train_config.scheme, model_config.image_size, camera,
                         show_progress)
    logger.info("corpus: %d episodes, %d frames at %dx%d from camera %s", corpus.num_episodes,
                len(corpus.frames), corpus.image_size, corpus.image_size, corpus.camera)
    return train_compact(corpus, out, model_config, train_config, resume=resume,
                         show_progress=show_progress, dataset=str(root))
