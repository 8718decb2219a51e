"""The operator terminal UI (Textual): log in, scan, run, answer prompts, abort, see the verdict.

It consumes the sequencer's events and uses ``Session``/``prepare``/``RunRequest`` from
``station.runner``; it never talks to a driver itself (see ``backend.py`` for the one
read-only BMS listener that feeds the live-values line).
"""
