"""Simulated instruments serving real protocols on loopback."""
