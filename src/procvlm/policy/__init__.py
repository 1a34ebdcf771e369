"""procvlm.policy."""
