"""Pack serials as scanned: check a scan against the product catalogue's rules, return the serial.

Pure (no UI, no I/O). A barcode wedge types what the label holds, plus whatever the scanner is
set to add (a prefix such as a symbology identifier ``]C1``, a suffix); a GS1 label holds element
strings — application identifiers (AIs) such as ``(01)`` GTIN and ``(21)`` serial, variable-length
ones ended by the group separator GS (0x1D). ``check_scan`` turns that into the pack serial of one
catalogue product, or raises ``SerialRefused`` with a sentence an operator can act on.

The operator UI shows control characters as their visible Unicode symbols (GS as ``␝``, ESC as
``␛``) so nothing is dropped silently; ``check_scan`` reads both forms.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

GS = "\x1d"
DEFAULT_MAX_LENGTH = 64  # characters; no catalogue rule: still refuse what no pack label holds
SYMBOL_BASE = 0x2400  # U+2400..U+241F: visible symbols of the C0 control characters
CONTROL_NAMES = {0x1B: "ESC", 0x1D: "GS (group separator)", 0x09: "TAB", 0x0D: "CR", 0x0A: "LF", 0x7F: "DEL",
                 0x00: "NUL"}

# GS1 AIs this station reads: AI -> (fixed length of the data or None, max length if variable)
GS1_AIS = {"00": (18, None), "01": (14, None), "02": (14, None), "10": (None, 20), "11": (6, None),
           "13": (6, None), "15": (6, None), "17": (6, None), "21": (None, 20), "240": (None, 30),
           "241": (None, 30), "250": (None, 30), "30": (None, 8), "37": (None, 8), "90": (None, 30),
           "91": (None, 90), "92": (None, 90), "93": (None, 90), "94": (None, 90)}
GS1_NAMES = {"01": "GTIN", "21": "serial", "10": "batch", "11": "production date", "17": "expiry date"}
SYMBOLOGY_ID = re.compile(r"\][A-Za-z][0-9A-Za-z]")  # ]C1 GS1-128, ]d2 DataMatrix, ]Q3 QR …


class SerialRules(Protocol):
    """What ``check_scan`` reads of a catalogue product (``station.config.ProductConfig``)."""

    pattern: str
    product: str | None
    variant: str | None
    min_length: int | None
    max_length: int | None
    allowed_chars: str | None
    scanner_prefix: str | None
    scanner_suffix: str | None
    gs1: bool
    gtin: str | None


class SerialRefused(ValueError):
    """A scan that is not a pack serial of this station; ``str()`` says why, in plain words."""

    def __init__(self, scan: str, reason: str) -> None:
        self.scan = scan
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class Scan:
    """A scan accepted: the serial to test, the product it belongs to, what GS1 fields it held."""

    serial: str
    product: SerialRules | None
    raw: str
    elements: dict[str, str]


def visible(text: str) -> str:
    """Control characters as their visible symbols (``\\x1d`` → ``␝``), for display and input fields."""
    return "".join(chr(SYMBOL_BASE + ord(c)) if ord(c) < 0x20 else ("␡" if c == "\x7f" else c) for c in text)


def unvisible(text: str) -> str:
    """The inverse of ``visible``: ``␝`` → ``\\x1d``."""
    return "".join(chr(ord(c) - SYMBOL_BASE) if SYMBOL_BASE <= ord(c) < SYMBOL_BASE + 0x20
                   else ("\x7f" if c == "␡" else c) for c in text)


def product_name(product: SerialRules) -> str:
    return product.product or product.variant or f"'{product.pattern}'"


SERIAL_MAX = 128  # characters; a longer "serial" is a scanner or keyboard accident


def run_serial(config: Any, raw: str, *, require_product: bool = True) -> str:
    """The serial a run of scan ``raw`` tests at ``config`` (a ``LoadedConfig``), or ``SerialRefused`` before anything
    is touched: the catalogue's rules (``check_scan``); then what no pack serial holds (control
    characters such as a newline, ESC or a GS1 separator the scanner should have parsed; over
    ``SERIAL_MAX``); in production, one no product of the catalogue accepts."""
    from station.safetext import has_controls, printable

    try:
        serial = config.check_serial(raw, require_product=require_product).serial
    except SerialRefused as err:
        raise SerialRefused(err.scan, f"this is not a pack serial: {err}") from None
    if has_controls(serial) or not serial.strip() or len(serial) > SERIAL_MAX:
        raise SerialRefused(serial, f"serial {printable(serial)[:80]} is not a pack serial (empty, control "
                                    f"characters or over {SERIAL_MAX} characters)")
    if config.config.mode == "production" and config.config.products and config.product_for(serial) is None:
        raise SerialRefused(serial, f"serial {printable(serial)} matches no product of the catalogue")
    return serial


def check_scan(raw: str, products: Sequence[SerialRules], *, require_product: bool = True) -> Scan:
    """The pack serial in ``raw`` and its product; ``SerialRefused`` with the reason otherwise.

    The first product (catalogue order) whose scanner prefix/suffix and GS1 rules apply and whose
    pattern the serial fully matches is the product; its length and character rules must then
    hold. With ``require_product=False`` (a plan given explicitly) a serial no product claims is
    accepted after the generic checks.
    """
    text = unvisible(raw).strip(" \r\n\t")
    if not text:
        raise SerialRefused(raw, "the scan is empty: scan or type the pack serial")
    _check_generic(raw, text, allow_gs=any(p.gs1 for p in products))
    refusals: list[str] = []
    for product in products:
        try:
            serial, elements = _normalise(text, product)
        except SerialRefused as err:
            refusals.append(err.reason)
            continue
        if not re.fullmatch(product.pattern, serial):
            if elements:  # a GS1 label for this product whose serial does not fit: say so
                refusals.append(f"the serial {_quote(serial)} in the GS1 label is not a {product_name(product)} serial "
                                f"(pattern {product.pattern})")
            continue
        _check_rules(raw, serial, product)
        return Scan(serial, product, raw, elements)
    if GS in text:
        raise SerialRefused(raw, refusals[0] if refusals else
                            "the scan is a GS1 label but no product of this station reads GS1 labels")
    _check_length(raw, text, None, DEFAULT_MAX_LENGTH)
    if require_product:
        _near_miss(raw, text, products)
        hint = ", ".join(dict.fromkeys(product_name(p) for p in products)) or "none configured"
        detail = f" ({refusals[0]})" if refusals else ""
        raise SerialRefused(raw, f"the serial {_quote(text)} belongs to no product of this station{detail}; "
                                 f"products: {hint}")
    return Scan(text, None, raw, {})


def _near_miss(raw: str, text: str, products: Sequence[SerialRules]) -> None:
    """A serial that looks like one product's (its literal start, or its pattern but for letter
    case) is refused with that product's rule it breaks, rather than "no product"."""
    for product in products:
        serial = _normalise(text, product)[0] if not product.gs1 else text
        start = re.match(r"[A-Za-z0-9\-]+", product.pattern)
        if re.fullmatch(product.pattern, serial, re.IGNORECASE) or (start and serial.startswith(start.group())):
            _check_rules(raw, serial, product)
            raise SerialRefused(raw, f"the serial {_quote(serial)} looks like a {product_name(product)} serial but "
                                     f"does not have its form ({product.pattern}): scan again or type it")


