"""Stopping the hub's background tasks for certain.

On Python 3.11 a task's cancellation can be lost: ``asyncio.wait_for``, which redis-py runs around
every command's write when a socket timeout is set (as the hub sets it), returns normally when the
cancel lands in the loop turn its inner future completes in (cpython#86296, fixed in 3.12), and a
task that loops then carries on as if it had never been cancelled. ``task.cancel()`` followed by
``await task`` then waits forever: a webhook endpoint deleted over the API hung its ``DELETE`` this
way, now and then, on a hub with Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

# How long a cancelled task may take to end before it is cancelled again: longer than any cleanup a
# task does once cancelled (closing a connection), short enough not to hold a shutdown up.
RECANCEL_AFTER = 0.5


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any] | None]) -> None:
    """Cancel each of ``tasks`` (``None`` for one never started) and wait until all have ended,
    cancelling again any that is still running :data:`RECANCEL_AFTER` seconds later. A cancellation
    of the caller meanwhile is not absorbed; an exception a task ended with, other than its
    cancellation, is raised once all have ended."""
    started = [task for task in tasks if task is not None]
    pending = {task for task in started if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER)
    for task in started:
        if not task.cancelled():
            task.result()
