"""Fixtures: a throw-away PostgreSQL schema and least-privilege roles per test, the MQTT broker,
a TCP proxy.

``pg`` is what a station gets: a schema migrated by the admin (``station db migrate``'s code)
and the URL of a *station role* that holds only SELECT/INSERT/UPDATE on its tables — every
line test writes with that role. ``pg_roles`` has the admin and SELECT-only reader URLs too.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import pytest

from tests.line.line_helpers import MQTT_HOST, MQTT_PORT, PG_URL, TcpProxy, random_name


@dataclass(frozen=True)
class PgRoles:
    admin_url: str
    station_url: str
    reader_url: str
    schema: str
    station_role: str
    reader_role: str


def role_url(role: str, base: str = PG_URL) -> str:
    return base.replace("postgresql://postgres@", f"postgresql://{role}@", 1)


@pytest.fixture
def pg_roles():
    """A fresh schema migrated by the admin, with a station and a reader role; all dropped."""
    psycopg = pytest.importorskip("psycopg")
    from station.line import pg_migrate

    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    schema = random_name("eol_test_")
    station, reader = random_name("eol_station_"), random_name("eol_reader_")
    for role in (station, reader):
        admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        with psycopg.connect(PG_URL, autocommit=True,
                             options=f"-c search_path={schema}") as conn:
            pg_migrate.migrate(conn, schema, station_roles=(station,), reader_roles=(reader,))
        yield PgRoles(PG_URL, role_url(station), role_url(reader), schema, station, reader)
    finally:
        admin.execute("SET lock_timeout = '10s'")  # a leaked open transaction fails loudly
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        for role in (station, reader):
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")
        admin.close()


@pytest.fixture
def pg(pg_roles):
    """(station role URL, schema)."""
    return pg_roles.station_url, pg_roles.schema


@pytest.fixture
def pg_admin(pg_roles):
    import psycopg

    with psycopg.connect(pg_roles.admin_url, autocommit=True,
                         options=f"-c search_path={pg_roles.schema}") as conn:
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
