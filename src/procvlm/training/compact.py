"""Trainer of the compact progress model on labelled episodes (CPU, minutes).

The loop is split into step functions: budgets from labels, batch assembly, loss, one
optimisation step, validation, checkpoints. Checkpoints are written atomically at every epoch
end (and when the run stops early) and hold the optimizer state, the sampling generator and the
RNG, so ``resume=True`` continues exactly where the newest one left off. With a fixed seed and
a fixed number of steps, two runs give the same weights; ``max_minutes`` may end a run earlier
(the total step count is then fitted to the time budget after the first steps and recorded).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from procvlm._io import atomic_path, write_json
from procvlm.errors import ProcvlmError
from procvlm.eval.metrics import auroc, stall_drift, value_order_correlation
from procvlm.models.compact.configuration_compact import CompactConfig
from procvlm.models.compact.modeling_compact import CompactOutput, CompactProgressModel
from procvlm.models.compact.text import TextEncoder
from procvlm.training.data import Corpus, scheme_suffix, split_episodes

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
STILL_FRACTION = 0.15  # share of training windows made still (see augment_windows)


@dataclass(frozen=True)
class TrainConfig:
    """How to train the compact model (the model itself is ``CompactConfig``)."""

    scheme: str = field(default="procvlm", metadata={"help": "label scheme to learn"})
    epochs: float = field(default=40.0, metadata={"help": "passes over the training frames"})
    steps: int | None = field(default=None, metadata={"help": "optimiser steps (overrides epochs)"})
    batch_size: int = field(default=64, metadata={"help": "windows per step"})
    lr: float = field(default=2e-3, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=50, metadata={"help": "linear warm-up steps"})
    val_fraction: float = field(default=0.2, metadata={"help": "episodes held out"})
    max_minutes: float = field(default=10.0, metadata={"help": "wall-clock budget of the run"})
    seed: int = field(default=0, metadata={"help": "seed of init, split and sampling"})
    threads: int = field(default=2, metadata={"help": "torch CPU threads"})
    stage_weight: float = field(default=1.0, metadata={"help": "weight of the stage CE"})
    within_weight: float = field(default=1.0, metadata={"help": "weight of within-step L1"})
    progress_weight: float = field(default=2.0, metadata={"help": "weight of progress L1"})
    augment: bool = field(default=True, metadata={"help": "random shifts and brightness"})
    keep_checkpoints: int = field(default=2, metadata={"help": "checkpoints kept on disk"})
    eval_batch_size: int = field(default=256, metadata={"help": "windows per eval forward"})

    def __post_init__(self) -> None:
        scheme_suffix(self.scheme)
        if self.epochs <= 0 or (self.steps is not None and self.steps < 1):
            raise ProcvlmError(f"epochs={self.epochs}, steps={self.steps}: need positive values")
        if self.batch_size < 1 or self.lr <= 0 or self.max_minutes <= 0 or self.threads < 1:
            raise ProcvlmError("batch_size, lr, max_minutes and threads must be positive")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ProcvlmError(f"val_fraction={self.val_fraction}: need 0 <= fraction < 1")
        if self.keep_checkpoints < 1:
            raise ProcvlmError(f"keep_checkpoints={self.keep_checkpoints}: need >= 1")


@dataclass
class TrainState:
    """Everything that changes during training and goes into a checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_pos: int = 0
    perm: torch.Tensor | None = None
    total_steps: int = 0
    elapsed: float = 0.0
    fitted: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TrainResult:
    """What ``train_compact`` returns: the trained model and its final validation metrics."""

    model: CompactProgressModel
    metrics: dict[str, Any]
    model_dir: Path


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


