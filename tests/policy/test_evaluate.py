"""Lockstep rollouts without a renderer, and a recorded replay that repeats them exactly."""

import numpy as np
import pytest
import torch

from procvlm.errors import ProcvlmError
from procvlm.policy.bc import BCConfig, MLPPolicy
from procvlm.policy.evaluate import EVAL_SEED_OFFSET, evaluate, run_batch, state_envs
from procvlm.sim.env import SimEnv
from procvlm.sim.tasks import get_task


@pytest.mark.sim
def test_lockstep_rollouts_and_an_exact_recorded_replay():
    torch.manual_seed(0)
    policy = MLPPolicy(39, 4, BCConfig(hidden=8, layers=1)).eval()
    spec = get_task("button-press")
    sims = state_envs(spec, 2)
    camera = SimEnv(spec, width=32, height=32, cameras=("corner",))
    try:
        assert all(s.cameras._renderer is None for s in sims)
        rollouts = evaluate(sims, policy, 3, 12)
        assert [r.seed for r in rollouts] == [EVAL_SEED_OFFSET + k for k in range(3)]
        assert all(1 <= r.steps <= 12 for r in rollouts)
        # rollout 2 ran alone in the second batch; replay it there with a camera
        again, trace = run_batch([camera], policy, [EVAL_SEED_OFFSET + 2], 12, record=0)
        assert again == rollouts[2:]
        assert len(trace["frames"]) == rollouts[2].steps
        assert trace["frames"][0].shape == (32, 32, 3)
        np.testing.assert_array_equal(trace["states"][0], camera.reset(EVAL_SEED_OFFSET + 2))
        with pytest.raises(ProcvlmError, match="3 seeds for 2 environments"):
            run_batch(sims, policy, [1, 2, 3], 5)
    finally:
        for s in [*sims, camera]:
            s.close()
