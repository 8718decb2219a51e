"""The virtual clock of a proof run (every peer in this process): a hold taken for a peer that
may be in another process is void; holds for threads still count."""

from __future__ import annotations

import asyncio

from station import clock


async def _holds_seen():
    loop = asyncio.get_running_loop()
    seen = {}
    loop.hold_real_time()
    seen["outside"] = loop.real_time_held
    await asyncio.sleep(600.0)  # a hung peer's timeout: virtual seconds when the hold is void
    seen["slept_to"] = loop.time()
    loop.release_real_time()
    future = loop.run_in_executor(None, sum, [1, 2])
    seen["thread"] = loop.real_time_held  # held from the hand-over until the worker's result
    await future
    with clock.real_time():
        seen["real_time_block"] = loop.real_time_held
    seen["after"] = loop.real_time_held
    return seen


def test_in_process_loop_voids_outside_holds_but_keeps_thread_holds():
    seen = clock.run(_holds_seen(), virtual=True, in_process=True)
    assert seen["outside"] is False
    assert seen["slept_to"] >= 600.0
    assert seen["thread"] is True and seen["real_time_block"] is True and seen["after"] is False


async def _outside_hold():
    loop = asyncio.get_running_loop()
    loop.hold_real_time()
    held = loop.real_time_held
    loop.release_real_time()
    return held, loop.real_time_held


def test_default_virtual_loop_keeps_outside_holds():
    assert clock.run(_outside_hold(), virtual=True) == (True, False)
