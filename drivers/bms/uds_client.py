"""UDS (ISO 14229) client for the pack's BMS: udsoncan over can-isotp on the station's CAN port.

udsoncan and can-isotp block on their own threads with real-time timeouts, so every call runs
through ``loop.run_in_executor`` on one worker thread per client: requests never interleave
(the tester-present keep-alive shares that thread), the event loop stays free to run the
simulated ECU, and the station's virtual-time loop holds real time while a call is pending.

DIDs are described by the shared DID table (drivers/maps/did_table.yaml); the seed/key
algorithm and its parameters default to the table's ``security`` section. Errors: a negative
response is ``DeviceError(code=nrc)`` naming the NRC, service and DID; no reply in time is
``InstrumentTimeout``; a reply that does not parse is ``ProtocolError``; values or DIDs the
table cannot represent are ``RangeError`` before anything is sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import can
import isotp
from udsoncan import exceptions as uds_exc
from udsoncan.client import Client
from udsoncan.common.DidCodec import DidCodec
from udsoncan.configs import default_client_config
from udsoncan.connections import PythonIsoTpConnection
from udsoncan.Request import Request
from udsoncan.Response import Response
from udsoncan.services.InputOutputControlByIdentifier import InputOutputControlByIdentifier
from udsoncan.services.RoutineControl import RoutineControl
from udsoncan.services.WriteDataByIdentifier import WriteDataByIdentifier
from udsoncan.typing import ClientConfig

from drivers.bms.did_table import DidEntry, DidTable, DidValueError, load_did_table
from drivers.bms.security import KeyFunction, compute_key, key_function
from drivers.capabilities import Dtc
from drivers.errors import ConnectError, DeviceError, InstrumentError, InstrumentTimeout, ProtocolError, RangeError
from drivers.validators import OneOf, Range

SESSIONS = {"default": 0x01, "programming": 0x02, "extended": 0x03}
_DID = Range(0, 0xFFFF, unit="(DID)")
_ROUTINE = Range(0, 0xFFFF, unit="(routine id)")
_MASK = Range(0, 0xFF, unit="(status mask)")
_LEVEL = Range(1, 0x3F, unit="(security level)")


# udsoncan / can-isotp / python-can failures -> (typed error, message prefix); first match wins.
_FAILURES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], type[InstrumentError], str], ...] = (
    (uds_exc.TimeoutException, InstrumentTimeout, "no reply to"),
    (isotp.BlockingSendFailure, InstrumentTimeout, "request not sent (no flow control?) for"),
    ((uds_exc.InvalidResponseException, uds_exc.UnexpectedResponseException), ProtocolError, "bad reply to"),
    ((uds_exc.ConfigError, ValueError), RangeError, "refused"),
    ((can.CanError, OSError), ConnectError, "CAN transport failed during"),
)


class _RawCodec(DidCodec):
    """Bytes in, bytes out: decoding per codec is ours (DidEntry), so the table stays the one source."""

    def __init__(self, length: int | None) -> None:
        self.length = length

    def encode(self, data: bytes) -> bytes:
        return bytes(data)

    def decode(self, payload: bytes) -> bytes:
        return bytes(payload)

    def __len__(self) -> int:
        if self.length is None:
            raise DidCodec.ReadAllRemainingData  # a DID outside the table: take the rest
        return self.length


class _BoundedSendConnection(PythonIsoTpConnection):
    """udsoncan sends without a timeout; a blocking ISO-TP send must not wait forever."""

    def __init__(self, stack: Any, name: str, send_timeout: float) -> None:
        super().__init__(stack, name=name)
        self.send_timeout = send_timeout

    def specific_send(self, payload: bytes, timeout: float | None = None) -> None:
        super().specific_send(payload, self.send_timeout if timeout is None else timeout)


class _RxFilteredStack(isotp.NotifierBasedCanStack):
    """The ISO-TP stack, fed only its response id.

    The stock stack queues every frame on the bus for its thread to discard; with a BMS sending
    ~70 cyclic frames/s that thread wakes for nothing and competes with the event loop (measured:
    the queue put alone took 1.6 s of a 24 s reference run).
    """

    def __init__(self, rx_id: int, *args: Any, **kwargs: Any) -> None:
        self._rx_only = rx_id
        super().__init__(*args, **kwargs)

    def _on_message_received(self, msg: can.Message) -> None:
        if msg.arbitration_id == self._rx_only:
            super()._on_message_received(msg)


class UdsClient:
    """UDS client on ``port`` (anything with an open python-can ``bus`` and its one ``notifier``).

    ``tx_id``/``rx_id``: request/response CAN ids. ``timeout`` (s): P2, the wait for a reply;
    ``p2_star`` (s): the wait after each 0x78 responsePending; ``request_timeout`` (s): the
    bound on a whole exchange, pending replies included. ``key_algorithm`` (name or function)
    and ``key_params`` override the DID table's ``security`` entry for every level.
    ``keepalive`` (s): tester-present period while a non-default session is active.
    """

    def __init__(
        self,
        port: Any,
        *,
        tx_id: int = 0x7E4,
        rx_id: int = 0x7EC,
        did_table: DidTable | str | Path | None = None,
        key_algorithm: str | KeyFunction | None = None,
        key_params: Mapping[str, Any] | None = None,
        timeout: float = 2.0,
        p2_star: float = 5.0,
        request_timeout: float = 30.0,
        keepalive: float = 2.0,
        instrument: str = "bms",
    ) -> None:
        self.port = port
        self.tx_id, self.rx_id = tx_id, rx_id
        self.table = did_table if isinstance(did_table, DidTable) else load_did_table(did_table)
        if isinstance(key_algorithm, str):
            key_function(key_algorithm)  # an unknown name fails at construction, not at unlock
        self.key_algorithm = key_algorithm
        self.key_params = dict(key_params) if key_params is not None else None
        self.timeout, self.p2_star, self.request_timeout = timeout, p2_star, request_timeout
        self.keepalive = keepalive
        self.instrument = instrument
        self.session_kind = "default"
        self.unlocked_level = 0  # security level unlocked in this session (0: locked)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._client: Client | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._keepalive_error: Exception | None = None  # raised by the next request
        self._tx_error: Exception | None = None  # CAN send failure seen in can-isotp's thread

    # --- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Attach an ISO-TP stack to the port's notifier and start it."""
        if self._client is not None:
            return
        stack = _RxFilteredStack(
            self.rx_id,
            bus=self.port.bus,
            notifier=self.port.notifier,
            address=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=self.tx_id, rxid=self.rx_id),
            params={
                "stmin": 0,  # no pacing asked of the ECU: 192 bytes take ms instead of 145 ms
                "blocksize": 0,
                "tx_padding": 0xCC,
                "rx_flowcontrol_timeout": 1000,
                "rx_consecutive_frame_timeout": 1000,
                # Return from send only once the frames are on the bus: on the virtual-time
                # loop, real time is held only until the executor call returns.
                "blocking_send": True,
            },
        )
        config: ClientConfig = {
            **default_client_config,
            "data_identifiers": {**{did: _RawCodec(e.length) for did, e in self.table.entries.items()},
                                 "default": _RawCodec(None)},
            "security_algo": self._key,
            "p2_timeout": self.timeout,
            "p2_star_timeout": self.p2_star,
            "request_timeout": self.request_timeout,
            "use_server_timing": False,  # the station's timeouts rule, not the ECU's 50 ms P2
        }
        self._guard_tx(stack)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"uds-{self.instrument}")
        # The send covers a multi-frame request: up to 1 s of waiting for the ECU's flow control.
        client = Client(_BoundedSendConnection(stack, self.instrument, self.timeout + 1.0), config=config)
        try:
            await self._run("open ISO-TP", client.open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._client = client

    async def close(self) -> None:
        """Stop the keep-alive and the ISO-TP stack; idempotent."""
        await self._stop_keepalive()
        client, executor, self._client, self._executor = self._client, self._executor, None, None
        if client is None or executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, client.close)
        finally:
            executor.shutdown(wait=False)

    async def __aenter__(self) -> UdsClient:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # --- services -------------------------------------------------------------------------------

    async def session(self, kind: str) -> None:
        """0x10 DiagnosticSessionControl: "default" | "extended" | "programming"."""
        OneOf(tuple(SESSIONS)).check(kind, what="session", instrument=self.instrument)
        await self._stop_keepalive()
        await self._call("0x10 DiagnosticSessionControl", f"session {kind}", lambda c: c.change_session(SESSIONS[kind]))
        self.session_kind = kind
        self.unlocked_level = 0  # every session transition relocks (ISO 14229-1 9.2)
        if kind != "default":
            self._keepalive_task = asyncio.ensure_future(self._keep_alive())

    async def read_did(self, did: int) -> bytes:
        """0x22 ReadDataByIdentifier: the raw payload of ``did`` (any DID, in the table or not)."""
        _DID.check(did, what="DID", instrument=self.instrument)
        response = await self._call(
            "0x22 ReadDataByIdentifier", f"DID {did:#06x}", lambda c: c.read_data_by_identifier([did])
        )
        try:
            value: bytes = response.service_data.values[did]  # as _RawCodec decoded it
            return value
        except (AttributeError, KeyError):
            raise ProtocolError(f"reply to 0x22 lacks DID {did:#06x}", instrument=self.instrument, command=f"0x22 {did:04X}") from None

    async def read_did_value(self, did: int | str) -> Any:
        """0x22, decoded per the DID table's codec (str, int, date or None)."""
        entry = self._entry(did)
        raw = await self.read_did(entry.did)
        try:
            return entry.decode(raw)
        except DidValueError as exc:
            raise ProtocolError(f"DID {entry.did:#06x} ({entry.name}): {exc}", instrument=self.instrument, command=f"0x22 {entry.did:04X}") from None

    async def write_did(self, did: int | str, value: Any) -> None:
        """0x2E WriteDataByIdentifier: raw bytes of the DID's length, or a value its codec encodes."""
        entry = self._entry(did)
        try:
            data = entry.encode(value)
        except DidValueError as exc:
            raise RangeError(f"DID {entry.did:#06x} ({entry.name}): {exc}", instrument=self.instrument, command=f"0x2E {entry.did:04X}") from None
        await self._call(
            "0x2E WriteDataByIdentifier", f"DID {entry.did:#06x} ({entry.name})",
            lambda c: c.write_data_by_identifier(entry.did, data),
        )

    async def unlock(self, level: int = 1) -> None:
        """0x27 SecurityAccess: requestSeed (2*level-1), compute the key, sendKey (2*level)."""
        _LEVEL.check(level, what="security level", instrument=self.instrument)
        if self.key_algorithm is None and level not in self.table.security:
            raise RangeError(f"security level {level} not in {self.table.path}", instrument=self.instrument)
        await self._call("0x27 SecurityAccess", f"level {level}", lambda c: c.unlock_security_access(2 * level - 1))
        self.unlocked_level = level

    async def read_dtcs(self, mask: int = 0xFF) -> list[Dtc]:
        """0x19 02 reportDTCByStatusMask."""
        _MASK.check(mask, what="DTC status mask", instrument=self.instrument)
        response = await self._call("0x19 ReadDTCInformation", f"mask {mask:#04x}", lambda c: c.get_dtc_by_status_mask(mask))
        return [Dtc(d.id, d.status.get_byte_as_int()) for d in response.service_data.dtcs]

    async def clear_dtcs(self) -> None:
        """0x14 ClearDiagnosticInformation, group FFFFFF (all)."""
        await self._call("0x14 ClearDiagnosticInformation", "group 0xFFFFFF", lambda c: c.clear_dtc(0xFFFFFF))

    async def ecu_reset(self) -> None:
        """0x11 01 hard reset: the ECU returns to the default session, security relocked."""
        await self._stop_keepalive()
        await self._call("0x11 ECUReset", "hardReset", lambda c: c.ecu_reset(0x01))
        self.session_kind = "default"
        self.unlocked_level = 0

    async def routine(self, rid: int, data: bytes = b"") -> bytes:
        """0x31 01 startRoutine; waits through 0x78 replies (P2* each); returns the status record."""
        _ROUTINE.check(rid, what="routine id", instrument=self.instrument)
        response = await self._call(
            "0x31 RoutineControl", f"start routine {rid:#06x}", lambda c: c.start_routine(rid, bytes(data) or None)
        )
        return bytes(response.service_data.routine_status_record or b"")

    async def request(self, sid: int, payload: bytes, subject: str) -> bytes:
        """Any request ``sid`` + ``payload`` (a profile's command: 0x31, 0x2F, 0x2E); waits through
        0x78 replies; returns the positive reply after its SID. ``subject`` names it in errors."""
        service = _SERVICES.get(sid)
        if service is None:
            raise RangeError(f"unknown UDS service {sid:#04x}", instrument=self.instrument, command=subject)
        with_sub = service.use_subfunction()
        request = Request(service, subfunction=payload[0] if with_sub else None,
                                   data=bytes(payload[1:] if with_sub else payload))
        response = await self._call(f"{sid:#04x} {service.get_name()}", subject, lambda c: c.send_request(request))
        if response is None or not response.positive:
            raise ProtocolError(f"no positive reply to {subject}", instrument=self.instrument, command=subject)
        return bytes(response.data)

    async def tester_present(self) -> None:
        """0x3E 80: tester present with the positive reply suppressed."""
        await self._call("0x3E TesterPresent", "suppressed", _suppressed_tester_present)

    # --- plumbing -------------------------------------------------------------------------------

    def _entry(self, did: int | str) -> DidEntry:
        try:
            return self.table.resolve(did)
        except KeyError as exc:
            raise RangeError(str(exc.args[0]), instrument=self.instrument) from None

    def _key(self, level: int, seed: bytes, params: Any = None) -> bytes:
        """udsoncan's security_algo hook; runs in the worker thread (pure computation)."""
        config = self.table.security.get((level + 1) // 2)
        algorithm = self.key_algorithm or (config.algorithm if config else None)
        if algorithm is None:
            raise RangeError(f"no seed/key algorithm for level {(level + 1) // 2}", instrument=self.instrument)
        key_params = self.key_params if self.key_params is not None else (config.params if config else {})
        return compute_key(algorithm, seed, key_params)

    def _guard_tx(self, stack: Any) -> None:
        """A CanError inside can-isotp's thread would kill that thread and leave every request
        hanging; keep it instead for the request in flight, which raises it as ConnectError."""
        send = stack.txfn

        def txfn(msg: Any) -> None:
            try:
                send(msg)
            except can.CanError as exc:
                self._tx_error = exc

        stack.txfn = txfn

    async def _keep_alive(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.keepalive)
                await self.tester_present()
        except (DeviceError, InstrumentTimeout, ProtocolError, ConnectError) as exc:
            # Nobody awaits this task: hand the failure to the next request, which raises it.
            self._keepalive_error = exc

    async def _stop_keepalive(self) -> None:
        task, self._keepalive_task = self._keepalive_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self, what: str, func: Callable[[], Any]) -> Any:
        if self._executor is None:
            raise ConnectError("UDS client is not open", instrument=self.instrument, command=what)
        return await asyncio.get_running_loop().run_in_executor(self._executor, func)

    async def _call(self, service: str, subject: str, func: Callable[[Client], Any]) -> Any:
        """Run one udsoncan request on the worker thread; map its failures to typed errors."""
        client = self._client
        if client is None:
            raise ConnectError("UDS client is not open", instrument=self.instrument, command=f"{service} {subject}")
        command = f"{service} {subject}"
        if self._keepalive_error is not None:
            error, self._keepalive_error = self._keepalive_error, None
            raise error
        try:
            try:
                return await self._run(command, lambda: func(client))
            finally:
                if self._tx_error is not None:
                    error, self._tx_error = self._tx_error, None
                    raise ConnectError(f"CAN send failed during {service}: {error}", instrument=self.instrument, command=command)
        except ConnectError:
            raise
        except uds_exc.NegativeResponseException as exc:
            code = exc.response.code
            if code is None:
                raise ProtocolError(f"negative response without a code to {service}, {subject}",
                                    instrument=self.instrument, command=command) from None
            raise DeviceError(
                f"negative response {nrc_name(code)} ({code:#04x}) to {service}, {subject}",
                code=code, instrument=self.instrument, command=command,
            ) from None
        except Exception as exc:
            for kinds, typed, what in _FAILURES:
                if isinstance(exc, kinds):
                    raise typed(f"{what} {service}, {subject}: {exc}", instrument=self.instrument, command=command) from None
            raise


_SERVICES = {0x31: RoutineControl, 0x2F: InputOutputControlByIdentifier, 0x2E: WriteDataByIdentifier}


def _suppressed_tester_present(client: Client) -> None:
    with client.suppress_positive_response(wait_nrc=False):
        client.tester_present()


def nrc_name(code: int) -> str:
    """ISO 14229-1 mnemonic of an NRC, e.g. 0x33 -> "securityAccessDenied"."""
    name = Response.Code.get_name(code)
    if not name or not name[0].isalpha():  # udsoncan returns str(code) for unknown codes
        return "unknownNrc"
    return name[0].lower() + name[1:]