def _quote(text: str, limit: int = 24) -> str:
    shown = visible(text)
    return f"'{shown}'" if len(shown) <= limit else f"'{shown[:limit - 1]}…'"


def _check_generic(raw: str, text: str, *, allow_gs: bool) -> None:
    for c in text:
        code = ord(c)
        if c == GS:
            if allow_gs:
                continue
            raise SerialRefused(raw, "the scan is a GS1 label (it holds the group separator GS) but no product "
                                     "of this station reads GS1 labels: check the scanner set-up")
        if code < 0x20 or code == 0x7F:
            name = CONTROL_NAMES.get(code, f"0x{code:02X}")
            raise SerialRefused(raw, f"the scan contains the control character {name}: check the scanner "
                                     "set-up and scan again")
        if unicodedata.category(c) in ("Cf", "Mn", "Me", "Cs", "Co", "Cn"):
            raise SerialRefused(raw, f"the scan contains an invisible or combining character (U+{code:04X}): "
                                     "type the serial printed on the label")
        if code > 0x7E:
            raise SerialRefused(raw, f"the scan contains the character '{c}', which no pack label holds: "
                                     "scan again or type the serial")


def _normalise(text: str, product: SerialRules) -> tuple[str, dict[str, str]]:
    """Strip the scanner's prefix/suffix and read the GS1 serial, when the product says so."""
    if product.scanner_prefix and text.startswith(product.scanner_prefix):
        text = text[len(product.scanner_prefix):]
    if product.scanner_suffix and text.endswith(product.scanner_suffix):
        text = text[: -len(product.scanner_suffix)]
    if not product.gs1:
        return text, {}
    if SYMBOLOGY_ID.match(text):
        text = text[3:]
    if not (text.startswith("(") or GS in text or text[:2] in GS1_AIS or text[:3] in GS1_AIS):
        return text, {}  # a plain serial typed by hand is fine for a GS1 product too
    elements = parse_gs1(text)
    if "21" not in elements:
        names = ", ".join(f"({ai}) {GS1_NAMES.get(ai, '')}".strip() for ai in elements)
        raise SerialRefused(text, f"the GS1 label holds no (21) serial, only {names}: scan the pack's serial label")
    if product.gtin and elements.get("01") and elements["01"] != product.gtin:
        raise SerialRefused(text, f"the label's GTIN (01) {elements['01']} is not the {product_name(product)} "
                                  f"GTIN {product.gtin}: wrong pack for this station?")
    return elements["21"], elements


