"""procvlm.sim."""
