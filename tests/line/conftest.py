"""Fixtures: a throw-away PostgreSQL schema per test, the MQTT broker, a TCP proxy."""

from __future__ import annotations

import socket

import pytest

from tests.line.line_helpers import MQTT_HOST, MQTT_PORT, PG_URL, TcpProxy, random_name


@pytest.fixture
def pg():
    """(url, schema): a fresh schema, dropped after the test. Skips without PostgreSQL."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    schema = random_name("eol_test_")
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield PG_URL, schema
    finally:
        admin.execute("SET lock_timeout = '10s'")  # a leaked open transaction fails loudly
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


@pytest.fixture
def pg_admin(pg):
    import psycopg

    url, schema = pg
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}") as conn:
        yield conn


@pytest.fixture
def proxy():
    p = TcpProxy(5432).up()
    yield p
    p.close()


@pytest.fixture
def mqtt_broker():
    pytest.importorskip("paho.mqtt")
    try:
        socket.create_connection((MQTT_HOST, MQTT_PORT), timeout=2).close()
    except OSError as exc:
        pytest.skip(f"MQTT broker not reachable at {MQTT_HOST}:{MQTT_PORT}: {exc}")
    return MQTT_HOST, MQTT_PORT
