"""The compact progress model: a small conv net over a window of recent frames, frozen MiniLM
embeddings of the task and the plan's steps, and two heads in reasoning-before-estimation order.

1. Stage head: the current step is the plan step whose (text + position) key best matches a
   query from the visual/task state vector, or a learned "done" key. Because steps are scored by
   similarity, plans of any length and unseen tasks with given plans work. The remaining actions
   are ``plan[stage:]``; the probability of "done" is reported per frame
   (``ProgressPrediction.done``), the model's own success detector.
2. Within-step head: q in [0, 1], conditioned on the step's key. Overall progress is composed
   from the plan's cumulative step budgets: ``p = lo_k + q * (hi_k - lo_k)``; done -> 1.

Budgets are a per-task table learned from training labels (mean progress where each stage
starts), uniform for unknown tasks. At inference ``stage_mode="expected"`` (default) reports the
expectation of the composed progress over the stage probabilities (smooth, differentiable, what
training optimises); ``"argmax"`` composes with the most likely stage only. ``stage`` is always
the argmax.

``head="direct"`` is the reasoning ablation: the same image encoder and task state regress
progress with one linear layer, without the stage head. Its predictions carry no stage (-1) and
no remaining actions, since it decides none.

``config.members > 1`` is an ensemble (``ensemble``, ``procvlm ensemble``): networks trained
apart, whose progress and step probabilities are averaged in every forward pass.

Frames are prepared by ``processor_compact`` (windows, resizing, training augmentation).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from procvlm._io import atomic_path, write_json
from procvlm.data.episode import Episode, Frames
from procvlm.errors import ProcvlmError
from procvlm.models.base import (LastScores, PredictItem, ProgressModel, ProgressPrediction,
                                 TrainedOn)
from procvlm.models.compact.configuration_compact import CompactConfig
from procvlm.models.compact.processor_compact import (FLIPS, flip_windows, read_frames,
                                                       resize_frames, window_indices)
from procvlm.models.compact.text import TextEncoder, load_embeddings, save_embeddings

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BUDGETS_NAME = "budgets.json"
TEXT_CACHE_NAME = "text_cache.safetensors"
TRAINING_NAME = "training.json"
NORM_STD = 0.2  # spread of a window's channels after ``input_norm="window"``
NORM_FLOOR = 0.02  # the least spread a window is stretched from

__all__ = ["CompactEnsembleNet", "CompactNet", "CompactOutput", "CompactProgressModel",
           "PlanInputs", "WindowScores", "ensemble", "read_frames", "resize_frames",
           "uniform_bounds", "window_indices"]


def _median(arrays: list[np.ndarray]) -> np.ndarray:
    """Element-wise median of equal-length arrays, float32."""
    return np.median(np.stack(arrays), axis=0).astype(np.float32)


def uniform_bounds(num_steps: int) -> np.ndarray:
    """(K + 1,) cumulative budgets of K equal steps: 0, 1/K, ..., 1."""
    return np.linspace(0.0, 1.0, num_steps + 1, dtype=np.float32)


def normalize_window(x: torch.Tensor) -> torch.Tensor:
    """(B, W, S, S, 3) in [0, 1] -> each window's colour channels, over all its frames,
    moved to mean 0.5 and standard deviation ``NORM_STD`` (a typical frame's spread, so the
    layers see the usual range). One gain and offset per window and channel: the changes
    between its frames keep their relative size. A window flatter than ``NORM_FLOOR`` is
    stretched as if it had that spread, so near-uniform frames are not blown up to noise."""
    b = x.shape[0]
    var, mean = torch.var_mean(x.reshape(b, -1, 3), dim=1)  # (B, 3) each, channels last
    gain = NORM_STD / var.sqrt().clamp(min=NORM_FLOOR)
    shape = (b,) + (1,) * (x.dim() - 2) + (3,)
    return torch.addcmul((0.5 - mean * gain).view(shape), x, gain.view(shape))


@dataclass
class CompactOutput:
    """Forward pass result (all tensors, batch first).

    Attributes:
        progress: (B,) expected composed progress under the stage probabilities (``head=
            "direct"``: the regressed progress).
        stage_logits: (B, K + 1); column K (the last) is "done", padded steps are -1e9.
            None for ``head="direct"``, as are ``within`` and ``composed``.
        within: (B, K) within-step progress q of every step, in [0, 1].
        composed: (B, K + 1) overall progress if the frame were in each stage (done -> 1).
    """

    progress: torch.Tensor
    stage_logits: torch.Tensor | None = None
    within: torch.Tensor | None = None
    composed: torch.Tensor | None = None


class CompactNet(nn.Module):
    """The trainable part: image encoder, state vector, and the heads of ``config.head``
    (stage and within-step heads, or one direct progress regressor)."""

    def __init__(self, config: CompactConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        layers: list[nn.Module] = []
        prev = 3 * c.frames_in + 3 * (c.frames_in - 1)  # frames + differences, stacked
        for width in c.channels:
            layers += [nn.Conv2d(prev, width, 3, stride=2, padding=1),
                       nn.GroupNorm(min(8, width), width), nn.ReLU(inplace=True)]
            prev = width
        self.encoder = nn.Sequential(*layers)
        side = c.image_size // 2 ** len(c.channels)
        per_channel = {"flatten": side * side, "meanmax": 2, "keypoints": 3}[c.pool]
        self.image_proj = nn.Linear(prev * per_channel, c.hidden)
        if c.pool == "keypoints":  # cell centres in [-1, 1], x then y, row-major like flatten
            axis = (torch.arange(side, dtype=torch.float32) + 0.5) / side * 2 - 1
            ys, xs = torch.meshgrid(axis, axis, indexing="ij")
            self.register_buffer("cell_xy", torch.stack([xs.flatten(), ys.flatten()], 1),
                                 persistent=False)
            self.log_temperature = nn.Parameter(torch.zeros(()))
        self.task_proj = nn.Linear(c.text_dim, c.hidden)
        self.state = nn.Sequential(nn.ReLU(), nn.Linear(c.hidden, c.hidden), nn.ReLU(),
                                   nn.Dropout(c.dropout))
        if c.head == "direct":
            self.progress_head = nn.Linear(c.hidden, 1)
            return
        self.query = nn.Linear(c.hidden, c.key_dim)
        self.step_key = nn.Linear(c.text_dim, c.key_dim)
        self.step_pos = nn.Embedding(c.max_plan_len, c.key_dim)
        self.step_frac = nn.Linear(1, c.key_dim)
        self.done_key = nn.Parameter(torch.randn(c.key_dim) / math.sqrt(c.key_dim))
        self.within_head = nn.Sequential(nn.Linear(c.hidden + c.key_dim, c.hidden), nn.ReLU(),
                                         nn.Linear(c.hidden, 1))

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, W, S, S, 3) uint8 -> (B, hidden). Differences make stalls and motion visible
        (an anchored window's first difference is the change since the episode's start)."""
        if self.config.input_norm == "window":  # statistics on the channels-last frames
            x = normalize_window(frames.float().div_(255.0)).permute(0, 1, 4, 2, 3)
        else:
            x = frames.permute(0, 1, 4, 2, 3).float().div_(255.0)  # (B, W, 3, S, S)
        diffs = x[:, 1:] - x[:, :-1]  # (B, W-1, 3, S, S)
        x = torch.cat([x - 0.5, diffs * 4.0], dim=1).flatten(1, 2)  # (B, (2W-1)*3, S, S)
        # channels-last convolutions run about twice as fast on CPU
        x = self.encoder(x.contiguous(memory_format=torch.channels_last))
        if self.config.pool == "meanmax":  # (B, C, s, s) -> (B, 2C): what, not where
            cells = x.flatten(2)
            return self.image_proj(torch.cat([cells.mean(2), cells.amax(2)], 1))
        if self.config.pool == "keypoints":  # (B, C, s, s) -> (B, 3C): what, and where
            cells = x.flatten(2)  # (B, C, s*s)
            attention = torch.softmax(cells * self.log_temperature.exp(), dim=2)
            xy = attention @ self.cell_xy  # (B, C, 2) expected position of each channel
            return self.image_proj(torch.cat([cells.mean(2), xy.flatten(1)], 1))
        return self.image_proj(x.contiguous().flatten(1))

    def step_keys(self, step_emb: torch.Tensor, step_mask: torch.Tensor) -> torch.Tensor:
        """(B, K, D) step texts -> (B, K, key_dim) keys with the step's place in the plan."""
        k = step_emb.shape[1]
        if k > self.config.max_plan_len:
            raise ProcvlmError(f"plan has {k} steps, the model handles at most "
                               f"{self.config.max_plan_len}: retrain with a larger max_plan_len")
        pos = torch.arange(k, device=step_emb.device)
        length = step_mask.sum(1, keepdim=True).clamp(min=1).float()  # (B, 1)
        frac = (pos[None, :].float() / length).unsqueeze(-1)  # (B, K, 1)
        return self.step_key(step_emb) + self.step_pos(pos)[None] + self.step_frac(frac)

    def forward(self, frames: torch.Tensor, task_emb: torch.Tensor, step_emb: torch.Tensor,
                step_mask: torch.Tensor, bounds: torch.Tensor) -> CompactOutput:
        """Score a batch of windows.

        Args:
            frames: (B, W, S, S, 3) uint8 windows, oldest frame first.
            task_emb: (B, D) task embeddings.
            step_emb: (B, K, D) plan step embeddings, zero-padded to the longest plan.
            step_mask: (B, K) True for real steps.
            bounds: (B, K + 1) cumulative budgets; step k spans [bounds[k], bounds[k+1]].
        """
        h = self.state(self.encode_frames(frames) + self.task_proj(task_emb))  # (B, H)
        if self.config.head == "direct":
            return CompactOutput(torch.sigmoid(self.progress_head(h).squeeze(-1)))
        keys = self.step_keys(step_emb, step_mask)  # (B, K, E)
        done = self.done_key.expand(keys.shape[0], 1, -1)
        all_keys = torch.cat([keys, done], dim=1)  # (B, K+1, E)
        q = self.query(h)  # (B, E)
        logits = torch.einsum("be,bke->bk", q, all_keys) / math.sqrt(self.config.key_dim)
        valid = torch.cat([step_mask, step_mask.new_ones(step_mask.shape[0], 1)], dim=1)
        logits = logits.masked_fill(~valid, -1e9)  # padded steps: never chosen
        # Estimation conditioned on the step: q_k from the state and step k's key.
        hk = h.unsqueeze(1).expand(-1, keys.shape[1], -1)
        within = torch.sigmoid(self.within_head(torch.cat([hk, keys], -1)).squeeze(-1))  # (B, K)
        lo, hi = bounds[:, :-1], bounds[:, 1:]
        composed = torch.cat([lo + within * (hi - lo), bounds.new_ones(bounds.shape[0], 1)], 1)
        probs = torch.softmax(logits, dim=1)
        progress = (probs * composed.masked_fill(~valid, 0.0)).sum(1)
        return CompactOutput(progress, logits, within, composed)


