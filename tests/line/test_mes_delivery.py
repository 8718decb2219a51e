"""`station run` with an HTTP(S) MES on loopback, as a process: the route check decides before
anything is touched (exit 4 when the MES says no or cannot answer); the upload never changes
the verdict or exit code (an MES answering 503 gets the record later from the journal's
outbox); auth headers and TLS settings; the transaction id in the record export."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from station import clock
from station.line.mes import HttpMes, MesError, tls_context
from station.line.mes_outbox import MesOutbox
from tests.line.line_helpers import write_station

ROOT = Path(__file__).resolve().parents[2]
FAST_PLAN = """\
schema_version: 1
id: line-fast
version: 1.0.0
title: Line MES test plan
instruments: []
main:
  - id: cells
    station.calc: {cell_v_mean: 3.31}
    expect: {cell_v_mean: {min: 3.2, max: 3.4}}
"""


class Mes(BaseHTTPRequestHandler):
    route = "ok"  # ok | refuse | fail
    upload_failures = 0
    token = "Bearer t0k"
    calls: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        cls.calls.append((self.path, body, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != cls.token:
            return self._answer(401, {"error": "unauthorised"})
        if self.path.endswith("/route-check"):
            if cls.route == "fail":
                return self._answer(503, {"error": "busy"})
            return self._answer(200, {"allowed": cls.route == "ok", "reason": "scrapped pack"
                                      if cls.route == "refuse" else "", "transaction_id": "TX-7"})
        if cls.upload_failures > 0:
            cls.upload_failures -= 1
            return self._answer(503, {"error": "maintenance"})
        return self._answer(200, {"ok": True})

    def _answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the test's plant CA and server at once)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mes.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "mes.pem", folder / "mes.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def https_mes(tmp_path):
    pytest.importorskip("cryptography")
    cert, key = _certificate(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Mes)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    Mes.route, Mes.upload_failures, Mes.calls = "ok", 0, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/eol", cert
    server.shutdown()
    server.server_close()


def _station(tmp_path: Path, url: str, ca: Path) -> Path:
    config = write_station(tmp_path / "st", "EOL-MES", extra=(
        f"mes: {{type: http, url: '{url}', timeout: 2, headers_env: {{Authorization: "
        f"EOL_TEST_MES_AUTH}}, tls: {{ca_file: '{ca}'}}}}\n"))
    (config.parent / "plan.yaml").write_text(FAST_PLAN)
    return config


def _run(config: Path, serial: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "EOL_TEST_MES_AUTH": "Bearer t0k"}
    return subprocess.run(
        [sys.executable, "-m", "station.cli", "run", str(config.parent / "plan.yaml"),
         "--station", str(config), "--serial", serial, "--plain", *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _runs(config: Path) -> int:
    db = config.parent / "results" / "station.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


def test_route_check_refused_or_unanswered_exits_4_touching_nothing(tmp_path, https_mes):
    url, ca = https_mes
    config = _station(tmp_path, url, ca)
    Mes.route = "refuse"
    done = _run(config, "PK-1")
    assert done.returncode == 4, done.stderr
    assert "refused by the line" in done.stderr and "scrapped pack" in done.stderr
    assert "Traceback" not in done.stderr and _runs(config) == 0
    Mes.route = "fail"  # the MES cannot answer: the line refuses the run too
    done = _run(config, "PK-2")
    assert done.returncode == 4, done.stderr
    assert "got no answer" in done.stderr and "HTTP 503" in done.stderr
    assert "Traceback" not in done.stderr and _runs(config) == 0


def test_upload_failure_never_changes_the_exit_code_and_is_delivered_later(tmp_path,
                                                                           https_mes):
    url, ca = https_mes
    config = _station(tmp_path, url, ca)
    Mes.upload_failures = 1000  # the MES takes no upload during this run
    done = _run(config, "PK-3", "--json", str(tmp_path / "r.json"), "--junit",
                str(tmp_path / "r.xml"), "--report", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr  # PASS, whatever the MES says afterwards
    assert "Traceback" not in done.stderr and "not all delivered yet" in done.stderr
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["mes_transaction_id"] == "TX-7" and record["verdict"] == "PASS"
    # ... and in every other export of the record.
    assert '<property name="mes_transaction_id" value="TX-7"' in (tmp_path / "r.xml").read_text()
    assert "TX-7" in (tmp_path / "r.html").read_text()
    uploads = [c for c in Mes.calls if c[0].endswith("/upload")]
    assert uploads and all(c[2] == "Bearer t0k" for c in Mes.calls)  # auth on every call
    status = subprocess.run([sys.executable, "-m", "station.cli", "line", "status", "--station",
                             str(config), "--json"], cwd=ROOT, capture_output=True, text=True)
    assert status.returncode == 1, status.stderr  # a backlog
    (row,) = json.loads(status.stdout)
    assert row["backlog"] == 1 and "HTTP 503" in row["last_error"]
    # The MES is back: the next process's outbox delivers the queued record, exactly once.
    Mes.upload_failures = 0
    journal = config.parent / "results" / "station.db"
    mes = HttpMes(url, headers={"Authorization": "Bearer t0k"}, ssl_context=tls_context(str(ca)))
    outbox = MesOutbox(journal, mes)
    assert clock.run(outbox.deliver_once()) == 1
    assert clock.run(outbox.deliver_once()) == 0
    delivered = [c for c in Mes.calls if c[0].endswith("/upload")][-1][1]
    assert delivered["transaction_id"] == "TX-7"
    assert delivered["record"]["run_id"] == record["run_id"]
    outbox.stop()


def test_tls_is_checked_and_auth_headers_are_sent(https_mes, tmp_path):
    url, ca = https_mes
    bare = HttpMes(url, headers={"Authorization": "Bearer t0k"})  # the system CAs only
    with pytest.raises(MesError, match="CERTIFICATE_VERIFY_FAILED"):
        clock.run(bare.route_check("PK-1", "EOL-1", "p"))
    no_auth = HttpMes(url, ssl_context=tls_context(str(ca)))
    with pytest.raises(MesError, match="HTTP 401"):
        clock.run(no_auth.route_check("PK-1", "EOL-1", "p"))
    good = HttpMes(url, headers={"Authorization": "Bearer t0k"},
                   ssl_context=tls_context(str(ca)))
    assert clock.run(good.route_check("PK-1", "EOL-1", "p")).transaction_id == "TX-7"
