"""drivers.bms.fastcodec against cantools, bit for bit, on the project's DBC and foxBMS's."""

from __future__ import annotations

import random
from pathlib import Path

import cantools
import pytest

from drivers.bms.fastcodec import Layout
from drivers.bms.signals import MAPS

FOXBMS = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "dbc" / "foxbms" / "foxbms.dbc"


def _random_values(message, rng: random.Random, mux_value=None) -> dict:
    data = {}
    for s in message.signals:
        if s.multiplexer_ids and mux_value not in s.multiplexer_ids:
            continue
        if s.is_multiplexer:
            data[s.name] = mux_value
            continue
        raw_low, raw_high = ((-(1 << (s.length - 1)), (1 << (s.length - 1)) - 1) if s.is_signed
                             else (0, (1 << s.length) - 1))
        data[s.name] = rng.randint(raw_low, raw_high) * s.scale + s.offset
    return data


def _cases(db, rng):
    for message in db.messages:
        muxes = [None]
        mux = next((s for s in message.signals if s.is_multiplexer), None)
        if mux is not None:
            muxes = sorted({i for s in message.signals for i in (s.multiplexer_ids or ())})
        for mux_value in muxes:
            for _ in range(20):
                yield message, _random_values(message, rng, mux_value)


def test_encode_and_decode_match_cantools_on_every_message_of_the_project_dbc():
    db = cantools.database.load_file(str(MAPS / "eol_bms.dbc"))
    rng = random.Random(7)
    compiled = 0
    for message, data in _cases(db, rng):
        layout = Layout.compile(message)
        assert layout is not None, f"{message.name} should compile (little-endian integer signals)"
        compiled += 1
        expected = message.encode(data, scaling=True, strict=False)
        assert layout.encode(data) == expected, message.name
        payload = layout.payload(expected)
        decoded = message.decode(expected, decode_choices=False)
        for name, value in decoded.items():
            f = layout.fields[name]
            assert f.raw(payload) * f.scale + f.offset == pytest.approx(value, abs=1e-9), (message.name, name)
    assert compiled > 100


def test_a_short_frame_has_no_payload():
    db = cantools.database.load_file(str(MAPS / "eol_bms.dbc"))
    layout = Layout.compile(db.get_message_by_name("EOL_PackValues"))
    assert layout.payload(b"\x00" * (layout.length - 1)) is None


@pytest.mark.skipif(not FOXBMS.exists(), reason=f"../shared fixtures absent ({FOXBMS})")
def test_big_endian_messages_are_left_to_cantools():
    db = cantools.database.load_file(str(FOXBMS))
    big = [m for m in db.messages if any(s.byte_order == "big_endian" for s in m.signals)]
    assert big, "foxBMS's DBC is big-endian"
    assert all(Layout.compile(m) is None for m in big)
