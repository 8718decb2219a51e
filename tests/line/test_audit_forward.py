"""The station's audit log travels with its results: every entry, exactly once, through the
station's least-privilege role; the line's copy keeps what was sent when the local log is edited."""

from __future__ import annotations

import json

from station.line.forwarder import Forwarder
from station.line.pg_store import PgResultStore
from station.security.audit import AuditLog
from tests.line.test_forwarder import _journal


def test_audit_entries_are_forwarded_once_and_the_lines_copy_keeps_the_original(tmp_path, pg, pg_admin):
    url, schema = pg
    journal, _ids = _journal(tmp_path, 1)
    log = AuditLog(journal.with_name("audit.jsonl"))
    log.append("refusal", what="role denied", operator="op1", serial="SN1")
    log.append("release", plan="plan.yaml", operator="eng1")
    fwd = Forwarder(journal, PgResultStore(url, schema=schema))
    try:
        fwd.forward_once()
        rows = pg_admin.execute("SELECT seq, kind, fields->>'what', prev, hash FROM audit_log ORDER BY seq").fetchall()
        assert [(r[0], r[1]) for r in rows] == [(1, "refusal"), (2, "release")]
        assert rows[0][2] == "role denied" and rows[1][3] == rows[0][4]  # the chain as written

        log.append("abort", run_id="r1", reason="operator")  # a refusal with no run behind it
        assert fwd.forward_once() == 0  # no run to upload, but the entry goes
        assert pg_admin.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 3

        # someone edits entry 1 on the station afterwards: the line still has what was sent
        path = journal.with_name("audit.jsonl")
        lines = path.read_text().splitlines()
        first = json.loads(lines[0])
        first["fields"]["what"] = "nothing happened"
        lines[0] = json.dumps(first, sort_keys=True, separators=(",", ":"))
        path.write_text("\n".join(lines) + "\n")
        assert AuditLog(path).verify()  # the local chain shows the edit ...
        fwd._db().execute("DELETE FROM line_audit_uploads")  # ... and a re-send changes nothing
        fwd.forward_once()
        kept = pg_admin.execute("SELECT fields->>'what' FROM audit_log WHERE seq = 1").fetchone()[0]
        assert kept == "role denied"
        assert pg_admin.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 3
    finally:
        fwd.stop()
