"""A BMS's DIDs, routines and DTCs from the supplier's ODX (PDX archive or ODX-D file), via odxtools.

Read from one ECU variant (``ecu``; the only one if there is one):

* **DIDs**: every ReadDataByIdentifier (0x22) service whose request is ``SID, DID`` (coded
  constants) and whose positive response carries one value parameter after the DID. The DID's
  name is that parameter's short name; its length the DOP's bit length / 8; its codec from the
  DOP's coded type: ``A_ASCIISTRING``/``A_UTF8STRING`` -> ascii, ``A_UINT32`` -> uint,
  ``A_BYTEFIELD`` -> hex. A WriteDataByIdentifier (0x2E) service on the same DID makes it
  writable; its special data ``SECURITY_LEVEL`` (SD semantic info) is the level to unlock first.
* **Routines**: RoutineControl (0x31) services: routine id -> service short name.
* **DTCs**: the DTC-DOPs' trouble codes -> their text.

Seed/key algorithms are never in ODX (they ship as supplier code): the profile's
``diagnostics.security`` gives them, as the ``security`` section of a YAML DID table.
The result is a ``DidTable`` (drivers/bms/did_table.py) with ``routines`` and ``dtcs`` beside it,
so the UDS client, the actions and the simulated ECU use it unchanged. Problems name the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from drivers.base import safefile
from drivers.bms.did_table import DidEntry, DidTable, DidTableError, SecurityLevel
from drivers.maps import mapfile

_CODECS = {"A_ASCIISTRING": "ascii", "A_UTF8STRING": "ascii", "A_UINT32": "uint", "A_BYTEFIELD": "hex"}


@dataclass(frozen=True)
class OdxDiagnostics(DidTable):
    """A DID table read from ODX, with the ECU's routines and DTC texts."""

    routines: Any = field(default_factory=dict)  # routine id -> name
    dtcs: Any = field(default_factory=dict)  # DTC number -> text


ODX_MAX_BYTES = 200_000_000  # a whole-vehicle PDX archive runs to tens of MB


def load_odx(path: str | Path, *, ecu: str | None = None,
             security: dict[int, SecurityLevel] | None = None) -> OdxDiagnostics:
    """Read ``path`` (``.pdx``, ``.odx-d``; parsed once per file content and ECU) with the
    seed/key ``security`` levels the profile gives."""
    return replace(_cached(Path(path), ecu), security=MappingProxyType(dict(security or {})))


def _load(path: str, ecu: str | None) -> OdxDiagnostics:
    import odxtools  # lazy: only profiles that name ODX need it

    try:  # odxtools opens the file itself: refuse a FIFO, device, directory or giant file first
        safefile.check_readable(path, max_bytes=ODX_MAX_BYTES)
    except safefile.UnsafeFile as exc:
        raise DidTableError([f"{path}:1:1: cannot read ODX: {exc.message}"]) from None
    try:
        db = odxtools.load_pdx_file(path) if path.lower().endswith(".pdx") else odxtools.load_file(path)
    except Exception as exc:  # odxtools raises many kinds on a malformed file: all are this file's problem
        raise DidTableError([f"{path}:1:1: cannot read ODX: {type(exc).__name__}: {exc}"]) from exc
    names = [e.short_name for e in db.ecus]
    if ecu is None and len(names) == 1:
        ecu = names[0]
    if ecu not in names:
        raise DidTableError([f"{path}:1:1: ECU variant {ecu!r} not in the ODX; variants: {', '.join(names) or 'none'}"])
    variant = db.ecus[ecu]
    entries: dict[int, DidEntry] = {}
    writes: dict[int, int] = {}  # DID -> security level of its write service
    routines: dict[int, str] = {}
    problems: list[str] = []
    for service in variant.services:
        request = getattr(service, "request", None)
        if request is None:
            continue
        consts = [p for p in request.parameters if type(p).__name__ == "CodedConstParameter"]
        if not consts:
            continue
        sid = int(consts[0].coded_value)
        ident = int(consts[1].coded_value) if len(consts) > 1 else None
        if sid == 0x31 and len(consts) > 2:  # SID, sub-function, routine id
            routines[int(consts[2].coded_value)] = service.short_name
        elif sid == 0x2E and ident is not None:
            writes[ident] = _security_level(service)
        elif sid == 0x22 and ident is not None:
            entry = _did_entry(path, service, ident, problems)
            if entry is not None:
                entries[ident] = entry
    for did, level in writes.items():
        if did in entries:
            old = entries[did]
            entries[did] = DidEntry(did, old.name, old.length, old.codec, True, level, old.default, old.description)
    if problems:
        raise DidTableError(problems)
    dtcs = {int(d.trouble_code): str(d.text.text if hasattr(d.text, "text") else d.text)
            for dop in variant.diag_data_dictionary_spec.dtc_dops for d in dop.dtcs}
    return OdxDiagnostics(path, MappingProxyType(entries), MappingProxyType({}),
                          MappingProxyType(routines), MappingProxyType(dtcs))


def _security_level(service: Any) -> int:
    for sdg in service.sdgs:
        for sd in sdg.values:
            if getattr(sd, "semantic_info", None) == "SECURITY_LEVEL":
                return int(sd.value)
    return 0


def _did_entry(path: str, service: Any, did: int, problems: list[str]) -> DidEntry | None:
    responses = list(service.positive_responses)
    values = [p for r in responses[:1] for p in r.parameters if type(p).__name__ == "ValueParameter"]
    if len(values) != 1:
        problems.append(f"{path}:1:1: service {service.short_name}: DID {did:#06x} needs one value parameter "
                        f"in its positive response, found {len(values)}")
        return None
    dop = values[0].dop
    coded = dop.diag_coded_type
    base = getattr(coded.base_data_type, "name", str(coded.base_data_type))
    codec = _CODECS.get(base)
    bits = getattr(coded, "bit_length", None)
    if codec is None or not bits or bits % 8:
        problems.append(f"{path}:1:1: service {service.short_name}: DID {did:#06x} coded as {base} "
                        f"({bits} bits); supported: whole bytes of {', '.join(_CODECS)}")
        return None
    return DidEntry(did, values[0].short_name, bits // 8, codec, default=bytes(bits // 8),
                    description=service.long_name or "")


def _read(path: Path, ecu: str | None) -> OdxDiagnostics:
    return _load(str(path), ecu)


_cached = mapfile.cached_per_file(_read, maxsize=8)