class CompactEnsembleNet(nn.Module):
    """``config.members`` independently trained ``CompactNet``s that answer as one network:
    progress and within-step progress are the members' means, the stage probabilities the
    mean of theirs (so P(done) is the members' mean P(done) and the step is the one they
    give most probability on average). Built from trained models by ``ensemble``."""

    def __init__(self, config: CompactConfig) -> None:
        super().__init__()
        self.config = config
        single = replace(config, members=1)
        self.members = nn.ModuleList(CompactNet(single) for _ in range(config.members))

    def forward(self, frames: torch.Tensor, task_emb: torch.Tensor, step_emb: torch.Tensor,
                step_mask: torch.Tensor, bounds: torch.Tensor) -> CompactOutput:
        """``CompactNet.forward`` of every member, averaged (same arguments)."""
        outs = [m(frames, task_emb, step_emb, step_mask, bounds) for m in self.members]
        progress = torch.stack([o.progress for o in outs]).mean(0)
        if outs[0].stage_logits is None:
            return CompactOutput(progress)
        probs = torch.stack([torch.softmax(o.stage_logits, 1) for o in outs]).mean(0)
        valid = torch.cat([step_mask, step_mask.new_ones(step_mask.shape[0], 1)], dim=1)
        logits = probs.clamp_min(1e-30).log().masked_fill(~valid, -1e9)
        within = torch.stack([o.within for o in outs]).mean(0)
        composed = torch.stack([o.composed for o in outs]).mean(0)
        return CompactOutput(progress, logits, within, composed)


