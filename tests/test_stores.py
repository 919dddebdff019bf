"""The embedded log stores, on plain values and a given clock (no server)."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest

from pushhub.backends import sqlite, sqlite_schema
from pushhub.backends.base import Once
from pushhub.backends.embedded import Append, EmbeddedBroker, MemoryStore, Store
from pushhub.backends.sqlite import CHECKPOINT_COMMITS, Database, SqliteStore
from pushhub.errors import Unavailable
from pushhub.events import EventDraft
from pushhub.retention import Retention, RetentionPolicy

from .utils import POLL, TIMEOUT

POLICY = RetentionPolicy(["short.*=3/1h"], Retention(100, 60.0))


def draft(n: int) -> EventDraft:
    return EventDraft(f"evt_{n}", "t", "2026-01-01T00:00:00.000Z", n, {})


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore(POLICY)
        return
    database = Database(str(tmp_path / "log.db"))
    database.open()
    yield SqliteStore(database, POLICY)
    database.close()


def test_idempotency_records_expire_with_their_window(store: Store) -> None:
    once = Once("", "k", b"v", ttl=10.0)
    (event,) = store.append("c", [draft(1)], now=1000.0, once=once).events
    assert store.append("c", [draft(2)], now=1009.0, once=once).replayed == (b"v", event.epoch, 1)
    store.expire(now=1010.0)
    assert store.append("c", [draft(3)], now=1010.0, once=once).events[0].offset == 2


def test_append_assigns_consecutive_offsets_in_one_epoch(store: Store) -> None:
    first = store.append("c", [draft(1), draft(2)], now=0.0).events
    second = store.append("c", [draft(3)], now=0.0).events
    assert [e.offset for e in first + second] == [1, 2, 3]
    assert len({e.epoch for e in first + second}) == 1
    assert store.state("c") == (first[0].epoch, 3, 1)
    assert store.state("other").top == 0 and store.state("other").earliest == 1


def test_the_appends_of_one_step_see_each_other(store: Store) -> None:
    once = Once("", "k", b"v", ttl=10.0)
    first, replay, other, second = store.append_all(
        [Append("c", [draft(1)], once), Append("c", [draft(2)], once), Append("d", [draft(3)]),
         Append("c", [draft(4), draft(5)])], now=0.0)
    assert [e.offset for e in first.events] == [1] and replay.replayed == (b"v", first.events[0].epoch, 1)
    assert [e.offset for e in other.events] == [1] and [e.offset for e in second.events] == [2, 3]
    assert store.state("c").top == 3 and [e.data for e in store.read("c", 0, 10).events] == [1, 4, 5]
    assert [found.repeats for found in store.find(first.events[0].id, 10)] == [1]  # the replay in the same step


async def test_a_failed_group_commit_fails_every_publish_in_it(tmp_path: pathlib.Path) -> None:
    database = Database(str(tmp_path / "log.db"))
    database.open()
    broker = EmbeddedBroker(SqliteStore(database, POLICY))
    await broker.start(lambda channel, events: None)
    assert [p.events[0].offset for p in await asyncio.gather(*(broker.publish("c", [draft(n)]) for n in range(3)))] \
        == [1, 2, 3]
    database.close()
    results = await asyncio.gather(*(broker.publish("c", [draft(n)]) for n in range(3)), return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results)
    await broker.close()


def test_read_pages_after_an_offset(store: Store) -> None:
    store.append("c", [draft(n) for n in range(10)], now=0.0)
    page = store.read("c", 4, 3)
    assert [e.data for e in page.events] == [4, 5, 6]
    assert [e.offset for e in store.read("c", 9, 3).events] == [10]
    assert store.read("c", 10, 3).events == []


def test_count_retention_trims_the_oldest(store: Store) -> None:
    store.append("short.x", [draft(n) for n in range(5)], now=0.0)
    state = store.state("short.x")
    assert (state.top, state.earliest) == (5, 3)
    assert [e.offset for e in store.read("short.x", 0, 10).events] == [3, 4, 5]


def test_age_retention_expires_old_events(store: Store) -> None:
    store.append("c", [draft(1)], now=1000.0)
    store.append("c", [draft(2)], now=1050.0)
    store.append("short.y", [draft(3)], now=1000.0)
    assert store.expire(now=1070.0) == 1
    assert [e.offset for e in store.read("c", 0, 10).events] == [2]
    assert store.state("c").earliest == 2
    assert [e.offset for e in store.read("short.y", 0, 10).events] == [1]


def test_sqlite_log_survives_reopening(tmp_path: pathlib.Path) -> None:
    database = Database(str(tmp_path / "log.db"))
    database.open()
    store = SqliteStore(database, POLICY)
    (event,) = store.append("c", [draft(1)], now=0.0).events
    empty_epoch = store.state("empty").epoch
    database.close()
    database.open()
    reopened = SqliteStore(database, POLICY)
    assert reopened.state("c") == (event.epoch, 1, 1)
    assert reopened.state("empty").epoch == empty_epoch
    (again,) = reopened.append("c", [draft(2)], now=0.0).events
    assert (again.epoch, again.offset) == (event.epoch, 2)
    assert reopened.read("c", 0, 10).events[0].id == "evt_1"
    database.close()


def test_a_channel_keeps_its_offsets_after_expiry_emptied_its_log_and_a_restart(tmp_path: pathlib.Path) -> None:
    """An append does not write its channel's row: the top is its newest event's offset, which
    expiry records before it deletes the newest."""
    database = Database(str(tmp_path / "log.db"))
    database.open()
    store = SqliteStore(database, POLICY)
    (*_, last) = store.append("c", [draft(1), draft(2)], now=1000.0).events
    store.append("d", [draft(3)], now=1000.0)
    store.append("d", [draft(4)], now=1100.0)
    assert store.expire(now=1070.0) == 3
    database.close()
    database.open()
    reopened = SqliteStore(database, POLICY)
    assert reopened.state("c") == (last.epoch, 2, 3)
    assert reopened.state("d").top == 2
    (again,) = reopened.append("c", [draft(5)], now=2000.0).events
    assert (again.epoch, again.offset) == (last.epoch, 3)
    database.close()


def test_a_version_4_file_keeps_each_channels_top(tmp_path: pathlib.Path) -> None:
    """Version 4 wrote each channel's top on every append, which version 5 reads as its recorded top."""
    path = tmp_path / "log.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        for step in sqlite_schema.STEPS[:4]:
            db.executescript(step)
        db.execute("INSERT INTO channels (name, epoch, top) VALUES ('emptied', 'e1', 7), ('kept', 'e2', 2)")
        db.execute("INSERT INTO events (channel, seq, ts, body) VALUES ('kept', 2, 0, ?)",
                   (draft(2).stored(),))
        db.execute("PRAGMA user_version = 4")
        db.commit()
    database = Database(str(path))
    database.open()
    store = SqliteStore(database, POLICY)
    assert (store.state("emptied"), store.state("kept")) == (("e1", 7, 8), ("e2", 2, 2))
    assert [e.offset for e in store.append("emptied", [draft(8)], now=0.0).events] == [8]
    database.close()


