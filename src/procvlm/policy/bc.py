"""Behaviour cloning of a state-based MLP policy, plain or progress-weighted (RA-BC).

Every method sees the same frames and takes the same number of gradient steps on the same
mini-batches (uniform over all frames, one seeded generator); weights only rescale each
sample's loss, normalised by the batch's weight sum as LeRobot's RA-BC does:
``loss = sum_i w_i * |a_i - pi(s_i)|^2 / (sum_i w_i + eps)``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BCConfig:
    """Policy network and optimisation of one behaviour-cloning run."""

    hidden: int = field(default=256, metadata={"help": "width of the hidden layers"})
    layers: int = field(default=2, metadata={"help": "hidden layers"})
    steps: int = field(default=2000, metadata={"help": "gradient steps (same for every method)"})
    batch_size: int = field(default=256, metadata={"help": "frames per step"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ProcvlmError(f"BCConfig.{name}={getattr(self, name)}: need >= 1")
        if self.lr <= 0:
            raise ProcvlmError(f"BCConfig.lr={self.lr}: need > 0")


class MLPPolicy(nn.Module):
    """State -> action MLP with the training set's state normalisation built in."""

    def __init__(self, state_dim: int, action_dim: int, config: BCConfig) -> None:
        super().__init__()
        dims = [state_dim] + [config.hidden] * config.layers
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(dims[-1], action_dim))
        self.register_buffer("mean", torch.zeros(state_dim))
        self.register_buffer("std", torch.ones(state_dim))

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net((state - self.mean) / self.std)

    @torch.inference_mode()
    def act(self, state: np.ndarray) -> np.ndarray:
        """(A,) action in [-1, 1] for one (D,) state, or (B, A) for (B, D)."""
        x = torch.as_tensor(np.asarray(state, np.float32))
        return self(x).clamp(-1.0, 1.0).numpy()


def train_bc(states: np.ndarray, actions: np.ndarray, weights: np.ndarray | None,
             config: BCConfig, seed: int) -> MLPPolicy:
    """Fit a policy to (state, action) frames, each sample's loss scaled by its weight.

    Args:
        states: (N, D) float states.
        actions: (N, A) float actions in [-1, 1].
        weights: (N,) non-negative sample weights, or None for plain BC (all ones).
        config: network and optimisation.
        seed: initialisation and mini-batch order.

    Returns:
        The trained policy in eval mode.
    """
    s = torch.as_tensor(np.asarray(states, np.float32))
    a = torch.as_tensor(np.asarray(actions, np.float32))
    w = torch.ones(len(s)) if weights is None else torch.as_tensor(np.asarray(weights,
                                                                              np.float32))
    if not len(s) == len(a) == len(w) or len(s) == 0:
        raise ProcvlmError(f"{len(s)} states, {len(a)} actions, {len(w)} weights: pass one of "
                           "each per frame, at least one frame")
    if float(w.sum()) <= 0 or bool((w < 0).any()):
        raise ProcvlmError("sample weights must be non-negative with a positive sum")
    torch.manual_seed(seed)
    policy = MLPPolicy(s.shape[1], a.shape[1], config)
    policy.mean.copy_(s.mean(0))
    policy.std.copy_(s.std(0).clamp(min=1e-3))
    opt = torch.optim.Adam(policy.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(config.steps):
        idx = torch.randint(0, len(s), (config.batch_size,), generator=gen)
        per_sample = ((policy(s[idx]) - a[idx]) ** 2).mean(1)  # (B,)
        loss = (w[idx] * per_sample).sum() / (w[idx].sum() + 1e-6)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return policy.eval()
