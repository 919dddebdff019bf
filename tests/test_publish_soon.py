"""Publishing without a coroutine (the lean publish route): :meth:`pushhub.hub.Hub.publish_soon`
answered from the group commit itself, and through the publish listeners when they have work."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Sequence
from typing import NamedTuple

from pushhub.backends.base import Published
from pushhub.backends.embedded import Append, EmbeddedBroker
from pushhub.backends.sqlite import Database, SqliteStore
from pushhub.errors import Unavailable
from pushhub.events import Event, EventDraft
from pushhub.hub import Hub
from pushhub.retention import RetentionPolicy

from .utils import TIMEOUT


def draft(n: int) -> EventDraft:
    return EventDraft(f"evt_{n}", "t", "2026-01-01T00:00:00.000Z", n, {})


class Store(SqliteStore):
    """A SQLite store that tells what happens in order."""

    def __init__(self, database: Database, log: list[str]) -> None:
        super().__init__(database, RetentionPolicy())
        self.log = log

    def append_all(self, appends: Sequence[Append], now: float) -> list[Published]:
        published = super().append_all(appends, now)
        self.log.append(f"committed {len(appends)}")
        return published


class Listener:
    def __init__(self, log: list[str], idle: bool) -> None:
        self.log = log
        self.idle = idle

    async def before_publish(self, channel: str) -> None:
        await asyncio.sleep(0)  # it has work to await
        self.log.append("before")

    async def published(self, channel: str, events: list[Event]) -> None:
        await asyncio.sleep(0)
        self.log.append("published")

    def ready(self, channel: str) -> bool:
        return self.idle

    def settled(self, channel: str, events: list[Event]) -> bool:
        return self.idle


class Answers:
    def __init__(self, log: list[str], count: int) -> None:
        self.log = log
        self.results: list[Published | BaseException] = []
        self.count = count
        self.all_in = asyncio.get_running_loop().create_future()

    def done(self, result: Published | BaseException) -> None:
        self.log.append("answered")
        self.results.append(result)
        if len(self.results) == self.count:
            self.all_in.set_result(None)


class Run(NamedTuple):
    log: list[str]  # what happened, in order
    results: list[Published | BaseException]
    tasks_made: bool  # by the calls to publish_soon
    published: int  # in the hub's stats


async def publish(tmp_path: pathlib.Path, count: int, idle: bool | None, *, failing: bool = False) -> Run:
    """``count`` publish_soon calls in one loop turn, with a listener that is ``idle`` (or none)."""
    log: list[str] = []
    database = Database(str(tmp_path / "log.db"))
    database.open()
    hub = Hub(EmbeddedBroker(Store(database, log)))
    await hub.start()
    if idle is not None:
        hub.publish_listeners.append(Listener(log, idle))
    if failing:
        database.close()
    answers = Answers(log, count)
    tasks = asyncio.all_tasks()
    for n in range(count):
        hub.publish_soon("c", [draft(n)], None, None, answers.done)
    tasks_made = asyncio.all_tasks() != tasks
    await asyncio.wait_for(answers.all_in, TIMEOUT)
    await hub.close()
    database.close()
    return Run(log, answers.results, tasks_made, hub.stats.published)


async def test_the_publishes_of_a_loop_turn_are_answered_from_their_group_commit_with_no_task(
        tmp_path: pathlib.Path) -> None:
    run = await publish(tmp_path, 3, idle=True)
    assert not run.tasks_made
    assert run.log == ["committed 3", "answered", "answered", "answered"]
    assert [r.events[0].offset for r in run.results if isinstance(r, Published)] == [1, 2, 3]
    assert run.published == 3


async def test_listeners_with_work_are_awaited_before_the_append_and_before_the_answer(
        tmp_path: pathlib.Path) -> None:
    run = await publish(tmp_path, 1, idle=False)
    assert run.log == ["before", "committed 1", "published", "answered"] and run.published == 1


async def test_a_commit_that_fails_is_answered_with_its_error(tmp_path: pathlib.Path) -> None:
    run = await publish(tmp_path, 2, idle=None, failing=True)
    assert len(run.results) == 2 and all(isinstance(r, Unavailable) for r in run.results)
    assert run.published == 0
