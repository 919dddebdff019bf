"""Background tasks are stopped for certain, also when Python 3.11's ``wait_for`` loses a cancel."""

from __future__ import annotations

import asyncio
import sys

import pytest

from pushhub.tasks import cancel_and_wait

from .utils import TIMEOUT


class Looper:
    """A task that loops over ``asyncio.wait_for`` like a webhook worker over redis-py's writes,
    with the inner future of each turn in the test's hands."""

    def __init__(self) -> None:
        self.inner: asyncio.Future[None] | None = None
        self.waiting = asyncio.Event()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.inner = asyncio.get_running_loop().create_future()
            self.waiting.set()
            await asyncio.wait_for(self.inner, 4 * TIMEOUT)

    async def next_turn(self) -> asyncio.Future[None]:
        await asyncio.wait_for(self.waiting.wait(), TIMEOUT)
        self.waiting.clear()
        assert self.inner is not None
        return self.inner


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12's wait_for no longer loses a cancel")
async def test_a_plain_cancel_is_lost_when_it_lands_as_wait_for_completes() -> None:
    """What the helper is for: ``cancel()`` once, and the task carries on."""
    looper = Looper()
    (await looper.next_turn()).set_result(None)
    looper.task.cancel()  # lands in the turn the inner future completes in
    await looper.next_turn()  # the loop went round again
    assert not looper.task.done()
    await asyncio.wait_for(cancel_and_wait([looper.task]), TIMEOUT)


async def test_a_task_whose_cancel_was_lost_is_cancelled_again() -> None:
    looper = Looper()
    (await looper.next_turn()).set_result(None)
    await asyncio.wait_for(cancel_and_wait([looper.task, None]), TIMEOUT)
    assert looper.task.cancelled()


async def test_an_error_a_task_ended_with_is_raised_once_all_have_ended() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    failing = asyncio.get_running_loop().create_task(fail())
    looper = Looper()
    await looper.next_turn()
    with pytest.raises(ValueError, match="boom"):
        await asyncio.wait_for(cancel_and_wait([failing, looper.task]), TIMEOUT)
    assert looper.task.cancelled()


async def test_the_callers_own_cancellation_is_not_absorbed() -> None:
    entered, swallowed, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        entered.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                swallowed.set()

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.wait_for(entered.wait(), TIMEOUT)
    caller = asyncio.get_running_loop().create_task(cancel_and_wait([task]))
    await asyncio.wait_for(swallowed.wait(), TIMEOUT)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(caller, TIMEOUT)
    release.set()
    await asyncio.wait_for(task, TIMEOUT)