def test_the_wal_is_checkpointed_beside_the_commits_not_in_them(tmp_path: pathlib.Path) -> None:
    """Commits never checkpoint (two fsyncs that would stall the event loop); a thread of the
    database does, every CHECKPOINT_COMMITS commits, so the WAL's pages reach the database file."""
    path = tmp_path / "log.db"
    database = Database(str(path))
    database.open()
    try:
        assert database.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
        store = SqliteStore(database, POLICY)
        size = path.stat().st_size
        for n in range(CHECKPOINT_COMMITS):
            store.append(f"c{n}", [EventDraft(f"evt_{n}", "t", "2026-01-01T00:00:00.000Z", "x" * 2000, {})], now=0.0)
        deadline = time.monotonic() + TIMEOUT
        while path.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(POLL)
        assert path.stat().st_size > size
    finally:
        database.close()
    assert not (tmp_path / "log.db-wal").exists() or (tmp_path / "log.db-wal").stat().st_size == 0
    assert not any(t.name == "pushhub-checkpoint" for t in threading.enumerate())


def wal_restarts(path: pathlib.Path) -> int:
    """The WAL header's checkpoint sequence number: SQLite adds one each time it starts the file over."""
    with open(path, "rb") as f:
        return int.from_bytes(f.read(16)[12:16], "big")


async def test_a_steady_load_starts_the_wal_over_instead_of_growing_it(tmp_path: pathlib.Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Publishes back to back never leave the WAL all copied at a commit, where SQLite would start it
    over: the checkpointer has the appends held for a last checkpoint once it holds RESTART_FRAMES."""
    monkeypatch.setattr(sqlite, "RESTART_FRAMES", 64)
    monkeypatch.setattr(sqlite, "CHECKPOINT_COMMITS", 20)
    database = Database(str(tmp_path / "log.db"))
    database.open()
    broker = EmbeddedBroker(SqliteStore(database, POLICY))
    await broker.start(lambda channel, events: None)
    wal = tmp_path / "log.db-wal"
    limit = 64 * 1024 * 1024  # far above what RESTART_FRAMES lets it reach; growing without end, it gets there
    try:
        await broker.publish("c0", [draft(0)])
        first = wal_restarts(wal)
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        n = 1
        while wal_restarts(wal) < first + 2 and wal.stat().st_size < limit \
                and asyncio.get_running_loop().time() < deadline:
            await broker.publish(f"c{n % 50}", [draft(n)])
            n += 1
        assert wal_restarts(wal) >= first + 2, f"{n} publishes, WAL at {wal.stat().st_size} bytes"
        assert [(await broker.state(f"c{c}")).top for c in range(50)] == [len(range(c, n, 50)) for c in range(50)]
    finally:
        database.close()
        await broker.close()


async def test_appends_wait_while_the_checkpointer_holds_them(tmp_path: pathlib.Path) -> None:
    database = Database(str(tmp_path / "log.db"))
    database.open()
    broker = EmbeddedBroker(SqliteStore(database, POLICY))
    await broker.start(lambda channel, events: None)
    try:
        assert database.hold is not None
        database.hold.hold(threading.Event())
        publishes = [asyncio.ensure_future(broker.publish("c", [draft(n)])) for n in range(3)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert not any(p.done() for p in publishes)
        assert database.db.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
        database.hold.release()
        assert [p.events[0].offset for p in await asyncio.gather(*publishes)] == [1, 2, 3]
    finally:
        database.close()
        await broker.close()
