"""Fixtures for the result-store tests (event builders live in result_events.py)."""

import pytest


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "nested" / "dir" / "results.db"  # the directory does not exist yet
