"""The fault catalogue: defects a plan must catch, as changes to the simulated bench.

Each fault changes the pack model or a peer's behaviour — never a flag a driver reads. Faults
are armed when the run starts (instruments open), so timed ones (``estop_at: t=30``) count from
the start of the run, and instrument faults strike after identification, mid-run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Param:
    """One fault parameter: its default, type, and the values it may take (checked, exit 2).
    ``span`` is where the defect is plausible, for exploring a plan's blind spots (``station test
    --explore``): ``(low, high)`` for a number, the choices for a string; empty when only the
    default makes sense (a DTC code, a version string)."""

    default: Any
    kind: type
    doc: str
    span: tuple = ()
    choices: tuple | None = None  # allowed values (text)
    lo: float | None = None  # inclusive bounds for numbers
    hi: float | None = None
    reach: str | None = None  # what it indexes: "cell", "sensor", "bond" of the pack, "role" of the plan
    trigger: bool = False  # a time (s after the run starts) the fault strikes at: a run over before never met it


@dataclass(frozen=True)
class Fault:
    name: str
    doc: str
    params: dict[str, Param]
    arm: Callable[..., None]
    eol_visible: bool = True
    why_not: str = ""  # when an EOL test cannot see it
    role: str | None = None  # the station instrument it strikes: a plan that does not use it cannot meet it


def _fx(bench, fixture):
    return bench.fixtures[fixture]


def _loop():
    import asyncio  # here, not at import: `station validate` reads the catalogue, never runs it

    return asyncio.get_running_loop()


def _at(t: float, fn: Callable[[], None]) -> None:
    loop = _loop()
    loop.call_at(loop.time() + t, fn)


def _isolation_low(bench, fixture, pole, ohm):
    _fx(bench, fixture).pack.isolation[pole] = ohm


def _bond_high(bench, fixture, point, ohm):
    pack = _fx(bench, fixture).pack
    name = point or next(iter(pack.bond))
    if name not in pack.bond:
        raise ValueError(f"no bonding point {name!r}; points: {', '.join(pack.bond)}")
    pack.bond[name] = ohm


def _weak_cell(bench, fixture, cell, factor):
    _fx(bench, fixture).pack.r0_factor[cell] = factor


def _imbalance(bench, fixture, cell, dsoc):
    _fx(bench, fixture).pack.offset_soc(cell, dsoc)


def _hot_cell(bench, fixture, sensor, delta):
    _fx(bench, fixture).pack.hot_cell[sensor] += delta


def _peer(bench, fixture, instrument):
    fx = _fx(bench, fixture)
    peers = {"cycler": fx.cycler, "dmm": fx.dmm, "leak": fx.leak, "safety": bench.safety, "fixture": fx.plc}
    if instrument not in peers:
        raise ValueError(f"instrument must be one of {', '.join(peers)}")
    return peers[instrument]


def _behave(mode):
    def arm(bench, fixture, instrument, at):
        peer = _peer(bench, fixture, instrument)
        _at(at, lambda: setattr(peer, "behaviour", mode))
    return arm


def _dtc(bench, fixture, code, status):
    _fx(bench, fixture).bms.ecu.add_dtc(code, status)


def _sw(bench, fixture, version):
    _fx(bench, fixture).bms.ecu.set_value(0xF189, version)  # the product SW version the BOM names


def _silent(bench, fixture, after):
    loop = _loop()
    _fx(bench, fixture).bms.silent_after(loop.time() + after)
    _fx(bench, fixture).bms_modbus.silent_after(loop.time() + after)


def _estop(bench, fixture, t):
    plc = _fx(bench, fixture).plc
    plc.press_estop_at(_loop().time() + t)


def _cycler_trip(bench, fixture, t, kind):
    cycler = _fx(bench, fixture).cycler
    cycler.trip_at(_loop().time() + t, kind)


def _set(attr, transform=None):
    def arm(bench, fixture, **kw):
        pack = _fx(bench, fixture).pack
        (value,) = kw.values()
        setattr(pack, attr, transform(pack, value) if transform else value)
    return arm


_PEERS = ("cycler", "dmm", "leak", "safety", "fixture")
# instrument faults: which peer, and when it strikes (0 = right after identification)
_INSTRUMENT_FAULT = {
    "instrument": Param("dmm", str, "cycler, dmm, leak, safety or fixture", span=_PEERS, choices=_PEERS,
                        reach="role"),
    "at": Param(0.0, float, "s after the run starts", span=(0.0, 1200.0), lo=0.0, hi=86400.0, trigger=True),
}

CATALOGUE: dict[str, Fault] = {f.name: f for f in [
    Fault("isolation_low", "low insulation resistance on one pole",
          {"pole": Param("HV+", str, "HV+ or HV-", span=("HV+", "HV-"), choices=("HV+", "HV-")),
           "ohm": Param(300e3, float, "insulation resistance, ohm", span=(100e3, 50e6), lo=0.0, hi=1e12)}, _isolation_low),
    Fault("bond_high", "high ground-bond resistance at one bonding point",
          {"point": Param("", str, "bonding point (default: the first)", reach="bond"),
           "ohm": Param(0.25, float, "ohm", span=(0.05, 1.0), lo=0.0, hi=1e6)}, _bond_high),
    Fault("hipot_breakdown", "dielectric breakdown above a voltage (arc in withstand)",
          {"volts": Param(1500.0, float, "breakdown voltage, V", span=(500.0, 4000.0), lo=0.0, hi=100e3)},
          _set("breakdown_volts")),
    Fault("weak_cell", "one cell group with high internal resistance",
          {"cell": Param(10, int, "element index", span=(0, 95), lo=0, reach="cell"),
           "factor": Param(3.0, float, "R0 multiplier", span=(1.3, 6.0), lo=0.01, hi=1000.0)}, _weak_cell),
    Fault("cell_imbalance", "one cell group at a different state of charge",
          {"cell": Param(5, int, "element index", span=(0, 95), lo=0, reach="cell"),
           "dsoc": Param(-0.08, float, "SOC offset, fraction", span=(0.02, 0.2), lo=-1.0, hi=1.0)}, _imbalance),
    Fault("open_cell_tap", "a broken cell-voltage sense line (BMS reads invalid)",
          {"cell": Param(7, int, "element index", span=(0, 95), lo=0, reach="cell")},
          lambda b, f, cell: _fx(b, f).pack.open_tap.add(cell)),
    Fault("dead_temp_sensor", "a dead temperature sensor (BMS reads invalid)",
          {"sensor": Param(2, int, "sensor index", span=(0, 23), lo=0, reach="sensor")},
          lambda b, f, sensor: _fx(b, f).pack.dead_sensor.add(sensor)),
    Fault("hot_cell", "a cell group much hotter than the rest",
          {"sensor": Param(3, int, "sensor index", span=(0, 23), lo=0, reach="sensor"),
           "delta": Param(20.0, float, "degC above the rest", span=(2.0, 40.0), lo=-100.0, hi=500.0)}, _hot_cell),
    Fault("welded_contactor", "a main contactor that does not open",
          {"name": Param("main_plus", str, "main_plus, main_minus or precharge",
                         span=("main_plus", "main_minus", "precharge"), choices=("main_plus", "main_minus", "precharge"))},
          lambda b, f, name: _fx(b, f).pack.welded.add(name)),
    Fault("slow_precharge", "precharge resistor far above nominal (bus rises too slowly)",
          {"factor": Param(10.0, float, "resistance multiplier", span=(1.5, 30.0), lo=0.01, hi=1e6)},
          _set("precharge_ohm", lambda pack, k: pack.precharge_ohm * k)),
    Fault("hvil_stuck_closed", "HVIL reads closed even when the loop is opened",
          {}, lambda b, f: setattr(_fx(b, f).pack, "hvil_stuck_closed", True)),
    Fault("bms_silent", "the BMS stops sending CAN frames after a time",
          {"after": Param(60.0, float, "s after the run starts", span=(5.0, 1200.0), lo=0.0, hi=86400.0,
                          trigger=True)}, _silent),
    Fault("dtc_present", "an active DTC stored in the BMS",
          {"code": Param(0x0A1B2C, int, "24-bit DTC", lo=0, hi=0xFFFFFF),
           "status": Param(0x09, int, "status byte", span=(0x01, 0x08), lo=0, hi=0xFF)}, _dtc),
    Fault("wrong_sw_version", "BMS software version differs from the bill of materials",
          {"version": Param("9.9.9", str, "reported SW version")}, _sw),
    Fault("coolant_leak", "a leak in the cooling circuit",
          {"rate": Param(300.0, float, "pressure decay, Pa/min", span=(10.0, 1000.0), lo=0.0, hi=1e6)},
          _set("coolant_leak_rate")),
    Fault("estop_at", "the e-stop is pressed during the run",
          {"t": Param(30.0, float, "s after the run starts", span=(5.0, 1200.0), lo=0.0, hi=86400.0, trigger=True)},
          _estop),
    Fault("cycler_trip_at", "the cycler trips a protection during the run",
          {"t": Param(60.0, float, "s after the run starts", span=(5.0, 1200.0), lo=0.0, hi=86400.0, trigger=True),
           "kind": Param("OTP", str, "OVP, OCP or OTP", span=("OVP", "OCP", "OTP"), choices=("OVP", "OCP", "OTP"))},
          _cycler_trip, role="cycler"),
    Fault("instrument_hang", "an instrument stops answering",
          _INSTRUMENT_FAULT,
          _behave("hang")),
    Fault("instrument_garbage", "an instrument answers garbage",
          _INSTRUMENT_FAULT,
          _behave("garbage")),
]}


def _close(name: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _show(x: float, kind: type) -> str:
    return f"{int(x)}" if kind is int else f"{x:g}"


def _convert(fault: Fault, params: dict[str, str]) -> dict[str, Any]:
    """Parameters as typed values; ValueError naming the parameter and what it accepts."""
    out = {}
    for name, spec in fault.params.items():
        raw = params.get(name)
        if raw is None:
            out[name] = spec.default
            continue
        if spec.kind in (int, float):
            try:
                value = int(raw, 0) if spec.kind is int else float(raw)
            except ValueError:
                kind = "a whole number (e.g. 7 or 0x1F)" if spec.kind is int else "a number"
                raise ValueError(f"parameter '{name}' must be {kind} ({spec.doc}), got {raw!r}") from None
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"parameter '{name}' must be a finite number, got {raw!r}")
            if (spec.lo is not None and value < spec.lo) or (spec.hi is not None and value > spec.hi):
                lo = "-inf" if spec.lo is None else _show(spec.lo, spec.kind)
                hi = "+inf" if spec.hi is None else _show(spec.hi, spec.kind)
                raise ValueError(f"parameter '{name}' = {raw} is outside [{lo}, {hi}] ({spec.doc})")
            out[name] = value
        else:
            if spec.choices and raw not in spec.choices:
                raise ValueError(f"parameter '{name}' must be one of {', '.join(spec.choices)}, "
                                 f"got {raw!r}{_close(raw, spec.choices)}")
            out[name] = raw
    return out


def check_fault(name: str, params: dict[str, str]) -> str | None:
    """Why ``name:params`` is not a valid fault, or None."""
    fault = CATALOGUE.get(name)
    if fault is None:
        import difflib

        close = difflib.get_close_matches(name, CATALOGUE, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown fault '{name}'{hint}; see `station sim faults`"
    unknown = [k for k in params if k not in fault.params]
    if unknown:
        return (f"fault '{name}' has no parameter {unknown[0]!r}{_close(unknown[0], fault.params)}; "
                f"parameters: {', '.join(fault.params) or 'none'}")
    try:
        _convert(fault, params)
    except ValueError as err:
        return f"fault '{name}': {err}"
    return None


def resolve(name: str, params: dict[str, str]) -> dict[str, Any]:
    """Every parameter of fault ``name`` with its value (defaults filled in, text converted).
    Raises ``KeyError`` for an unknown fault, ``ValueError`` for a bad value."""
    return _convert(CATALOGUE[name], params)


PACK, PLAN = "pack", "plan"  # what a fault cannot reach: the pack's hardware, or an instrument of the plan


@dataclass(frozen=True)
class Unreachable:
    """Why a checked fault cannot affect a run: ``what`` it misses (``PACK``: a cell, sensor or
    bonding point the pack lacks; ``PLAN``: an instrument the plan does not use), ``param`` the
    parameter that says so (None: the fault itself), ``message`` in words."""

    what: str
    param: str | None
    message: str


def unreachable(name: str, params: dict[str, str], spec, roles=None) -> Unreachable | None:
    """Why a checked fault cannot affect the pack ``spec`` (a ``PackSpec``) or a plan using
    instrument ``roles``, or None.

    A cell, sensor or bonding point the pack does not have would be recorded as injected and
    change nothing: the run would pass and prove nothing. So would a trip of an instrument the
    plan never switches on.
    """
    fault = CATALOGUE[name]
    values = _convert(fault, params)
    for pname, p in fault.params.items():
        value = values[pname]
        if p.reach == "cell" and not 0 <= value < spec.series:
            return Unreachable(PACK, pname, f"fault '{name}': {pname}={value} cannot affect this pack: it has "
                                            f"{spec.series} series elements (0..{spec.series - 1})")
        if p.reach == "sensor" and not 0 <= value < spec.temp_sensors:
            return Unreachable(PACK, pname, f"fault '{name}': {pname}={value} cannot affect this pack: it has "
                                            f"{spec.temp_sensors} temperature sensors (0..{spec.temp_sensors - 1})")
        if p.reach == "bond" and value and value not in spec.bond_points:
            return Unreachable(PACK, pname, f"fault '{name}': {pname}={value!r} cannot affect this pack: its bonding "
                                            f"points are {', '.join(spec.bond_points) or 'none'}"
                                            f"{_close(value, spec.bond_points)}")
        if p.reach == "role" and roles is not None and value not in roles:
            return Unreachable(PLAN, pname, f"fault '{name}': {pname}={value} cannot affect this run: the plan "
                                            "does not use it")
    if fault.role and roles is not None and fault.role not in roles:
        return Unreachable(PLAN, None, f"fault '{name}' ({fault.role}) cannot affect this run: the plan does "
                                       "not use it")
    return None


def fault_reach(name: str, params: dict[str, str], spec, roles=None) -> str | None:
    """``unreachable``, in words."""
    why = unreachable(name, params, spec, roles)
    return why.message if why else None


def never_struck(name: str, params: dict[str, str], run_s: float) -> str | None:
    """Why a checked time-triggered fault never struck in a run that lasted ``run_s`` (s from its
    start), or None. Its trigger counts from when it was armed, after the run started: one due
    later than ``run_s`` after the start was certainly never met."""
    fault = CATALOGUE[name]
    values = _convert(fault, params)
    for pname, p in fault.params.items():
        if p.trigger and values[pname] > run_s:
            return f"fault '{name}' fires at t={values[pname]:g} s; the run ended at {run_s:.1f} s"
    return None


def arm_faults(bench, fixture: str, faults: list[tuple[str, dict[str, str]]]) -> None:
    """Inject each fault into ``bench`` for ``fixture`` (call at the start of the run)."""
    for name, params in faults:
        fault = CATALOGUE[name]
        fault.arm(bench, fixture, **_convert(fault, params))


def describe() -> list[str]:
    """One line per fault, its name first (``station sim faults``)."""
    lines = []
    for fault in CATALOGUE.values():
        params = " ".join(f"{k}={v.default!r}" for k, v in fault.params.items())
        lines.append(f"{fault.name:<20} {fault.doc}" + (f"  [{params}]" if params else ""))
    return lines