class WindowScores(NamedTuple):
    """What ``CompactProgressModel.score_windows`` reports per window (arrays of length B)."""

    stage: np.ndarray
    """Plan index of the current step, ``len(plan)`` = done, -1 for the direct head."""
    progress: np.ndarray
    """Overall progress in [0, 1]."""
    done: np.ndarray | None
    """Probability of the "done" stage (None for the direct head, which decides no stage)."""


@dataclass
class PlanInputs:
    """Batched text side of a forward pass (see ``CompactNet.forward``)."""

    task_emb: torch.Tensor  # (B, D)
    step_emb: torch.Tensor  # (B, K, D)
    step_mask: torch.Tensor  # (B, K)
    bounds: torch.Tensor  # (B, K + 1), padded with 1.0
    lengths: torch.Tensor  # (B,) plan lengths


class CompactProgressModel(nn.Module, ProgressModel):
    """The compact CPU progress model behind ``ProgressModel``.

    Args:
        config: hyper-parameters.
        budgets: task -> (K + 1) cumulative step budgets learned from labels.
        plans: task -> plan seen in training (used when ``predict`` gets no plan).
        text_encoder: the cached MiniLM encoder (a fresh one by default).
        training_record: how the weights were trained (steps reached, seed, data), written
            as ``training.json`` beside them; empty for an untrained model.
    """

    model_type = "compact"

    def __init__(self, config: CompactConfig, budgets: dict[str, list[float]] | None = None,
                 plans: dict[str, list[str]] | None = None,
                 text_encoder: TextEncoder | None = None,
                 training_record: dict | None = None) -> None:
        super().__init__()
        self.config = config
        self.net = CompactNet(config) if config.members == 1 else CompactEnsembleNet(config)
        self.budgets = {t: [float(x) for x in b] for t, b in (budgets or {}).items()}
        self.plans = {t: list(p) for t, p in (plans or {}).items()}
        self.text = text_encoder or TextEncoder()
        self.training_record = dict(training_record or {})
        self._plan_memo: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def bounds_for(self, task: str, plan: list[str]) -> np.ndarray:
        """(K + 1,) budgets: the learned table when it has this task and plan length."""
        b = self.budgets.get(task)
        if b is not None and len(b) == len(plan) + 1:
            return np.asarray(b, np.float32)
        return uniform_bounds(len(plan))

    def resolve_plan(self, task: str, plan: list[str] | None) -> list[str]:
        """The plan to use: the given one, else the one seen in training for ``task``."""
        if plan:
            return list(plan)
        if task in self.plans:
            return self.plans[task]
        raise ProcvlmError(f"no plan for task {task!r}: pass plan=[...] (the task's atomic "
                           "actions) or label the dataset so its plans.json has it")

    def _model_plan(self, task: str, plan: list[str] | None) -> list[str]:
        """The plan fed to the network: ``resolve_plan``'s, or for the direct head, which
        needs none (the task alone conditions it), whatever is known, else the task."""
        if self.config.head == "direct":
            return list(plan or self.plans.get(task) or [task])
        return self.resolve_plan(task, plan)

    def known_plan(self, task: str) -> list[str] | None:
        """The plan seen in training for ``task`` (None for a task it never saw)."""
        plan = self.plans.get(task)
        return list(plan) if plan else None

    @property
    def trained_on(self) -> TrainedOn:
        """Camera, image size, window and scheme as ``config.json`` records them (camera and
        scheme are None in checkpoints older than that record)."""
        c = self.config
        return TrainedOn(camera=c.camera, image_size=c.image_size, window=c.window,
                         scheme=c.scheme)

    def _plan_arrays(self, task: str, plan: list[str]) -> tuple[np.ndarray, ...]:
        key = (task, tuple(plan))
        if key not in self._plan_memo:
            emb = self.text.encode([task, *plan])
            self._plan_memo[key] = (emb[0], emb[1:], self.bounds_for(task, plan))
        return self._plan_memo[key]

    def plan_inputs(self, tasks: list[str], plans: list[list[str]]) -> PlanInputs:
        """Embed and pad the tasks and plans of a batch."""
        arrays = [self._plan_arrays(t, p) for t, p in zip(tasks, plans)]
        kmax = max(len(p) for p in plans)
        b, d = len(plans), self.config.text_dim
        step = np.zeros((b, kmax, d), np.float32)
        mask = np.zeros((b, kmax), bool)
        bounds = np.ones((b, kmax + 1), np.float32)
        for i, (_, s, bd) in enumerate(arrays):
            step[i, :len(s)], mask[i, :len(s)], bounds[i, :len(bd)] = s, True, bd
        return PlanInputs(torch.from_numpy(np.stack([a[0] for a in arrays])),
                          torch.from_numpy(step), torch.from_numpy(mask),
                          torch.from_numpy(bounds), torch.tensor([len(p) for p in plans]))

    def forward(self, frames: torch.Tensor, inputs: PlanInputs) -> CompactOutput:
        """(B, W, S, S, 3) uint8 windows (W = ``config.frames_in``) + plans -> output."""
        return self.net(frames, inputs.task_emb, inputs.step_emb, inputs.step_mask,
                        inputs.bounds)

    def _decode(self, out: CompactOutput, lengths: torch.Tensor) -> WindowScores:
        """Stage per window (plan index, len(plan) = done; -1 for the direct head, which
        decides no stage), the reported progress and the probability of "done"."""
        if out.stage_logits is None:
            return WindowScores(np.full(len(out.progress), -1, np.int64),
                                out.progress.detach().clamp(0, 1).numpy(), None)
        col = out.stage_logits.argmax(1)  # done is the last column
        kmax = out.stage_logits.shape[1] - 1
        stage = torch.where(col == kmax, lengths, col)
        if self.config.stage_mode == "argmax":
            progress = out.composed.gather(1, col[:, None]).squeeze(1)
        else:
            progress = out.progress
        done = torch.softmax(out.stage_logits, dim=1)[:, kmax]
        return WindowScores(stage.detach().numpy(), progress.detach().clamp(0, 1).numpy(),
                            done.detach().numpy())

    def score_windows(self, frames: torch.Tensor, inputs: PlanInputs) -> WindowScores:
        """Stage, progress and P(done) of a batch of (B, W, S, S, 3) windows, as ``_decode``
        gives them.

        With ``config.flip_average`` each window is scored in the four orientations of
        ``FLIPS``: the progress and P(done) are their medians, the stage the most common of the
        four (ties go to the earliest orientation, the window as given). A window and any flip
        of it then get the same answer.
        """
        if not self.config.flip_average:
            return self._decode(self(frames, inputs), inputs.lengths)
        runs = [self._decode(self(flip_windows(frames, dims), inputs), inputs.lengths)
                for dims in FLIPS]
        stages = np.stack([r.stage for r in runs])  # (4, B)
        votes = (stages[:, None, :] == stages[None, :, :]).sum(1)  # (4, B) agreeing runs
        stage = stages[votes.argmax(0), np.arange(stages.shape[1])]
        done = None if runs[0].done is None else _median([r.done for r in runs])
        return WindowScores(stage, _median([r.progress for r in runs]), done)

    @torch.inference_mode()
    def predict(self, episode: Episode | Frames, task: str | None = None,
                plan: list[str] | None = None, *, window: int | None = None,
                batch_size: int = 256) -> ProgressPrediction:
        """Estimate progress at every frame of an episode's main camera.

        Args:
            episode: an ``Episode`` or bare ``Frames``.
            task: the instruction (default: the episode's).
            plan: the plan's atomic actions (default: the episode's, else the training plan).
            window: ignored; the window length and stride are fixed at training time
                (``config.window`` / ``config.stride``). Accepted for the interface.
            batch_size: windows per forward pass.
        """
        return self.predict_batch([(episode, task, plan)], batch_size=batch_size)[0]

    def _input(self, source: Episode | Frames, task: str | None,
               plan: list[str] | None) -> tuple[Frames, str, list[str]]:
        """(frames of the main camera, task, the plan fed to the network) of one input."""
        if isinstance(source, Episode):
            frames, task, plan = source.main_frames(), task or source.task, plan or source.plan
        else:
            frames = source
        if not task:
            raise ProcvlmError("predict() with bare frames needs task='the instruction'")
        return frames, task, self._model_plan(task, plan)

    @torch.inference_mode()
    def predict_batch(self, items: Sequence[PredictItem], *, window: int | None = None,
                      batch_size: int | None = None) -> list[ProgressPrediction]:
        """``predict`` for several inputs whose windows share forward passes.

        Args:
            items: (episode or frames, task, plan) triples, as ``predict`` takes them.
            window: ignored (fixed at training time), as in ``predict``.
            batch_size: windows per forward pass (default 256), across items.
        """
        if not items:
            return []
        bs = batch_size or 256
        resolved = [self._input(*item) for item in items]
        videos = [torch.from_numpy(read_frames(f, self.config.image_size)) for f, _, _ in resolved]
        sizes = [len(v) for v in videos]
        offsets = np.cumsum([0, *sizes[:-1]])
        idx = torch.from_numpy(np.concatenate([
            o + window_indices(n, self.config.window, self.config.stride, self.config.anchor)
            for o, n in zip(offsets, sizes)]))  # (N, W) rows into the stacked frames
        owner = torch.from_numpy(np.repeat(np.arange(len(items)), sizes))  # (N,) item of a row
        frames = torch.cat(videos)
        inputs = self.plan_inputs([t for _, t, _ in resolved], [p for _, _, p in resolved])
        stages, progress, done = [np.zeros(0, np.int64)], [np.zeros(0, np.float32)], []
        for i in range(0, len(idx), bs):
            rows = owner[i:i + bs]
            batch = PlanInputs(*(t[rows] for t in (inputs.task_emb, inputs.step_emb,
                                                   inputs.step_mask, inputs.bounds,
                                                   inputs.lengths)))
            scores = self.score_windows(frames[idx[i:i + bs]], batch)
            stages.append(scores.stage)
            progress.append(scores.progress)
            if scores.done is not None:
                done.append(scores.done)
        stage, prog = np.concatenate(stages), np.concatenate(progress)
        p_done = np.concatenate(done) if done else None
        out = []
        for (_, _, plan), o, n in zip(resolved, offsets, sizes):
            st = stage[o:o + n]
            remaining = ([[] for _ in st] if self.config.head == "direct"
                         else [list(plan[int(k):]) for k in st])
            out.append(ProgressPrediction(progress=prog[o:o + n], stage=st, remaining=remaining,
                                          done=None if p_done is None else p_done[o:o + n]))
        return out

    @property
    def history(self) -> int:
        """Frames a window spans (``config.window_span``)."""
        return self.config.window_span

    @property
    def anchored(self) -> bool:
        """Whether the estimate also depends on the episode's first frame (``config.anchor``)."""
        return self.config.anchor

    @torch.inference_mode()
    def score_last(self, clips: list[tuple[Frames, str, list[str] | None]]) -> LastScores:
        """Progress and P(done) at the newest frame of each clip, all clips in one forward
        pass, (B,) each (``done`` None for the direct head). An anchored model takes each
        clip's first frame as the episode's start."""
        if not clips:
            empty = np.zeros(0, np.float32)
            return LastScores(empty, None if self.config.head == "direct" else empty)
        windows, tasks, plans = [], [], []
        for frames, task, plan in clips:
            if len(frames) == 0:
                raise ProcvlmError("predict_last got an empty clip: pass at least one frame")
            c = self.config
            idx = window_indices(len(frames), c.window, c.stride, c.anchor)[-1]
            windows.append(resize_frames(frames[idx], self.config.image_size))
            tasks.append(task)
            plans.append(self._model_plan(task, plan))
        inputs = self.plan_inputs(tasks, plans)
        windows = torch.from_numpy(np.stack(windows))  # (B, W, S, S, 3)
        scores = self.score_windows(windows, inputs)
        done = None if scores.done is None else scores.done.astype(np.float32)
        return LastScores(scores.progress.astype(np.float32), done)

    def texts(self) -> list[str]:
        """Every task and step text the model knows a plan or budget for."""
        out = set(self.plans) | set(self.budgets)
        for p in self.plans.values():
            out.update(p)
        return sorted(out)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write config.json, model.safetensors, budgets.json, text_cache.safetensors and,
        for a trained model, training.json."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        with atomic_path(d / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        known = self.texts()
        save_embeddings(d / TEXT_CACHE_NAME, dict(zip(known, self.text.encode(known))))
        write_json(d / BUDGETS_NAME, {"budgets": self.budgets, "plans": self.plans})
        if self.training_record:
            write_json(d / TRAINING_NAME, self.training_record)
        write_json(d / CONFIG_NAME, self.config.to_dict())  # last: marks the folder complete

    @classmethod
    def from_pretrained(cls, directory: str | Path,
                        text_encoder: TextEncoder | None = None) -> CompactProgressModel:
        """Load a folder written by ``save_pretrained``; returns an eval-mode model."""
        from safetensors.torch import load_file

        d = Path(directory)
        for name in (CONFIG_NAME, WEIGHTS_NAME, BUDGETS_NAME):
            if not (d / name).is_file():
                raise ProcvlmError(f"{d} has no {name}: pass a folder written by "
                                   "`procvlm train --model compact` (RUN/model)")
        config = CompactConfig.from_dict(json.loads((d / CONFIG_NAME).read_text()))
        side = json.loads((d / BUDGETS_NAME).read_text())
        text = text_encoder or TextEncoder()
        if (d / TEXT_CACHE_NAME).is_file():
            for t, v in load_embeddings(d / TEXT_CACHE_NAME).items():
                text.cache.setdefault(t, v)
        record = (json.loads((d / TRAINING_NAME).read_text())
                  if (d / TRAINING_NAME).is_file() else None)
        model = cls(config, side.get("budgets"), side.get("plans"), text, record)
        model.net.load_state_dict(load_file(str(d / WEIGHTS_NAME)))
        return model.eval()


