"""Policy learning on MetaWorld with progress: behaviour cloning against progress-weighted
behaviour cloning (weights from any progress source), and an online RL check through
``procvlm.reward.wrapper.ProgressReward``."""

from procvlm.policy.envs import make_env

__all__ = ["make_env"]