def augment_windows(frames: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift each window by a few pixels (same shift for its frames), jitter brightness, and
    make some windows still."""
    b, _, s = frames.shape[:3]
    pad = max(1, s // 16)
    x = frames.permute(0, 1, 4, 2, 3).float()  # (B, W, 3, S, S)
    x = F.pad(x.flatten(0, 1), (pad, pad, pad, pad), mode="replicate").unflatten(0, (b, -1))
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).tolist()
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).tolist()
    x = torch.stack([x[i, :, :, dy[i]:dy[i] + s, dx[i]:dx[i] + s] for i in range(b)])
    gain = 1.0 + 0.2 * (torch.rand(b, 1, 1, 1, 1, generator=gen) - 0.5)
    # Stall augmentation: some windows become still (every frame = the newest one) with the
    # same label, so stillness alone never moves progress (otherwise the still windows at
    # episode starts teach "still -> progress 0" and stalls drift down).
    still = torch.rand(b, generator=gen) < STILL_FRACTION
    x[still] = x[still, -1:].expand(-1, x.shape[1], -1, -1, -1)
    return (x * gain).round().clamp(0, 255).to(torch.uint8).permute(0, 1, 3, 4, 2)


def make_batch(model: CompactProgressModel, corpus: Corpus, ids: np.ndarray,
               gen: torch.Generator | None = None) -> tuple[torch.Tensor, Any, dict]:
    """Windows, text inputs and targets of the given global frame ids."""
    cfg = model.config
    eps = corpus.episode_of(ids)
    frames = torch.from_numpy(corpus.frames[corpus.windows(ids, cfg.window, cfg.stride)])
    if gen is not None:
        frames = augment_windows(frames, gen)
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
    targets = {"stage": stage, "column": torch.where(stage >= k, torch.full_like(stage, kmax), s),
               "in_step": in_step, "within": within, "progress": progress}
    return frames, inputs, targets


def compute_loss(out: CompactOutput, targets: dict, tcfg: TrainConfig
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """Stage cross-entropy + within-step L1 (at the labelled step) + overall progress L1."""
    labelled = targets["stage"] >= 0
    ce = (F.cross_entropy(out.stage_logits[labelled], targets["column"][labelled])
          if labelled.any() else out.progress.sum() * 0)
    col = targets["column"].clamp(max=out.within.shape[1] - 1)
    q = out.within.gather(1, col[:, None]).squeeze(1)
    mask = targets["in_step"].float()
    within = ((q - targets["within"]).abs() * mask).sum() / mask.sum().clamp(min=1)
    prog = F.l1_loss(out.progress, targets["progress"])
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
            s, p = model._decode(model(frames, inputs), inputs.lengths)
            stage.append(s)
            prog.append(p)
        out[e] = (np.concatenate(prog), np.concatenate(stage))
    model.train(was_training)
    return out


def _stall_drift(corpus: Corpus, preds: dict) -> float | None:
    """Mean progress gained across the stall events recorded in episode meta."""
    drifts = []
    for e, (p, _) in preds.items():
        events = (corpus.meta[e] or {}).get("events", []) or []
        stalls = [(int(ev["start"]), int(ev["end"])) for ev in events
                  if isinstance(ev, dict) and ev.get("type") == "stall"]
        if stalls:
            drifts.append(stall_drift(p, stalls))
    return float(np.mean(drifts)) if drifts else None


def evaluate(model: CompactProgressModel, corpus: Corpus, episodes: list[int],
             batch_size: int = 256) -> dict[str, Any]:
    """Validation metrics: progress MAE, stage accuracy, VOC on successful episodes,
    success/failure AUROC of final progress, stall drift."""
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
    return {"mae": float(np.concatenate(err).mean()), "stage_acc": float(np.concatenate(acc).mean()),
            "voc": float(np.mean(voc)) if voc else None,
            "auroc": (auroc(final[1] + final[0], [True] * len(final[1]) + [False] * len(final[0]))
                      if final[0] and final[1] else None),
            "stall_drift": _stall_drift(corpus, preds),
            "final_progress_success": float(np.mean(final[1])) if final[1] else None,
            "final_progress_failure": float(np.mean(final[0])) if final[0] else None,
            "episodes": len(episodes)}


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(run: Path, model: CompactProgressModel, opt: torch.optim.Optimizer,
                    state: TrainState, gen: torch.Generator, keep: int) -> Path:
    """Write ``run/checkpoints/step_XXXXXXX.pt`` atomically and prune old ones."""
    path = run / CHECKPOINT_DIR / f"step_{state.step:07d}.pt"
    payload = {"model": model.net.state_dict(), "optim": opt.state_dict(),
               "state": {k: v for k, v in asdict(state).items() if k != "perm"},
               "perm": state.perm, "gen": gen.get_state(), "torch_rng": torch.get_rng_state(),
               "model_config": model.config.to_dict()}
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
                    gen: torch.Generator) -> TrainState:
    """Restore weights, optimizer, sampler and RNG from ``path``; returns the train state."""
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload["model_config"] != model.config.to_dict():
        raise ProcvlmError(f"{path} was trained with another model config: resume with the "
                           "same options, or use a new --out folder")
    model.net.load_state_dict(payload["model"])
    opt.load_state_dict(payload["optim"])
    gen.set_state(payload["gen"])
    torch.set_rng_state(payload["torch_rng"])
    return TrainState(**payload["state"], perm=payload["perm"])


# ---------------------------------------------------------------- the loop


def lr_at(step: int, total: int, tcfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    warm = min(1.0, (step + 1) / max(1, tcfg.warmup_steps))
    frac = min(1.0, step / max(1, total))
    return tcfg.lr * warm * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * frac)))


def train_step(model: CompactProgressModel, opt: torch.optim.Optimizer, corpus: Corpus,
               ids: np.ndarray, lr: float, tcfg: TrainConfig, gen: torch.Generator
               ) -> dict[str, float]:
    """One optimisation step on the windows of ``ids``."""
    model.train()
    frames, inputs, targets = make_batch(model, corpus, ids, gen if tcfg.augment else None)
    loss, parts = compute_loss(model(frames, inputs), targets, tcfg)
    for g in opt.param_groups:
        g["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.net.parameters(), 1.0)
    opt.step()
    return parts


def _fit_to_budget(state: TrainState, tcfg: TrainConfig, run_start: float,
                   marks: dict[int, float]) -> None:
    """Shrink the planned steps so the run ends within ``max_minutes``, from the speed of
    steps 10-50 of this invocation (the first steps pay for loading and warm-up)."""
    if state.fitted:
        return
    now = time.monotonic()
    marks.setdefault(state.step, now)
    first = min(marks)
    if state.step - first < 50:
        return
    state.fitted = True
    start = marks.get(first + 10, marks[first])
    rate = (state.step - first - 10) / max(now - start, 1e-6)  # steps per second
    left = tcfg.max_minutes * 60 * 0.92 - (state.elapsed + now - run_start)
    fit = state.step + int(max(left, 0.0) * rate)
    if fit < state.total_steps:
        logger.warning("%d steps would take longer than --max-minutes %g; training %d steps",
                       state.total_steps, tcfg.max_minutes, fit)
        state.total_steps = max(fit, state.step)


def _end_epoch(ctx: dict, state: TrainState, run_start: float) -> None:
    """Validate, log, and checkpoint at an epoch boundary."""
    metrics = evaluate(ctx["model"], ctx["corpus"], ctx["val"], ctx["tcfg"].eval_batch_size)
    state.history.append({"epoch": state.epoch, "step": state.step, **ctx["last"], **{
        f"val_{k}": v for k, v in metrics.items()}})
    logger.info("epoch %d step %d: %s", state.epoch, state.step,
                {k: round(v, 4) for k, v in state.history[-1].items()
                 if isinstance(v, float)})
    _checkpoint(ctx, state, run_start)


def _checkpoint(ctx: dict, state: TrainState, run_start: float) -> None:
    saved = state.elapsed
    state.elapsed = saved + time.monotonic() - run_start
    save_checkpoint(ctx["run"], ctx["model"], ctx["opt"], state, ctx["gen"],
                    ctx["tcfg"].keep_checkpoints)
    state.elapsed = saved


def run_loop(ctx: dict, state: TrainState, show_progress: bool) -> TrainState:
    """Optimise until ``state.total_steps`` or the time budget; checkpoints each epoch."""
    tcfg, corpus, train_ids, gen = ctx["tcfg"], ctx["corpus"], ctx["train_ids"], ctx["gen"]
    bs = min(tcfg.batch_size, len(train_ids))
    per_epoch = max(1, len(train_ids) // bs)
    run_start, marks = time.monotonic(), {}
    bar = tqdm(total=state.total_steps, initial=state.step, desc="training",
               disable=not show_progress)
    try:
        while state.step < state.total_steps:
            if state.perm is None or state.batch_pos >= per_epoch:
                if state.perm is not None:
                    _end_epoch(ctx, state, run_start)
                state.epoch, state.batch_pos = state.epoch + 1, 0
                state.perm = torch.randperm(len(train_ids), generator=gen)
            pick = state.perm[state.batch_pos * bs:(state.batch_pos + 1) * bs].numpy()
            ctx["last"] = train_step(ctx["model"], ctx["opt"], corpus, train_ids[pick],
                                     lr_at(state.step, state.total_steps, tcfg), tcfg, gen)
            state.step, state.batch_pos = state.step + 1, state.batch_pos + 1
            bar.update(1)
            bar.set_postfix(loss=f"{ctx['last']['loss']:.3f}", refresh=False)
            _fit_to_budget(state, tcfg, run_start, marks)
            bar.total = state.total_steps
            if state.elapsed + time.monotonic() - run_start > tcfg.max_minutes * 60:
                logger.warning("--max-minutes %g reached at step %d", tcfg.max_minutes,
                               state.step)
                state.total_steps = state.step
    except KeyboardInterrupt:
        _checkpoint(ctx, state, run_start)
        raise
    finally:
        bar.close()
    state.elapsed += time.monotonic() - run_start
    return state


def _setup_torch(tcfg: TrainConfig) -> torch.Generator:
    torch.set_num_threads(tcfg.threads)
    torch.manual_seed(tcfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(tcfg.seed + 1)


def build_model(corpus: Corpus, train: list[int], model_config: CompactConfig,
                text_encoder: TextEncoder | None = None) -> CompactProgressModel:
    """A fresh model with the budget table and plans of the training episodes."""
    return CompactProgressModel(model_config, compute_budgets(corpus, train),
                                training_plans(corpus, train), text_encoder)


def train_compact(corpus: Corpus, out: str | Path, model_config: CompactConfig | None = None,
                  train_config: TrainConfig | None = None, *, resume: bool = False,
                  text_encoder: TextEncoder | None = None,
                  show_progress: bool = True) -> TrainResult:
    """Train the compact model on a corpus; write checkpoints, ``model/`` and ``metrics.json``.

    Args:
        corpus: decoded episodes and labels (``load_corpus`` / ``corpus_from_episodes``).
        out: the run folder.
        model_config: model hyper-parameters (its image size must match the corpus).
        train_config: training options.
        resume: continue from the newest checkpoint in ``out`` (fresh start if none).
        text_encoder: the cached MiniLM encoder to use (default: a new one).
        show_progress: draw a tqdm bar.
    """
    tcfg = train_config or TrainConfig()
    mcfg = model_config or CompactConfig(image_size=corpus.image_size)
    if mcfg.image_size != corpus.image_size:
        raise ProcvlmError(f"model image_size {mcfg.image_size} != corpus frames "
                           f"{corpus.image_size}: decode the corpus at the model's size")
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    gen = _setup_torch(tcfg)
    train, val = split_episodes(corpus, tcfg.val_fraction, tcfg.seed)
    model = build_model(corpus, train, mcfg, text_encoder)
    opt = torch.optim.AdamW(model.net.parameters(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    train_ids = corpus.frame_ids(train)
    state = TrainState(total_steps=tcfg.steps or math.ceil(
        tcfg.epochs * max(1, len(train_ids) // min(tcfg.batch_size, len(train_ids)))))
    ckpt = latest_checkpoint(run) if resume else None
    if ckpt is not None:
        planned = state.total_steps
        state = load_checkpoint(ckpt, model, opt, gen)
        state.total_steps, state.fitted = planned, False  # the plan of this invocation
        logger.info("resuming from %s (step %d of %d)", ckpt, state.step, planned)
    write_json(run / "train_config.json", {"train": asdict(tcfg), "model": mcfg.to_dict(),
                                           "train_episodes": corpus.episode_index[train].tolist(),
                                           "val_episodes": corpus.episode_index[val].tolist()})
    ctx = {"tcfg": tcfg, "corpus": corpus, "train_ids": train_ids, "gen": gen, "model": model,
           "opt": opt, "run": run, "val": val, "last": {}}
    state = run_loop(ctx, state, show_progress)
    return _finish(ctx, state)


def _finish(ctx: dict, state: TrainState) -> TrainResult:
    """Final validation, the last checkpoint, ``model/`` and ``metrics.json``."""
    run, model, tcfg = ctx["run"], ctx["model"], ctx["tcfg"]
    final = evaluate(model, ctx["corpus"], ctx["val"], tcfg.eval_batch_size)
    if not state.history or state.history[-1]["step"] != state.step:
        state.history.append({"epoch": state.epoch, "step": state.step, **ctx["last"],
                              **{f"val_{k}": v for k, v in final.items()}})
    save_checkpoint(run, model, ctx["opt"], state, ctx["gen"], tcfg.keep_checkpoints)
    model.eval()
    model.save_pretrained(run / "model")
    metrics = {"val": final, "steps": state.step, "epochs": state.epoch,
               "elapsed_s": round(state.elapsed, 1), "scheme": tcfg.scheme,
               "train_frames": int(len(ctx["train_ids"])), "val_episodes": len(ctx["val"]),
               "history": state.history}
    write_json(run / "metrics.json", metrics)
    logger.info("model written to %s; validation %s", run / "model", final)
    return TrainResult(model, metrics, run / "model")


def train_from_dataset(root: str | Path, out: str | Path, model_config: CompactConfig,
                       train_config: TrainConfig, *, resume: bool = False,
                       camera: str | None = None, show_progress: bool = True) -> TrainResult:
    """Decode a labelled dataset at the model's resolution, then ``train_compact``."""
    from procvlm.training.data import load_corpus

    corpus = load_corpus(root, train_config.scheme, model_config.image_size, camera,
                         show_progress)
    logger.info("corpus: %d episodes, %d frames at %dx%d", corpus.num_episodes,
                len(corpus.frames), corpus.image_size, corpus.image_size)
    return train_compact(corpus, out, model_config, train_config, resume=resume,
                         show_progress=show_progress)
