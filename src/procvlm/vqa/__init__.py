"""procvlm.vqa."""
