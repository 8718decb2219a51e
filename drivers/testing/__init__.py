"""Exact-exchange test doubles (PyMeasure ``expected_protocol`` style) for driver tests."""
