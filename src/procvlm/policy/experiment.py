"""Behaviour cloning against progress-weighted behaviour cloning on MetaWorld.

For every task: a mixed-quality corpus from ``procvlm generate`` (expert episodes and episodes
with injected failures: noise, drop, stall, regression, truncate), labelled by the oracle
annotator (every label scheme's curve is stored), scored by a compact progress model. A
state-based MLP policy is trained on all of it by

- ``bc``: plain behaviour cloning (every frame weighs 1);
- ``<source>``: RA-BC weights (LeRobot's per-frame rule) from a progress source: ``time``
  labels, ``procvlm`` labels, the ``compact`` model's scores, simulator ``truth``;
- ``top-<source>``: the same weights, but only on the episodes whose progress return (the
  progress they end at) is in the top ``keep`` fraction (%BC, see ``reward.rabc``);
- ``done-compact``: the compact model's RA-BC weights on the episodes it calls successful
  (its P(done) at the end above ``done_threshold``; models without P(done) skip it);
- ``oracle``: only the successful episodes (weight 1, the others 0): the ceiling;

with the same frames, mini-batches and number of gradient steps, for several training seeds,
and evaluated by state-only rollouts from start states no policy trained on. Methods whose
weights come out identical (``top-time`` and ``time``: every time curve ends at 1) share their
trained policies; ``methods`` restricts a run to some of them. Every cell's rollouts are saved
as they finish, so an interrupted run resumes; ``workers`` processes share the cells.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from procvlm._io import write_json
from procvlm.errors import ProcvlmError
from procvlm.policy.bc import BCConfig, MLPPolicy, train_bc
from procvlm.policy.evaluate import Rollout, evaluate

logger = logging.getLogger(__name__)

SOURCES: dict[str, str] = {"time": "time labels", "procvlm": "procvlm labels",
                           "compact": "compact model scores", "truth": "simulator truth"}
"""Progress source key -> how the table names it."""

METHODS: dict[str, str] = {
    "bc": "plain BC",
    **{k: f"RA-BC, {v}" for k, v in SOURCES.items()},
    **{f"top-{k}": f"%BC x RA-BC, {v}" for k, v in SOURCES.items()},
    "done-compact": "P(done)-filtered x RA-BC, compact model scores",
    "oracle": "BC on successes only (oracle)",
}
"""Method key -> how the table names it."""

REFERENCES: dict[str, str] = {
    "plain BC": "behaviour cloning, every frame weighs 1",
    "RA-BC": "reward-aligned BC, SARM (Chen et al. 2025) eq. 8-9, as LeRobot's RABCWeights: a "
             "frame weighs 0 where progress falls over the next chunk_size frames",
    "%BC x RA-BC": "filtered BC (%BC, Chen et al. 2021, Decision Transformer sec. 5.3) on the "
                   "progress return (the progress an episode ends at): episodes outside the top "
                   "`keep` fraction weigh 0, the others keep their RA-BC weights",
    "P(done)-filtered x RA-BC": "the compact model as its own success detector: episodes whose "
                                "P(done), averaged over their last 3 frames, is at most "
                                "`done_threshold` weigh 0, the others keep their RA-BC weights "
                                "(from the model's progress)",
    "oracle": "BC on the episodes MetaWorld counts as successful: the ceiling",
}
"""What each family of methods is and where it comes from (written into policy.json)."""


@dataclass(frozen=True)
class PolicyConfig:
    """Corpus, training and evaluation sizes of the experiment."""

    tasks: tuple[str, ...] = field(default=("assembly", "basketball", "bin-picking", "hammer"),
                                   metadata={"help": "MetaWorld tasks, one policy each"})
    episodes: int = field(default=24, metadata={"help": "training episodes per task"})
    failure_rate: float = field(default=0.6, metadata={"help": "share of failure episodes"})
    seeds: int = field(default=3, metadata={"help": "training seeds per method and task"})
    rollouts: int = field(default=50, metadata={"help": "evaluation rollouts per policy"})
    horizon: int = field(default=150, metadata={"help": "most steps of episodes and rollouts"})
    pacing: str = field(default="scripted", metadata={
        "help": "pace of the demonstrations: the experts' own (scripted) fits the horizon; "
                "human-paced successes take 210-245 steps"})
    size: int = field(default=64, metadata={"help": "rendered image side (labels, scores)"})
    camera: str = field(default="corner", metadata={"help": "camera rendered for progress"})
    model: str = field(default="metaworld", metadata={"help": "compact model: run or shipped"})
    chunk_size: int = field(default=10, metadata={"help": "RA-BC look-ahead in frames"})
    kappa: float = field(default=0.01, metadata={"help": "RA-BC full-weight delta"})
    keep: float = field(default=0.25, metadata={
        "help": "%BC: fraction of episodes kept by progress return. Fixed before any "
                "measurement at the middle of the values Chen et al. 2021 report (10, 25, 40%): "
                "10% of 24 episodes keeps only 2"})
    done_threshold: float = field(default=0.5, metadata={
        "help": "P(done)-filtered BC: the success score an episode must exceed"})
    methods: tuple[str, ...] = field(default=(), metadata={
        "help": "methods to train and report (default: all of METHODS)"})
    vector: int = field(default=10, metadata={"help": "rollouts run in lockstep"})
    bc: BCConfig = field(default_factory=BCConfig, metadata={"help": "policy training"})
    seed: int = field(default=0, metadata={"help": "corpus seed"})

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ProcvlmError("PolicyConfig.tasks is empty: pass e.g. ('pick-place',)")
        for name in ("episodes", "seeds", "rollouts", "horizon", "chunk_size", "vector"):
            if getattr(self, name) < 1:
                raise ProcvlmError(f"PolicyConfig.{name}={getattr(self, name)}: need >= 1")
        if self.episodes < 2:
            raise ProcvlmError(f"PolicyConfig.episodes={self.episodes}: need >= 2 per task")
        if not 0.0 <= self.failure_rate < 1.0:
            raise ProcvlmError(f"PolicyConfig.failure_rate={self.failure_rate}: need [0, 1)")
        if not 0.0 < self.keep <= 1.0:
            raise ProcvlmError(f"PolicyConfig.keep={self.keep}: need a fraction in (0, 1]")
        if not 0.0 <= self.done_threshold < 1.0:
            raise ProcvlmError(f"PolicyConfig.done_threshold={self.done_threshold}: need a "
                               "probability in [0, 1)")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ProcvlmError(f"PolicyConfig.methods: unknown {', '.join(unknown)}; choose from "
                               f"{', '.join(METHODS)}")

    def to_dict(self) -> dict:
        return asdict(self)


QUICK = PolicyConfig(tasks=("pick-place",), episodes=4, seeds=1, rollouts=2, horizon=80,
                     bc=BCConfig(hidden=32, steps=30, batch_size=64))
"""A tiny run for tests and ``procvlm demo`` (minutes): numbers mean nothing at this size."""


@dataclass
class TaskData:
    """One task's training frames and every method's sample weights."""

    task: str
    states: np.ndarray  # (N, 39)
    actions: np.ndarray  # (N, 4)
    weights: dict[str, np.ndarray | None]  # method -> (N,) or None (plain BC)
    episodes: list[dict]  # per episode: index, length, success, failure
    same_as: dict[str, str] = field(default_factory=dict)  # method -> earlier, same weights

    def trained(self) -> list[str]:
        """Methods that train their own policies (the others share an earlier one's)."""
        return [m for m in self.weights if m not in self.same_as]


def _corpus(root: Path, task: str, cfg: PolicyConfig) -> Path:
    from procvlm.labels import label_dataset
    from procvlm.labels.store import LABELS_FILE, labels_dir
    from procvlm.sim import close_envs, generate

    try:
        generate(root, [task], cfg.episodes, cfg.failure_rate, cfg.seed, cfg.size, cfg.size,
                 cameras=(cfg.camera,), max_steps=cfg.horizon, progress=False,
                 pacing=cfg.pacing)
    finally:
        close_envs()
    if not (labels_dir(root) / LABELS_FILE).is_file():
        label_dataset(root, annotator="oracle", scheme="procvlm")
    return root


def _model_scores(root: Path, model_name: str
                  ) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray] | None]:
    """The compact model's progress and P(done) (None if it gives none) per episode."""
    import pyarrow.parquet as pq

    from procvlm.models import load_model
    from procvlm.reward.rabc import done_from_scores, progress_from_scores
    from procvlm.reward.score import score_dataset

    path = root / "meta" / "procvlm" / f"scores_{Path(model_name).name}.parquet"
    if not path.is_file():
        score_dataset(load_model(model_name), root, path, show_progress=False)
    table = pq.read_table(path)
    try:
        done = done_from_scores(table)
    except ProcvlmError:
        done = None
    return progress_from_scores(table), done


