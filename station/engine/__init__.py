"""The sequencer: runs a bound plan, judges measurements, runs monitors, always reaches the safe state."""
