"""The plan language: YAML with positions, frozen models, units, safe expressions, validation."""