def method_weights(sources: dict[str, dict[int, np.ndarray]], done: dict[int, np.ndarray] | None,
                   episodes: list[tuple[int, int, bool]], cfg: PolicyConfig
                   ) -> dict[str, np.ndarray | None]:
    """Every method's per-frame weights over the concatenated episodes (None: plain BC).

    Args:
        sources: source key (``SOURCES``) -> episode index -> (T,) progress.
        done: the compact model's P(done) per episode (None when it gives none).
        episodes: (index, length, success) of each episode, in corpus order.
        cfg: the experiment's settings (``methods`` keeps only those methods).
    """
    from procvlm.reward.rabc import episode_weights, filtered_weights, success_filtered_weights

    def flat(w: dict[int, np.ndarray]) -> np.ndarray:
        return np.concatenate([w[i][:n] for i, n, _ in episodes])

    weights: dict[str, np.ndarray | None] = {"bc": None}
    for prefix, rule in (("", lambda p: episode_weights(p, cfg.chunk_size, cfg.kappa)),
                         ("top-", lambda p: filtered_weights(p, cfg.keep, cfg.chunk_size,
                                                             cfg.kappa))):
        for name, progress in sources.items():
            weights[prefix + name] = flat(rule(progress))
    if done is None and "done-compact" in cfg.methods:
        raise ProcvlmError(f"method done-compact needs P(done), and {cfg.model} gives none: use "
                           "a compact model with the reasoning head or drop the method")
    if done is not None:
        weights["done-compact"] = flat(success_filtered_weights(
            sources["compact"], done, cfg.done_threshold, cfg.chunk_size, cfg.kappa))
    weights["oracle"] = np.concatenate([np.full(n, float(ok), np.float32)
                                        for _, n, ok in episodes])
    if cfg.methods:
        weights = {m: w for m, w in weights.items() if m in cfg.methods}
    return weights


