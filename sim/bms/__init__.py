"""Simulated BMS: CAN cyclic frames, state machine, UDS server."""
