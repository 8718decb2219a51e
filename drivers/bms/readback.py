"""What a BMS's own frames prove in the safe state, for command paths without a CAN request:
whether it still sends, and whether it reports its contactors open.

A BMS already silent (LV off, asleep, unplugged) is judged by its last report: unpowered, it
cannot close a contactor; one it last reported closed, or never reported, is not confirmed.
Waits run on the loop clock (virtual or real).
"""

from __future__ import annotations

import asyncio

from drivers.bms.live_values import LiveValues
from drivers.capabilities import SafeAction
from drivers.clock import stream_limit
from drivers.errors import StaleSignalError

CONTACTORS = ("contactor_main_plus", "contactor_main_minus", "contactor_precharge")
CONFIRM_WITHIN_S = 1.0  # s the contactors are waited for open
POLL_S = 0.01


def silent(live: LiveValues) -> bool:
    """No fresh contactor report (older than 3 cycles, or never)."""
    for name in CONTACTORS:
        if name in live.map.signals:
            try:
                live.get(name)
            except StaleSignalError:
                return True
    return False


async def answers(live: LiveValues) -> bool:
    """Whether the BMS still sends: a state frame newer than now within 3 of its cycles (LV may
    have been switched off a moment ago, while its last frames are still fresh)."""
    name = next((n for n in CONTACTORS if n in live.map.signals), None)
    if name is None:
        return not silent(live)
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start <= stream_limit(3 * live.map.signals[name].period):
        last = live.last(name)
        if last is not None and last[1] > start:
            return True
        await asyncio.sleep(POLL_S)
    return False


async def contactors(live: LiveValues, within: float = CONFIRM_WITHIN_S) -> SafeAction:
    """The contactors the BMS reports, waited for open up to ``within`` s."""
    names = [n for n in CONTACTORS if n in live.map.signals]
    if not names:
        return SafeAction("contactor state not in the BMS profile: not read back", False, bus_settles=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        last = {n: live.last(n) for n in names}
        closed = [n.removeprefix("contactor_") for n, v in last.items() if v is None or v[0] >= 1]
        if not closed or loop.time() >= deadline or silent(live):
            break
        await asyncio.sleep(5 * POLL_S)
    stamps = [v[1] for v in last.values() if v is not None]
    source = ("never reported" if not stamps else f"BMS silent; its last report {loop.time() - min(stamps):.1f} s ago"
              if silent(live) else "BMS state frame")
    if not closed:
        return SafeAction(f"contactors reported open ({source})", True)
    # The HV path is broken when the minus side, or both plus-side paths, are reported open:
    # a welded main+ (the defect a plan catches) leaves the pack isolated by main-.
    unknown = [n for n in ("contactor_main_minus", "contactor_main_plus") if n not in names]
    path_closed = bool(unknown) or ("main_minus" in closed and bool({"main_plus", "precharge"} & set(closed)))
    if path_closed:
        return SafeAction(f"contactors not reported open ({', '.join(closed)}; {source})", False, bus_settles=True)
    return SafeAction(f"HV path reported open, but {', '.join(closed)} reported CLOSED ({source})", True)