def _member_nets(model: CompactProgressModel) -> list[CompactNet]:
    """The single networks a model holds (one, or an ensemble's members)."""
    return list(model.net.members) if isinstance(model.net, CompactEnsembleNet) else [model.net]


def ensemble(models: Sequence[CompactProgressModel]) -> CompactProgressModel:
    """One model that averages the outputs of independently trained compact models (training
    seeds of one recipe, say): ``CompactEnsembleNet`` over all their networks.

    The models must share every configuration field (the architecture, window, anchor, flip
    averaging, camera and scheme): the first field that differs is named in the error. Their
    plans must agree where they know the same task. Each task's step budgets are the mean of
    the networks' (the tables differ a little when the members held out other validation
    episodes); a task only some members learned keeps the mean of theirs, one whose tables
    disagree in length is dropped (uniform budgets). ``training.json`` lists the members'
    records, and its ``steps`` is their sum (the optimiser steps the ensemble cost).

    Args:
        models: two or more loaded compact models (ensembles count as their members).
    """
    if len(models) < 2:
        raise ProcvlmError(f"ensemble got {len(models)} model(s): pass at least two trained "
                           "compact models")
    base = replace(models[0].config, members=1)
    for i, m in enumerate(models[1:], 1):
        other = replace(m.config, members=1)
        for name in base.to_dict():
            if getattr(base, name) != getattr(other, name):
                raise ProcvlmError(
                    f"ensemble: model {i} has {name}={getattr(other, name)!r}, model 0 has "
                    f"{getattr(base, name)!r}: join only models trained with the same "
                    "configuration (e.g. seeds of one recipe)")
    plans: dict[str, list[str]] = {}
    for m in models:
        for task, plan in m.plans.items():
            if plans.setdefault(task, list(plan)) != list(plan):
                raise ProcvlmError(f"ensemble: the models learned different plans for task "
                                   f"{task!r}: join models trained on the same labels")
    budgets: dict[str, list[float]] = {}
    for task in sorted({t for m in models for t in m.budgets}):
        have = [m for m in models if task in m.budgets]
        if len({len(m.budgets[task]) for m in have}) == 1:  # weighed by networks held
            mean = np.average([m.budgets[task] for m in have], axis=0,
                              weights=[len(_member_nets(m)) for m in have])
            budgets[task] = [float(x) for x in mean]
    text = TextEncoder(encode_fn=models[0].text.encode_fn)
    for m in models:
        for t, v in m.text.cache.items():
            text.cache.setdefault(t, v)
    nets = [net for m in models for net in _member_nets(m)]
    record = {"steps": sum(int(m.training_record.get("steps", 0)) for m in models),
              "ensemble_of": [dict(m.training_record) for m in models]}
    out = CompactProgressModel(replace(base, members=len(nets)), budgets, plans, text, record)
    for dst, src in zip(out.net.members, nets):
        dst.load_state_dict(src.state_dict())
    return out.eval()
