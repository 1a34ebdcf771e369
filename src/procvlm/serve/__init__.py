"""procvlm.serve."""
