"""The shared deadline of one delay (pure logic on a real event loop): each key expires once, in
the order started, ``delay`` after its start unless ended first, and one timer serves them all."""

from __future__ import annotations

import asyncio

from pushhub.deadlines import SharedDeadline

from .utils import TIMEOUT

DELAY = TIMEOUT / 50


async def test_keys_expire_in_order_after_the_delay_unless_ended() -> None:
    loop = asyncio.get_running_loop()
    expired: list[tuple[str, float]] = []
    done = loop.create_future()

    def expire(key: str) -> None:
        expired.append((key, loop.time()))
        if key == "last":
            done.set_result(None)

    deadlines: SharedDeadline[str] = SharedDeadline(DELAY, expire)
    started = {}
    for key in ("a", "b", "ended", "c"):
        started[key] = loop.time()
        deadlines.start(key, loop)
        await asyncio.sleep(0)
    deadlines.end("ended")
    await asyncio.sleep(DELAY / 2)
    started["last"] = loop.time()
    deadlines.start("last", loop)
    assert deadlines.timer is not None
    await asyncio.wait_for(done, TIMEOUT)
    assert [key for key, _ in expired] == ["a", "b", "c", "last"]
    assert all(when >= started[key] + DELAY for key, when in expired)
    assert deadlines.timer is None and not deadlines.waiting


async def test_a_deadline_started_while_others_expire_is_served_by_one_timer() -> None:
    loop = asyncio.get_running_loop()
    expired: list[str] = []
    done = loop.create_future()

    def expire(key: str) -> None:
        expired.append(key)
        if key == "first":
            deadlines.start("again", loop)  # an expiry that starts another deadline
        elif key == "again":
            done.set_result(None)

    deadlines: SharedDeadline[str] = SharedDeadline(DELAY, expire)
    deadlines.start("first", loop)
    deadlines.start("second", loop)
    await asyncio.wait_for(done, TIMEOUT)
    assert expired == ["first", "second", "again"]
    assert deadlines.timer is None
