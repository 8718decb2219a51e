"""ModbusBms: exact exchanges at the register level (ExpectedRegisters) and the byte level (RTU).

Register replies are hand-encoded from drivers/maps/modbus_bms.yaml; RTU frames are literal
bytes (CRC low byte first), so a change of address, function code, unit or CRC fails here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drivers.bms.modbus_bms import ModbusBms, load_bms_map
from drivers.capabilities import Bms, Dtc, SafeAction, StateFinding
from drivers.errors import DeviceError, InstrumentError, InstrumentTimeout, RangeError, StaleSignalError
from drivers.maps.regmap import MapError
from drivers.testing.modbus import ExpectedRegisters
from drivers.transports.rtu_link import crc16
from station.clock import run

# input 0..23 as a BMS would send it: 400.0 V (float32, low word first), -12.5 A (int32 mA),
# bus 12.3 V, SOC 55.5 %, SOH 100 %, cells 3.301..3.310 V at 2/0, temps 24.5..26.0 degC at 1/0,
# state 2 (normal), status 0b101011 (main+, main-, HVIL, balancing), no errors, IMD 5 Mohm,
# 3 cells balancing, alive 7, 4 cells, 2 sensors.
SIGNALS = [0x0000, 0x43C8, 0xFFFF, 0xCF2C, 123, 5550, 10000, 3301, 3310, 2, 0, 245, 260, 1, 0,
           2, 0b101011, 0, 0, 5000, 3, 7, 4, 2]
CELLS = [3305, 3310, 3301, 3302]
TEMPS = [260, 0xFFFF - 244]  # 26.0 degC, -24.5 degC (int16)
POLL = [("read_input", 0, 24, SIGNALS), ("read_input", 100, 4, CELLS), ("read_input", 400, 2, TEMPS)]


def bms(ops, **options) -> tuple[ModbusBms, ExpectedRegisters]:
    fake = ExpectedRegisters(ops)
    opts = {"cells": 4, "temperature_sensors": 2, "autopoll": False, **options}
    return ModbusBms("bms", "modbus-tcp://127.0.0.1:5020?unit=1", options=opts, transport=fake, timeout=0.2), fake


def test_constructor_is_silent_and_checks_its_config():
    driver, fake = bms([])
    assert isinstance(driver, Bms)
    fake.assert_done()
    with pytest.raises(RangeError, match="poll_period"):
        bms([], poll_period=0)
    with pytest.raises(InstrumentError, match="modbus-tcp://HOST:PORT"):
        ModbusBms("bms", "tcp://nowhere", options={})


def test_one_poll_reads_three_blocks_and_decodes_word_order_scale_bits_and_states():
    async def main():
        driver, fake = bms(POLL)
        seen = []
        driver.add_listener(lambda name, value: seen.append(name))
        await driver.open()
        await driver.poll()
        values = {n: driver.signal(n) for n in ("pack_voltage", "pack_current", "bus_voltage", "soc", "soh",
                                                "cell_voltage_min", "cell_temperature_max", "bms_state",
                                                "contactor_main_plus", "contactor_precharge", "hvil_closed",
                                                "imd_enabled", "balancing_active", "imd_resistance")}
        out = values, driver.state(), driver.cell_voltages(), driver.cell_temperatures(), seen
        await driver.close()
        fake.assert_done()
        return out

    values, state, cells, temps, seen = run(main(), virtual=True)
    assert values == pytest.approx({"pack_voltage": 400.0, "pack_current": -12.5, "bus_voltage": 12.3, "soc": 55.5,
                                    "soh": 100.0, "cell_voltage_min": 3.301, "cell_temperature_max": 26.0,
                                    "bms_state": 2.0, "contactor_main_plus": 1.0, "contactor_precharge": 0.0,
                                    "hvil_closed": 1.0, "imd_enabled": 0.0, "balancing_active": 1.0,
                                    "imd_resistance": 5e6})
    assert state == "normal"
    assert cells == pytest.approx([3.305, 3.310, 3.301, 3.302]) and temps == pytest.approx([26.0, -24.5])
    assert "pack_voltage" in seen and "cell_voltage_3" in seen


def test_polling_runs_at_the_configured_rates():
    # signals every 0.125 s, cells/temperatures every 0.5 s (binary fractions: exact virtual times)
    ops = []
    for i in range(8):  # t = 0 .. 0.875
        ops.append(POLL[0])
        if i % 4 == 0:
            ops += POLL[1:]

    async def main():
        driver, fake = bms(ops, autopoll=True, poll_period=0.125, cell_poll_period=0.5)
        await driver.open()
        await asyncio.sleep(0.9)
        await driver.close()
        fake.assert_done()  # exactly these reads, in this order: no more, no fewer

    run(main(), virtual=True)


def test_a_value_goes_stale_three_periods_after_its_last_good_poll_naming_the_failure():
    timeout = InstrumentTimeout("no reply within 0.2 s", instrument="bms", command="read_input(0, 24)")
    ops = list(POLL) + [("read_input", 0, 24, timeout)] * 4

    async def main():
        driver, _fake = bms(ops, autopoll=True, poll_period=0.125, cell_poll_period=10.0)
        await driver.open()
        await asyncio.sleep(0.3)
        fresh = driver.signal("soc")  # 0.3 s old, limit 0.375 s
        await asyncio.sleep(0.15)
        with pytest.raises(StaleSignalError) as stale:
            driver.signal("soc")
        await driver.close()
        return fresh, stale.value

    fresh, stale = run(main(), virtual=True)
    assert fresh == pytest.approx(55.5)
    assert "signal soc is stale" in str(stale) and "input 0..23" in str(stale) and "no reply" in str(stale)
    assert isinstance(stale.__cause__, InstrumentTimeout) and "pack_voltage" in str(stale.__cause__)


def test_an_exception_code_fails_wake_at_once_naming_register_and_signals():
    error = DeviceError("read_input at address 0 answered Modbus exception 2 ILLEGAL_DATA_ADDRESS",
                        code=2, instrument="bms", command="read_input(0, 24)")

    async def main():
        driver, _ = bms([("read_input", 0, 24, error)] + POLL[1:], autopoll=True, poll_period=1.0)
        await driver.open()
        start = asyncio.get_running_loop().time()
        with pytest.raises(DeviceError) as err:
            await driver.wake(5.0)
        took = asyncio.get_running_loop().time() - start
        await driver.close()
        return err.value, took

    err, took = run(main(), virtual=True)
    assert err.code == 2 and took < 0.1
    assert "soc" in str(err) and "input 0..23" in str(err) and "exception 2" in str(err)


def test_commands_are_register_and_coil_writes_and_refused_values_send_nothing():
    ops = [("write_register", 0, 1), ("write_coil", 0, True), ("write_coil", 1, True),
           ("write_register", 0, 0), ("write_coil", 1, False), ("write_coil", 0, False),
           ("read_input", 16, 1, [0b001000])]  # contactor feedback read back: all open

    async def main():
        driver, fake = bms(ops)
        await driver.open()
        await driver.request_mode("normal")
        await driver.set_balancing(True)
        await driver.set_insulation_monitor(False)
        with pytest.raises(RangeError, match="turbo"):
            await driver.request_mode("turbo")
        done = await driver.safe_state()
        await driver.close()
        fake.assert_done()
        return done, await driver.safe_state()

    done, closed = run(main(), virtual=True)
    assert done == [SafeAction("requested standby: contactors open (read back)", True),
                    SafeAction("insulation monitor enabled (acknowledged)", True),
                    SafeAction("balancing off (acknowledged)", True)]
    assert "not open" in closed[0].action and not closed[0].confirmed


def test_safe_state_tries_every_write_and_names_the_failure():
    refused = DeviceError("exception 4", code=4, instrument="bms", command="write_register(0, 0)")
    ops = [("write_register", 0, 0, refused), ("write_register", 0, 0, refused),  # refused, retried once
           ("write_coil", 1, False), ("write_coil", 0, False)]

    async def main():
        driver, fake = bms(ops)
        await driver.open()
        with pytest.raises(DeviceError) as err:
            await driver.safe_state()
        fake.assert_done()
        return err.value

    err = run(main(), virtual=True)
    assert "mode_request (holding 0)" in str(err) and "done: insulation monitor enabled, balancing off" in str(err)


def test_safe_state_of_a_silent_bms_relies_on_its_last_reading_within_one_timeout():
    silent = InstrumentTimeout("no reply within 0.2 s", instrument="bms", command="write_register(0, 0)")

    async def main(status_reply):
        reply = list(SIGNALS)
        reply[16] = status_reply
        driver, fake = bms([("read_input", 0, 24, reply), ("read_input", 100, 4, CELLS),
                            ("read_input", 400, 2, TEMPS), ("write_register", 0, 0, silent)])
        await driver.open()
        await driver.poll()
        try:
            return await driver.safe_state()
        except InstrumentTimeout as exc:
            return exc
        finally:
            fake.assert_done()  # nothing more was tried: it would time out the same way

    known = run(main(0b011000), virtual=True)  # contactors open, monitor on at the last reading
    unknown = run(main(0b010011), virtual=True)  # main contactors closed at the last reading
    assert known[0] == SafeAction("requested standby: contactors open (BMS not answering (mode_request (holding 0): "
                                  "no reply within 0.2 s); its last reading, 0.0 s ago)", True)
    assert all(a.confirmed for a in known)  # unpowered or mute, it cannot close them; the DMM checks the bus
    # silent with its contactors last seen closed: recorded, unconfirmed, not raised (nothing was refused)
    assert not unknown[0].confirmed and "contactors STILL CLOSED (main_plus, main_minus;" in unknown[0].action


def test_safe_state_with_contactors_staying_closed_is_not_confirmed_within_the_bound():
    closed = [0b000011]

    async def main():
        driver, fake = bms([("write_register", 0, 0), ("write_coil", 1, False), ("write_coil", 0, False)]
                           + [("read_input", 16, 1, closed)] * 6, confirm_within=0.5)
        await driver.open()
        loop = asyncio.get_running_loop()
        start = loop.time()
        done = await driver.safe_state()
        fake.assert_done()
        return done, loop.time() - start

    done, took = run(main(), virtual=True)
    assert done[0] == SafeAction("requested standby (acknowledged): contactors STILL CLOSED (main_plus, main_minus)", False,
                                 bus_settles=True)
    assert 0.5 <= took < 0.6


@pytest.mark.parametrize("status, bms_state, safe, text", [
    (0b001000, 0, True, "contactors open (BMS state standby)"),
    (0b001011, 2, False, "contactors CLOSED: main_plus, main_minus (BMS state normal)"),
])
def test_energy_state_reads_contactors_and_state_now(status, bms_state, safe, text):
    async def main():
        driver, fake = bms([("read_input", 15, 2, [bms_state, status])])
        await driver.open()
        found = await driver.energy_state()
        fake.assert_done()
        return found

    assert run(main(), virtual=True) == [StateFinding("contactors", safe, text)]


def test_energy_state_of_a_silent_bms_says_so():
    silent = InstrumentTimeout("no reply within 0.2 s", instrument="bms", command="read_input(15, 2)")

    async def main():
        driver, _fake = bms([("read_input", 15, 2, silent)])
        await driver.open()
        return await driver.energy_state()

    (finding,) = run(main(), virtual=True)
    assert finding.safe and finding.detail.startswith("BMS silent (")


def _words(text: str, registers: int) -> list[int]:
    data = text.encode().ljust(2 * registers, b" ")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def test_dids_dtcs_and_unlock_over_registers():
    seed, key = 0x12345678, 0x12345678 ^ 0x5AC3E1F0  # did_table.yaml level 1: xor 0x5AC3E1F0
    ops = [("read_input", 500, 8, _words("BMS2610010000042", 8)),
           ("read_input", 524, 4, _words("4.2.1", 4)),
           ("write_register", 1, 1), ("read_input", 640, 2, [seed >> 16, seed & 0xFFFF]),
           ("write_registers", 2, [key >> 16, key & 0xFFFF]),
           ("write_registers", 13, _words("SN0042", 10)),
           ("write_register", 10, 1),
           ("read_input", 600, 1, [2]), ("read_input", 601, 4, [0x0A1B, 0x2C09, 0x0012, 0x3408]),
           ("write_coil", 2, True), ("write_coil", 3, True)]

    async def main():
        driver, fake = bms(ops)
        await driver.open()
        ident = await driver.identify()  # no I/O: the pack's BMS may still be asleep
        serial = await driver.uds_read(0xF18C)
        firmware = await driver.uds_read(0xF195)
        await driver.uds_session("extended")  # no sessions on Modbus: nothing sent
        await driver.uds_unlock(1)
        await driver.uds_write(0xF1A2, b"SN0042".ljust(20))
        await driver.uds_write(0xF1A0, b"\x01")
        dtcs = await driver.read_dtcs(0x01)
        await driver.clear_dtcs()
        await driver.ecu_reset()
        with pytest.raises(InstrumentError, match="not available over Modbus"):
            await driver.routine(0x0203)
        with pytest.raises(InstrumentError, match="not in the DID table"):
            await driver.uds_read(0x1234)
        with pytest.raises(RangeError, match="read-only"):
            await driver.uds_write(0xF18C, b"X" * 16)
        fake.assert_done()
        return ident, serial, firmware, dtcs

    ident, serial, firmware, dtcs = run(main(), virtual=True)
    assert (ident.maker, ident.serial) == ("unknown", "")
    assert serial == b"BMS2610010000042" and firmware == b"4.2.1   "
    assert dtcs == [Dtc(0x0A1B2C, 0x09)]


def test_a_map_without_a_register_equivalent_says_so(tmp_path):
    text = Path(load_bms_map("modbus_bms.yaml").path).read_text()
    lines = [ln for ln in text.splitlines() if "name: dtc" not in ln and "address: 601" not in ln
             and "code << 8" not in ln]
    path = tmp_path / "no_dtcs.yaml"
    path.write_text("\n".join(lines))

    async def main():
        driver = ModbusBms("bms", "modbus-tcp://127.0.0.1:5020", transport=ExpectedRegisters([]),
                           options={"map": str(path), "autopoll": False})
        await driver.open()
        with pytest.raises(InstrumentError, match="read DTCs is not available over Modbus"):
            await driver.read_dtcs()

    run(main(), virtual=True)


def test_a_mode_the_map_has_no_state_for_is_refused_naming_the_states_and_sends_nothing(tmp_path):
    text = Path(load_bms_map("modbus_bms.yaml").path).read_text()
    assert "states: {standby: 0, normal: 1, charge: 2, discharge: 3}" in text
    path = tmp_path / "no_discharge.yaml"
    path.write_text(text.replace("states: {standby: 0, normal: 1, charge: 2, discharge: 3}",
                                 "states: {standby: 0, normal: 1, charge: 2}"))

    async def main():
        fake = ExpectedRegisters([])
        driver = ModbusBms("bms", "modbus-tcp://127.0.0.1:5020", transport=fake,
                           options={"map": str(path), "autopoll": False})
        await driver.open()
        with pytest.raises(RangeError, match=r"mode_request has no state 'discharge'.*standby, normal, charge"):
            await driver.request_mode("discharge")
        fake.assert_done()

    run(main(), virtual=True)


def test_map_errors_are_located(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nregisters:\n"
                    "  - {name: pack_voltage, table: input, address: 0, type: float32}\n"
                    "  - {name: cell_voltages, table: input, address: 10, type: uint16, length: 0}\n"
                    "  - {name: pack_serial, table: holding, address: 0, type: string}\n"
                    "  - {name: bms_state, table: input, address: 2, states: [a, b]}\n"
                    "  - {name: soc, table: input, address: 3, type: uint17}\n")
    with pytest.raises(MapError) as err:
        load_bms_map(path)
    problems = "\n".join(err.value.problems)
    assert f"{path}:4:" in problems and "'length' must be an integer" in problems
    assert f"{path}:5:" in problems and "a string needs 'length'" in problems
    assert f"{path}:6:" in problems and "'states' must map names" in problems
    assert f"{path}:7:" in problems and "uint17" in problems


def test_an_array_overlapping_a_field_is_refused(tmp_path):
    path = tmp_path / "overlap.yaml"
    path.write_text("name: o\nregisters:\n"
                    "  - {name: cell_voltages, table: input, address: 0, type: uint16, length: 8}\n"
                    "  - {name: soc, table: input, address: 5}\n")
    with pytest.raises(MapError, match="'soc' at input 5 overlaps 'cell_voltages'"):
        load_bms_map(path)


# --- byte level: RTU frames on a pyserial socket:// line --------------------------------------

class Line:
    """The far end of the serial line: records what the driver sends, answers scripted bytes."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = list(replies)
        self.received: list[bytes] = []
        self.writers: list = []

    async def serve(self, reader, writer) -> None:
        self.writers.append(writer)
        while data := await reader.read(256):
            self.received.append(data)
            if self.replies:
                writer.write(self.replies.pop(0))

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return f"socket://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


