"""EOL station controller for EV traction battery packs."""

__version__ = "0.1.0"