def prepare_task(out: Path, task: str, cfg: PolicyConfig) -> TaskData:
    """Generate, label and score one task's corpus; build every method's weights."""
    from procvlm.data import open_dataset
    from procvlm.reward.rabc import progress_from_labels

    root = _corpus(out / "data" / task, task, cfg)
    ds = open_dataset(root)
    eps = [ds.episode(i, cameras=[]) for i in ds.episode_indices]
    compact, done = _model_scores(root, cfg.model)
    sources = {"time": progress_from_labels(root, "time"),
               "procvlm": progress_from_labels(root, "procvlm"), "compact": compact}
    if all(e.true_progress is not None for e in eps):
        sources["truth"] = {e.episode_index: e.true_progress for e in eps}
    if not any(e.success for e in eps):
        raise ProcvlmError(f"no episode of {task} in {root} succeeded, so the oracle has nothing "
                           "to train on: pass more --episodes or a lower --failure-rate")
    weights = method_weights(sources, done, [(e.episode_index, len(e), bool(e.success))
                                             for e in eps], cfg)
    info = [{"index": e.episode_index, "length": len(e), "success": bool(e.success),
             "failure": e.meta.get("failure")} for e in eps]
    same_as = {}
    for k, m in enumerate(weights):
        first = next((o for o in list(weights)[:k] if o not in same_as and weights[o] is not None
                      and weights[m] is not None and np.array_equal(weights[o], weights[m])),
                     None)
        if first is not None:
            same_as[m] = first
    return TaskData(task, np.concatenate([e.state for e in eps]),
                    np.concatenate([e.action for e in eps]), weights, info, same_as)


def _cell_path(out: Path, task: str, method: str, seed: int) -> Path:
    return out / "results" / task / f"{method}_seed{seed}.json"


def run_cell(out: Path, data: TaskData, method: str, seed: int, cfg: PolicyConfig,
             sims: list) -> list[Rollout]:
    """Train one policy and roll it out in ``sims`` (or read the saved rollouts of a finished
    cell; a method sharing another's weights reads that one's)."""
    method = data.same_as.get(method, method)
    path = _cell_path(out, data.task, method, seed)
    if path.is_file():
        return [Rollout(**r) for r in json.loads(path.read_text())["rollouts"]]
    policy = train_bc(data.states, data.actions, data.weights[method], cfg.bc, seed)
    rollouts = evaluate(sims, policy, cfg.rollouts, cfg.horizon)
    write_json(path, {"task": data.task, "method": method, "seed": seed,
                      "rollouts": [asdict(r) for r in rollouts]})
    _save_policy(out, data.task, method, seed, policy)
    return rollouts


def _save_policy(out: Path, task: str, method: str, seed: int, policy: MLPPolicy) -> None:
    from safetensors.torch import save_file

    from procvlm._io import atomic_path

    path = out / "policies" / task / f"{method}_seed{seed}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in policy.state_dict().items()}, str(tmp))


