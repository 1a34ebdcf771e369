"""procvlm.labels."""
