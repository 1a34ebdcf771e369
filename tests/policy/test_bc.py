"""Behaviour cloning: weights decide which actions the policy copies; same steps for all."""

import numpy as np
import pytest
import torch

from procvlm.errors import ProcvlmError
from procvlm.policy.bc import BCConfig, train_bc

torch.set_num_threads(1)
CFG = BCConfig(hidden=32, steps=300, batch_size=64, lr=3e-3)


def conflicting_data(n=400):
    """Good frames act +0.8, bad frames (same states) act -0.8."""
    rng = np.random.default_rng(0)
    states = rng.normal(size=(2 * n, 5)).astype(np.float32)
    actions = np.r_[np.full((n, 2), 0.8), np.full((n, 2), -0.8)].astype(np.float32)
    good = np.r_[np.ones(n), np.zeros(n)].astype(np.float32)
    return states, actions, good


def test_weights_choose_which_actions_are_copied():
    s, a, good = conflicting_data()
    plain = train_bc(s, a, None, CFG, seed=0).act(s).mean()
    weighted = train_bc(s, a, good, CFG, seed=0).act(s).mean()
    assert abs(plain) < 0.3  # plain BC averages the good and the bad
    assert weighted > 0.6


def test_same_seed_same_policy_and_bad_weights():
    s, a, good = conflicting_data(50)
    cfg = BCConfig(hidden=8, steps=5, batch_size=8)
    p1, p2 = train_bc(s, a, good, cfg, 3), train_bc(s, a, good, cfg, 3)
    np.testing.assert_array_equal(p1.act(s), p2.act(s))
    with pytest.raises(ProcvlmError, match="positive sum"):
        train_bc(s, a, np.zeros(len(s)), cfg, 0)
    with pytest.raises(ProcvlmError, match="100 states, 100 actions, 3 weights"):
        train_bc(s, a, np.ones(3), cfg, 0)
    with pytest.raises(ProcvlmError, match="steps=0"):
        BCConfig(steps=0)
