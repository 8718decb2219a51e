"""Simulator: pack physics and simulated instruments on their real wire protocols."""
