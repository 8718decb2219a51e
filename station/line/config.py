"""Station-config models for line integration (to be fields of ``StationConfig``).

    results:
      db: results/station.db
      postgres_url: postgresql://eol@db.plant.local:5432/eol   # store-and-forward target
      postgres_schema: line1                                   # optional
    mqtt: {host: broker.plant.local, port: 8883, prefix: eol, username: eol-3,
           password_env: EOL_MQTT_PASSWORD, tls: {ca_file: /etc/eol/plant-ca.pem}}
    mes: {type: http, url: "https://mes.plant.local/eol", timeout: 5.0,
          headers_env: {Authorization: EOL_MES_AUTH}, tls: {ca_file: /etc/eol/plant-ca.pem}}
    # or  mes: {type: file, folder: /srv/mes/eol-3}

Strict like the rest of the config (``extra="forbid"``, frozen); no I/O happens here, and
neither psycopg nor paho is imported, so a station without the ``line`` extra loads its config.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")  # a plain, unquoted PostgreSQL name


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineResultsFields(_Model):
    """Fields to add to ``ResultsConfig``."""

    postgres_url: str | None = Field(None, description="PostgreSQL URL the runs are forwarded to "
                                     "(store-and-forward from the local store)")
    postgres_schema: str | None = Field(None, pattern=SCHEMA_NAME.pattern,
                                        description="Schema for the tables (default: search_path)")


class TlsConfig(_Model):
    """TLS to a plant server (paths relative to the config file)."""

    ca_file: str | None = Field(None, description="CA bundle that signed the server's "
                                "certificate (default: the system's)")
    cert_file: str | None = Field(None, description="client certificate (mutual TLS)")
    key_file: str | None = Field(None, description="its private key")
    verify: bool = Field(True, description="check the server's certificate and host name")


class MqttConfig(_Model):
    host: str = Field("127.0.0.1", description="MQTT broker host")
    port: int = Field(1883, ge=1, le=65535)
    prefix: str = Field("eol", description="Topic root: <prefix>/<station>/...")
    station_topic: str | None = Field(None, description="Topic level for this station "
                                      "(default: the station id)")
    keepalive: int = Field(10, ge=2, le=600, description="Seconds until the broker declares a "
                           "silent station offline (last will)")
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the "
                                     "password (never the password itself in the config)")
    tls: TlsConfig | None = None


class FileMesConfig(_Model):
    type: Literal["file"]
    folder: str = Field(description="Folder shared with the MES, relative to the config file")
    require_known: bool = Field(False, description="Refuse serials the MES has no route file for")


class HttpMesConfig(_Model):
    type: Literal["http"]
    url: str = Field(description="Base URL; POST {url}/route-check and {url}/upload")
    timeout: float = Field(5.0, gt=0, le=120, description="Per request, s")
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")
    headers_env: dict[str, str] = Field(default_factory=dict, description="header -> environment "
                                        "variable holding its value (API keys, tokens)")
    tls: TlsConfig | None = None


MesConfig = Annotated[FileMesConfig | HttpMesConfig, Field(discriminator="type")]


class LineConfigFields(_Model):
    """Top-level fields to add to ``StationConfig``."""

    mqtt: MqttConfig | None = None
    mes: MesConfig | None = None


class OpcUaConfig(_Model):
    """The station's state as an OPC UA server (asyncua) for the line's SCADA."""

    host: str = Field("127.0.0.1", description="address to listen on (loopback by default)")
    port: int = Field(4840, ge=0, le=65535, description="TCP port (0: any free one)")
    writable: bool = Field(False, description="let clients write the variables (read-only "
                           "by default: the station is the only source of its state)")
