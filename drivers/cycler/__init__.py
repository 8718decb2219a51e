"""cycler drivers."""
