"""Instrument drivers: capability interfaces, vendor dialects, transports. Never imports station/ or sim/."""