def load_policy(out: Path, task: str, method: str, seed: int, state_dim: int, action_dim: int,
                cfg: PolicyConfig) -> MLPPolicy:
    """A policy saved by ``run_cell``."""
    from safetensors.torch import load_file

    policy = MLPPolicy(state_dim, action_dim, cfg.bc)
    policy.load_state_dict(load_file(str(out / "policies" / task / f"{method}_seed{seed}"
                                         ".safetensors")))
    return policy.eval()


def check_out(out: Path, cfg: PolicyConfig) -> None:
    """Record the configuration in ``out``; refuse a folder holding another one's results."""
    path = out / "config.json"
    want = json.loads(json.dumps(cfg.to_dict()))
    if path.is_file() and json.loads(path.read_text()) != want:
        raise ProcvlmError(f"{out} holds a run with other settings ({path}): pass a new --out "
                           "or the same settings to resume")
    write_json(path, want)


def quick_config(**overrides) -> PolicyConfig:
    """``QUICK`` with some fields replaced."""
    return replace(QUICK, **overrides)


def corpus_summary(data: TaskData) -> dict:
    """Episodes, successes and failure modes of a task's corpus, and the mean weight every
    method gives the frames of successful episodes and of each failure mode."""
    kinds = np.concatenate([np.full(e["length"], "expert" if e["failure"] is None
                                    else e["failure"], dtype=object) for e in data.episodes])
    success = np.concatenate([np.full(e["length"], e["success"]) for e in data.episodes])
    groups = {"successful episodes": success, "failed episodes": ~success}
    groups.update({f"{k} episodes": kinds == k for k in dict.fromkeys(kinds)})
    weights = {}
    for m, w in data.weights.items():
        w = np.ones(len(success), np.float32) if w is None else w
        weights[m] = {g: round(float(w[mask].mean()), 3) for g, mask in groups.items()
                      if mask.any()}
    return {"episodes": len(data.episodes), "frames": int(len(data.states)),
            "successful": int(sum(e["success"] for e in data.episodes)),
            "failure_modes": {str(k): int(sum(1 for e in data.episodes if e["failure"] == k))
                              for k in dict.fromkeys(e["failure"] for e in data.episodes)},
            "mean_weight": weights}


@dataclass
class PolicyResult:
    """Where the experiment put its outputs, and its summary."""

    out: Path
    table: str
    json: Path
    markdown: Path
    chart: Path
    strips: list[Path]
    summary: dict


def _strips(out: Path, data: TaskData, cfg: PolicyConfig,
            rollouts: dict[str, list[list[Rollout]]]) -> list[Path]:
    """Frame strips of the first failed rollout of seed 0 of plain BC and of procvlm-weighted
    BC (both weightings), replayed exactly as evaluated."""
    from procvlm.models import load_model
    from procvlm.policy.evaluate import replay_strip, state_envs
    from procvlm.sim.env import SimEnv
    from procvlm.sim.tasks import get_task

    spec = get_task(data.task)
    paths, model = [], load_model(cfg.model)
    sims = state_envs(spec, min(cfg.vector, cfg.rollouts))
    camera = SimEnv(spec, width=cfg.size, height=cfg.size, cameras=(cfg.camera,))
    try:
        for method in ("bc", "procvlm", "top-procvlm"):
            failed = next((r for r in rollouts.get(method, [[]])[0] if not r.success), None)
            if failed is None:
                continue
            policy = load_policy(out, data.task, data.same_as.get(method, method), 0,
                                 data.states.shape[1], data.actions.shape[1], cfg)
            title = (f"{data.task}, {METHODS[method]}, seed 0, rollout seed {failed.seed}: "
                     f"{failed.outcome} after {failed.steps} steps")
            paths.append(replay_strip(sims, camera, policy, failed, cfg.rollouts, cfg.horizon,
                                      out / f"failed_rollout_{data.task}_{method}.png", title,
                                      model))
    finally:
        for sim in [*sims, camera]:
            sim.close()
    return paths


def _run_task(out: Path, task: str, cfg: PolicyConfig, show_progress: bool,
              part: tuple[int, int] | None = None
              ) -> tuple[TaskData, dict[str, list[list[Rollout]]]]:
    """One task's corpus and cells (every n-th trained cell from the i-th with ``part``)."""
    import time

    from tqdm.auto import tqdm

    from procvlm.policy.evaluate import state_envs
    from procvlm.sim.tasks import get_task

    data = prepare_task(out, task, cfg)
    sims = state_envs(get_task(task), min(cfg.vector, cfg.rollouts))
    try:
        cells = [(m, s) for m in data.trained() for s in range(cfg.seeds)]
        if part is not None:  # a worker's share: every n-th cell
            cells = cells[part[0]::part[1]]
        results: dict[str, list[list[Rollout]]] = {m: [] for m in data.weights}
        for m, s in tqdm(cells, desc=f"policy {task}", disable=not show_progress):
            start = time.monotonic()
            results[m].append(run_cell(out, data, m, s, cfg, sims))
            logger.info("%s %s seed %d: %.0f%% success (%.1f s)", task, m, s,
                        100 * np.mean([r.success for r in results[m][-1]]),
                        time.monotonic() - start)
        for m, first in data.same_as.items():
            results[m] = results[first]
    finally:
        for sim in sims:
            sim.close()
    return data, results


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


