"""dmm drivers."""
