"""procvlm.models.vlm."""
