"""leak drivers."""
