"""procvlm.models.compact."""