def rtu(replies: list[bytes], body, *, unit: int = 1, timeout: float = 0.2):
    async def main():
        line = Line(replies)
        port = await line.start()
        driver = ModbusBms("bms", f"modbus-rtu://{port}?baud=115200&unit={unit}", timeout=timeout,
                           options={"autopoll": False, "cells": 4, "temperature_sensors": 2})
        await driver.open()
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            result = await body(driver)
        except InstrumentError as exc:
            result = exc
        took = loop.time() - start
        await driver.close()
        for writer in line.writers:
            writer.close()
        line.server.close()
        await asyncio.sleep(0.01)
        return result, b"".join(line.received), took

    return run(main(), virtual=True)


def test_crc_of_the_reference_frame():
    assert crc16(bytes.fromhex("01 03 00 00 00 0A")).to_bytes(2, "little") == bytes.fromhex("C5 CD")


def test_rtu_read_is_the_exact_frame_and_decodes_the_reply():
    value, sent, _ = rtu([bytes.fromhex("01 04 02 15 AE 36 1C")], lambda d: d.read_signal("soc"))
    assert sent == bytes.fromhex("01 04 00 05 00 01 21 CB")  # unit 1, FC4, address 5, 1 register, CRC
    assert value == pytest.approx(55.5)


def test_rtu_write_and_unit_id_are_on_the_wire():
    _, sent, _ = rtu([bytes.fromhex("01 06 00 00 00 01 48 0A")], lambda d: d.request_mode("normal"))
    assert sent == bytes.fromhex("01 06 00 00 00 01 48 0A")  # FC6 mode_request := 1 (normal)
    _, sent, _ = rtu([], lambda d: d.read_signal("soc"), unit=3)
    assert sent == bytes.fromhex("03 04 00 05 00 01 20 29")


@pytest.mark.parametrize("reply, kind", [
    (bytes.fromhex("01 04 02 15 AE 36 1D"), "bad CRC"),
    (bytes.fromhex("02 04 02 15 AE 72 1C"), "wrong unit id"),
])
def test_a_reply_with_bad_crc_or_another_unit_is_no_reply_within_the_timeout(reply, kind):
    err, sent, took = rtu([reply], lambda d: d.read_signal("soc"), timeout=0.2)
    assert sent == bytes.fromhex("01 04 00 05 00 01 21 CB")
    assert isinstance(err, InstrumentTimeout), kind  # as on a bus: discarded, so no reply
    assert "soc (input 5..5)" in str(err)
    assert took <= 0.2 + 0.05


def test_an_exception_reply_is_a_device_error_with_its_code_naming_register_and_signal():
    err, _, took = rtu([bytes.fromhex("01 84 02 C2 C1")], lambda d: d.read_signal("soc"))
    assert isinstance(err, DeviceError) and err.code == 2
    assert "soc (input 5..5)" in str(err) and "ILLEGAL_DATA_ADDRESS" in str(err)
    assert took < 0.2
