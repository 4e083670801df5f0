"""``ChangeSignal``: who wakes, when, and from which thread or event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from ztos.directory import ChangeSignal

BOUND = 5.0  # no test may hang: every wait that should end has this much time


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, BOUND))  # type: ignore[arg-type]


def test_a_revision_already_past_returns_at_once() -> None:
    signal = ChangeSignal(revision=7)
    assert run(signal.wait_for_revision(6, timeout=60)) == 7
    assert signal.waiting == 0


def test_timeout_returns_the_unchanged_revision_and_forgets_the_waiter() -> None:
    signal = ChangeSignal(revision=3)
    assert run(signal.wait_for_revision(3, timeout=0.01)) == 3
    assert signal.waiting == 0


def test_a_notify_from_another_thread_wakes_the_waiter() -> None:
    signal = ChangeSignal(revision=1)

    async def scenario() -> int:
        waiting = asyncio.ensure_future(signal.wait_for_revision(1, timeout=60))
        while signal.waiting == 0:  # the waiter is registered within a few loop turns
            await asyncio.sleep(0)
        threading.Thread(target=signal.notify, args=(4,)).start()
        return await waiting

    assert run(scenario()) == 4
    assert signal.waiting == 0


def test_an_older_or_equal_revision_wakes_nobody() -> None:
    signal = ChangeSignal(revision=5)

    async def scenario() -> tuple[bool, int]:
        waiting = asyncio.ensure_future(signal.wait_for_revision(5, timeout=60))
        while signal.waiting == 0:
            await asyncio.sleep(0)
        signal.notify(4)
        signal.notify(5)
        await asyncio.sleep(0.05)
        still_waiting = not waiting.done()
        signal.notify(6)
        return still_waiting, await waiting

    assert run(scenario()) == (True, 6)
    assert signal.revision == 6


def test_only_waiters_the_revision_passes_wake() -> None:
    signal = ChangeSignal(revision=0)

    async def scenario() -> tuple[bool, bool]:
        low = asyncio.ensure_future(signal.wait_for_revision(0, timeout=60))
        high = asyncio.ensure_future(signal.wait_for_revision(10, timeout=60))
        while signal.waiting < 2:
            await asyncio.sleep(0)
        signal.notify(2)
        await low
        await asyncio.sleep(0.05)
        woke_high = high.done()
        high.cancel()
        return low.done(), woke_high

    assert run(scenario()) == (True, False)


def test_close_wakes_every_loop_and_later_waits_return_at_once() -> None:
    signal = ChangeSignal(revision=2)
    results: list[int] = []

    def waiter() -> None:
        results.append(asyncio.run(asyncio.wait_for(signal.wait_for_revision(2, timeout=60), BOUND)))

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(500):  # bounded: the three waiters register within 5 s
        if signal.waiting == 3:
            break
        threading.Event().wait(0.01)
    assert signal.waiting == 3
    signal.close()
    for thread in threads:
        thread.join(BOUND)
    assert results == [2, 2, 2]
    assert signal.closed
    assert run(signal.wait_for_revision(2, timeout=60)) == 2


def test_sleep_is_cut_short_by_close() -> None:
    signal = ChangeSignal()

    async def scenario() -> None:
        sleeping = asyncio.ensure_future(signal.sleep(60))
        while signal.waiting == 0:
            await asyncio.sleep(0)
        signal.notify(1)  # a change does not end a sleep
        await asyncio.sleep(0.05)
        assert not sleeping.done()
        signal.close()
        await sleeping

    run(scenario())


@pytest.mark.parametrize("count", [1, 200])
def test_many_waiters_one_notify(count: int) -> None:
    signal = ChangeSignal()

    async def scenario() -> list[int]:
        waits = [asyncio.ensure_future(signal.wait_for_revision(0, timeout=60)) for _ in range(count)]
        while signal.waiting < count:
            await asyncio.sleep(0)
        signal.notify(1)
        return await asyncio.gather(*waits)

    assert run(scenario()) == [1] * count
