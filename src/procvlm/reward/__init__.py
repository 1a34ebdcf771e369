"""procvlm.reward."""
