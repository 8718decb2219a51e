"""bms drivers."""
