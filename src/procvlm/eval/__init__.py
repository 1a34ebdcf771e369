"""procvlm.eval."""
