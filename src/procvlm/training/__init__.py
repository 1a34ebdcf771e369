"""procvlm.training."""