def parse_gs1(text: str) -> dict[str, str]:
    """GS1 element strings → {AI: data}, raw (GS-separated) or human-readable ``(01)…(21)…``."""
    text = unvisible(text)
    if text.startswith("("):
        found = re.findall(r"\((\d{2,4})\)([^(]*)", text)
        if not found or "".join(f"({a}){d}" for a, d in found) != text:
            raise SerialRefused(text, "the GS1 label text is malformed (expected (AI)data…)")
        return {ai: data.rstrip(GS) for ai, data in found}
    out: dict[str, str] = {}
    i = 0
    while i < len(text):
        if text[i] == GS:
            i += 1
            continue
        ai = text[i:i + 2] if text[i:i + 2] in GS1_AIS else text[i:i + 3]
        if ai not in GS1_AIS:
            raise SerialRefused(text, f"the GS1 label holds the unknown application identifier {text[i:i + 2]!r} "
                                      f"at character {i + 1}")
        fixed, most = GS1_AIS[ai]
        start = i + len(ai)
        if fixed is not None:
            data = text[start:start + fixed]
            if len(data) != fixed:
                raise SerialRefused(text, f"the GS1 ({ai}) field is cut short: {len(data)} of {fixed} characters")
            i = start + fixed
        else:
            end = text.find(GS, start)
            end = len(text) if end < 0 else end
            data = text[start:end]
            if most is not None and len(data) > most:
                raise SerialRefused(text, f"the GS1 ({ai}) field has {len(data)} characters, at most {most} "
                                          "allowed: is a group separator (GS) missing?")
            i = end
        out[ai] = data
    return out


def _check_rules(raw: str, serial: str, product: SerialRules) -> None:
    _check_length(raw, serial, product, product.max_length or DEFAULT_MAX_LENGTH)
    if product.allowed_chars:
        bad = sorted({c for c in serial if not re.fullmatch(f"[{product.allowed_chars}]", c)})
        if bad:
            shown = " ".join(f"'{visible(c)}'" for c in bad[:5])
            raise SerialRefused(raw, f"the serial {_quote(serial)} contains {shown}; a {product_name(product)} "
                                     f"serial holds only the characters {product.allowed_chars}")


def _check_length(raw: str, serial: str, product: SerialRules | None, most: int) -> None:
    least = (product.min_length if product else None) or 1
    n = len(serial)
    if least <= n <= most:
        return
    what = f"a {product_name(product)} serial" if product else "a pack serial"
    has = f"has {least}" if least == most else (f"has at least {least}" if n < least else f"has at most {most}")
    scan_n = len(unvisible(raw).strip())
    scanned = f"the scan has {scan_n} characters" if scan_n == n else f"the serial in the scan has {n} characters"
    advice = " (two scans run together?)" if n > most and n >= 2 * least else ""
    raise SerialRefused(raw, f"{scanned}; {what} {has}{advice}: scan again")
