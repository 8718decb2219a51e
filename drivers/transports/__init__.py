"""Transports chosen by resource string: VISA, serial, Modbus TCP/RTU, CAN."""
