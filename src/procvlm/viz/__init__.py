"""Pictures of episodes for people: frame strips with sub-step timelines and progress curves."""

from procvlm.viz.strip import draw_strip, frame_indices

__all__ = ["draw_strip", "frame_indices"]
