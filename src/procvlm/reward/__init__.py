"""Progress as reward: dataset scoring, reward shaping, RA-BC sample weights."""

from procvlm.reward.rabc import normalize_batch, progress_deltas, rabc_weights
from procvlm.reward.score import (potential_shaping, progress_delta, score_dataset,
                                  shaped_reward, to_rabc_table)

__all__ = ["normalize_batch", "potential_shaping", "progress_delta", "progress_deltas",
           "rabc_weights", "score_dataset", "shaped_reward", "to_rabc_table"]
