"""MES hooks: a route check before a run (may this serial be tested here now?) and an upload
of the record after it, tied together by the MES transaction id.

``Mes`` is the interface; ``FileMes`` (a folder of JSON files, for plants whose MES polls a
share), ``HttpMes`` (JSON over HTTP with urllib) and ``FakeMes`` (tests) implement it. Methods
are coroutines: ``HttpMes`` does its blocking urllib call in ``run_in_executor`` (which also
holds a virtual clock on real time), so the station's loop never blocks on the MES.

The record keeps the transaction id: until RunStarted grows a ``mes_transaction_id`` field,
the runner journals ``transaction_log(decision)`` as an info LogMessage, which the PostgreSQL
store lifts into ``runs.mes_transaction_id`` and ``transaction_id_of(record)`` reads back.

HTTP contract (``HttpMes(base_url)``), both POST with a JSON body, answering JSON 200:

- ``{base}/route-check`` ``{"serial", "station", "plan"}`` →
  ``{"allowed": bool, "reason": str, "transaction_id": str, "components"?: [{"kind":
  "bms"|"module"|"cell"|"other", "position": str, "serial": str}]}`` — the components the
  MES knows went into the pack (genealogy, stored with the run in the line database)
- ``{base}/upload`` ``{"transaction_id", "record"}`` → anything; any non-2xx is an error
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from station.results.record import to_jsonable, write_text_atomic

from .pg_rows import MES_PREFIX


class MesError(Exception):
    """The MES could not be asked or told; names the MES and the command."""


@dataclass(frozen=True)
class RouteDecision:
    """The MES answer: ``allowed`` to test, ``reason`` (shown to the operator), and the
    ``transaction_id`` that the record and the upload carry."""

    allowed: bool
    reason: str = ""
    transaction_id: str = ""
    components: tuple[tuple[str, str, str], ...] = ()  # (kind, position, serial)


_KINDS = ("bms", "module", "cell", "other")


def components_of(answer: dict[str, Any], where: str) -> tuple[tuple[str, str, str], ...]:
    """The ``components`` of a route-check answer, checked; raises ``MesError``."""
    items = answer.get("components") or []
    out = []
    for n, item in enumerate(items if isinstance(items, list) else [None]):
        ok = isinstance(item, dict) and item.get("kind") in _KINDS and \
            isinstance(item.get("serial"), str) and item["serial"].strip()
        if not ok:
            raise MesError(f"{where}: components[{n}] must be {{\"kind\": "
                           f"{'|'.join(_KINDS)}, \"position\": str, \"serial\": str}}")
        out.append((item["kind"], str(item.get("position", "")), item["serial"].strip()))
    return tuple(out)


class Mes(Protocol):
    name: str

    async def route_check(self, serial: str, station: str, plan: str) -> RouteDecision: ...

    async def upload(self, record: dict[str, Any], transaction_id: str) -> None: ...


def transaction_log(decision: RouteDecision) -> str:
    """The LogMessage text that keeps the transaction id in the record."""
    return f"{MES_PREFIX}{decision.transaction_id}"


def transaction_id_of(record: dict[str, Any]) -> str | None:
    """The MES transaction id a record carries (field, else the LogMessage), or None."""
    if record.get("mes_transaction_id"):
        return str(record["mes_transaction_id"])
    for entry in record.get("log", []):
        message = str(entry.get("message", ""))
        if message.startswith(MES_PREFIX):
            return message[len(MES_PREFIX):].strip()
    return None


def _utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _file_name(text: str) -> str:
    # Scanners deliver anything; a serial must never become a path ("../x", "a/b", "..").
    return urllib.parse.quote(text, safe="").replace(".", "%2E") or "%00"


class FileMes:
    """An MES that is a folder of JSON files.

    - ``<folder>/route/<serial>.json`` (written by the MES): ``{"allowed": bool, "reason": str}``;
      a serial without a file is allowed unless ``require_known``.
    - ``<folder>/checks/<transaction>.json``: each route check asked (serial, station, plan).
    - ``<folder>/uploads/<transaction>.json``: ``{"transaction_id", "uploaded_utc", "record"}``.
    Files are written atomically (temp file + rename), so a poller never reads half of one.
    """

    def __init__(self, folder: str | Path, *, require_known: bool = False) -> None:
        self.folder = Path(folder)
        self.require_known = require_known
        self.name = f"file MES {self.folder}"

    async def route_check(self, serial: str, station: str, plan: str) -> RouteDecision:
        route = self.folder / "route" / f"{_file_name(serial)}.json"
        try:
            answer = json.loads(route.read_text(encoding="utf-8")) if route.is_file() else None
        except (OSError, ValueError) as exc:
            raise MesError(f"{self.name}: route check of {serial!r}: cannot read {route}: "
                           f"{exc}") from exc
        if answer is None:
            allowed = not self.require_known
            reason = "" if allowed else f"serial {serial!r} unknown to the MES"
        elif not isinstance(answer, dict) or not isinstance(answer.get("allowed"), bool):
            raise MesError(f"{self.name}: route check of {serial!r}: {route} must hold "
                           f'{{"allowed": true|false, "reason": "..."}}')
        else:
            allowed, reason = answer["allowed"], str(answer.get("reason", ""))
        parts = components_of(answer, f"{self.name}: {route}") if answer else ()
        txid = uuid.uuid4().hex
        self._write("checks", txid, {"transaction_id": txid, "serial": serial, "station": station,
                                     "plan": plan, "allowed": allowed, "reason": reason,
                                     "utc": _utc()}, f"route check of {serial!r}")
        return RouteDecision(allowed, reason, txid, parts)

    async def upload(self, record: dict[str, Any], transaction_id: str) -> None:
        self._write("uploads", transaction_id, {"transaction_id": transaction_id,
                                                "uploaded_utc": _utc(), "record": record},
                    f"upload of run {record.get('run_id')}")

    def _write(self, kind: str, txid: str, body: dict[str, Any], what: str) -> None:
        try:
            write_text_atomic(self.folder / kind / f"{_file_name(txid)}.json",
                              json.dumps(to_jsonable(body), indent=1))
        except OSError as exc:
            raise MesError(f"{self.name}: {what}: {exc}") from exc


class HttpMes:
    """An MES reached over HTTP (see the module docstring for the contract).

    ``base_url``: e.g. ``http://mes.plant.local/eol``. ``timeout_s``: per request, s.
    ``headers``: extra request headers (an API key, say). ``ssl_context``: for https (see
    ``tls_context``); default: the system's CAs.
    """

    def __init__(self, base_url: str, *, timeout_s: float = 5.0,
                 headers: dict[str, str] | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
            raise MesError(f"HTTP MES {base_url}: the URL must start with http:// or https://")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.ssl_context = ssl_context
        self.name = f"HTTP MES {self.base_url}"

    def _post(self, command: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"{self.base_url}/{command}", method="POST",
            data=json.dumps(to_jsonable(body)).encode(),
            headers={"Content-Type": "application/json", **self.headers})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s,
                                        context=self.ssl_context) as response:
                text = response.read().decode("utf-8")
            return json.loads(text) if text.strip() else None
        except urllib.error.HTTPError as exc:
            raise MesError(f"{self.name}: {command}: HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise MesError(f"{self.name}: {command}: {exc}") from exc

    async def _call(self, command: str, body: dict[str, Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, self._post, command, body)

    async def route_check(self, serial: str, station: str, plan: str) -> RouteDecision:
        answer = await self._call("route-check", {"serial": serial, "station": station,
                                                  "plan": plan})
        if not isinstance(answer, dict) or not isinstance(answer.get("allowed"), bool) \
                or not answer.get("transaction_id"):
            raise MesError(f"{self.name}: route-check: bad answer {answer!r} (needs allowed, "
                           f"reason, transaction_id)")
        return RouteDecision(answer["allowed"], str(answer.get("reason", "")),
                             str(answer["transaction_id"]),
                             components_of(answer, f"{self.name}: route-check"))

    async def upload(self, record: dict[str, Any], transaction_id: str) -> None:
        await self._call("upload", {"transaction_id": transaction_id, "record": record})


def tls_context(ca_file: str | None = None, cert_file: str | None = None,
                key_file: str | None = None, verify: bool = True) -> ssl.SSLContext:
    """A client TLS context: the plant CA (else the system's), optional client certificate."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise MesError(f"TLS settings: {exc}") from exc
    return context


@dataclass
class FakeMes:
    """An MES for tests: ``blocked`` maps serial → reason; remembers every call.

    ``fail_uploads``: the next n uploads raise ``MesError`` (to test the caller's handling).
    """

    blocked: dict[str, str] = field(default_factory=dict)
    fail_uploads: int = 0
    name: str = "fake MES"
    checks: list[tuple[str, str, str, RouteDecision]] = field(default_factory=list)
    uploads: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    async def route_check(self, serial: str, station: str, plan: str) -> RouteDecision:
        reason = self.blocked.get(serial)
        decision = RouteDecision(reason is None, reason or "", f"fake-{len(self.checks) + 1}")
        self.checks.append((serial, station, plan, decision))
        return decision

    async def upload(self, record: dict[str, Any], transaction_id: str) -> None:
        if self.fail_uploads > 0:
            self.fail_uploads -= 1
            raise MesError(f"{self.name}: upload of run {record.get('run_id')}: refused")
        self.uploads.append((transaction_id, record))