def _worker(out: Path, task: str, cfg: PolicyConfig, part: tuple[int, int] | None) -> str:
    """A pool job: a task's corpus (``part`` None) or its share ``part`` of the cells."""
    if part is None:
        prepare_task(out, task, cfg)
    else:
        _run_task(out, task, cfg, False, part)
    return task


def _run_parallel(out: Path, cfg: PolicyConfig, workers: int) -> None:
    """Every task's corpus, then every trained cell, in ``workers`` processes (spawned: MuJoCo's
    GL contexts do not survive a fork)."""
    import multiprocessing as mp
    import os
    from concurrent.futures import ProcessPoolExecutor

    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                             initializer=_worker_init) as pool:
        # corpora first (a task's cells need its corpus); one task per worker at a time
        for task in pool.map(_worker, [out] * len(cfg.tasks), cfg.tasks,
                             [cfg] * len(cfg.tasks), [None] * len(cfg.tasks)):
            logger.info("%s: corpus ready", task)
        jobs = [(t, (i, workers)) for i in range(workers) for t in cfg.tasks]
        for task in pool.map(_worker, [out] * len(jobs), [t for t, _ in jobs],
                             [cfg] * len(jobs), [p for _, p in jobs]):
            logger.info("%s: a share of its cells done", task)


def run_experiment(out: str | Path, config: PolicyConfig | None = None,
                   show_progress: bool = True, only: str | None = None,
                   part: tuple[int, int] | None = None, workers: int = 1) -> PolicyResult | None:
    """Run the whole comparison into ``out`` (resumable; see the module docstring).

    Args:
        out: the run folder (data/, results/, policies/, policy.json/.md/.png, strips).
        config: sizes (``PolicyConfig()`` by default; ``QUICK`` for a test-sized run).
        show_progress: draw tqdm bars.
        only: run this one task's cells and stop (a worker: several can share ``out``, one
            task each; a final call without ``only`` then reads every cell and summarises).
        part: with ``only``, ``(i, n)`` runs every n-th cell from the i-th, so n workers can
            share one task once its corpus is written.
        workers: processes that share the corpora and cells (the results are the same for any
            number).

    Returns:
        The table, the output paths and the summary (None for a worker).
    """
    from procvlm.policy.report import summarize, write_outputs

    cfg = config or PolicyConfig()
    out = Path(out)
    if workers < 1:
        raise ProcvlmError(f"--workers {workers}: need >= 1")
    out.mkdir(parents=True, exist_ok=True)
    check_out(out, cfg)
    if only is not None:
        if only not in cfg.tasks:
            raise ProcvlmError(f"--only-task {only!r} is not one of the tasks {cfg.tasks}")
        if part is not None and not 0 <= part[0] < part[1]:
            raise ProcvlmError(f"--part {part[0]}/{part[1]}: need 0 <= i < n")
        _run_task(out, only, cfg, show_progress, part)
        return None
    if workers > 1:
        _run_parallel(out, cfg, workers)
    success: dict[str, dict[str, np.ndarray]] = {}
    outcomes: dict[str, dict[str, list[str]]] = {}
    corpus, strips, shared = {}, [], {}
    for task in cfg.tasks:
        data, results = _run_task(out, task, cfg, show_progress)
        corpus[task] = corpus_summary(data)
        shared[task] = data.same_as
        strips += _strips(out, data, cfg, results)
        success[task] = {m: np.array([[r.success for r in rs] for rs in per_seed], float)
                         for m, per_seed in results.items()}
        outcomes[task] = {m: [r.outcome for rs in per_seed for r in rs]
                          for m, per_seed in results.items()}
    summary = summarize(success, outcomes)
    names = {m: METHODS[m] for m in METHODS if any(m in success[t] for t in success)}
    paths = write_outputs(out, summary, names, {
        "config": cfg.to_dict(), "corpus": corpus, "references": REFERENCES,
        "same_weights": shared, "strips": [str(p) for p in strips]})
    logger.info("policy results in %s", out)
    return PolicyResult(out, paths["table"], paths["json"], paths["markdown"], paths["chart"],
                        strips, summary)
