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
from pushhub.backends.sqlite_sync import Syncer
from pushhub.errors import Unavailable
from pushhub.events import EventDraft
from pushhub.retention import Retention, RetentionPolicy
from pushhub.webhooks.store import SqliteDeliveryStore

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


async def test_a_version_5_file_keeps_its_deliveries_and_indexes_only_the_pending_ones_by_due_time(
        tmp_path: pathlib.Path) -> None:
    """Version 6 makes the due index partial; the deliveries a version 5 file holds are all still
    there, and its pending ones are still found due, through that index."""
    path = tmp_path / "log.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        for step in sqlite_schema.STEPS[:5]:
            db.executescript(step)
        db.executemany(
            "INSERT INTO webhook_deliveries (id, endpoint_id, channel, epoch, offset, event_id, event_type, payload, "
            "status, attempts, tries, next_at, created_at, updated_at) VALUES (?, 'ep', 'c', 'e1', ?, ?, 't', "
            "x'7b7d', ?, 0, 0, ?, 0, 0)",
            [("d1", 1, "evt_1", "succeeded", 5.0), ("d2", 2, "evt_2", "pending", 7.0),
             ("d3", 3, "evt_3", "pending", 50.0)])
        db.execute("PRAGMA user_version = 5")
        db.commit()
    database = Database(str(path))
    database.open()
    try:
        (index,) = database.db.execute("SELECT sql FROM sqlite_master WHERE name = 'webhook_deliveries_due'").fetchone()
        assert index.endswith("WHERE status = 'pending'")
        store = SqliteDeliveryStore(database)
        assert [d.id for d in await store.due("ep", 10.0, 10)] == ["d2"]
        assert [d.id for d in await store.due("ep", 10.0, 10, ordered=True)] == ["d2"]
        assert await store.next_due("ep") == 7.0
        assert [d.id for d in await store.deliveries(endpoint_id="ep")] == ["d3", "d2", "d1"]
    finally:
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


def test_the_wal_starts_over_while_commits_keep_coming(tmp_path: pathlib.Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint beside the commits never catches up with them, and the WAL only starts over
    after one that did: without a pause in the commits it grew by every page they wrote (800 MB in
    15 s of single publishes). Past RESTART_FRAMES the checkpointer holds the commits off to catch up."""
    monkeypatch.setattr(sqlite, "CHECKPOINT_COMMITS", 10)
    monkeypatch.setattr(sqlite, "RESTART_FRAMES", 64)
    path = tmp_path / "log.db"
    database = Database(str(path))
    database.open()
    try:
        store = SqliteStore(database, POLICY)
        for n in range(8000):
            store.append("c", [draft(n)], now=0.0)
        frames = (tmp_path / "log.db-wal").stat().st_size // 4120
        assert frames < 6000  # 26 000 before (each commit wrote 3 frames); since, 600-3000 (the checkpointer's turns)
        assert store.state("c").top == 8000 and len(store.read("c", 0, 1000).events) == 100
    finally:
        database.close()


class BusyStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__(POLICY)
        self.busy_now = True

    def busy(self) -> bool:
        return self.busy_now


async def test_a_group_commit_waits_for_a_busy_store_without_holding_up_the_loop() -> None:
    store = BusyStore()
    broker = EmbeddedBroker(store)
    await broker.start(lambda channel, events: None)
    publishes = [asyncio.ensure_future(broker.publish("c", [draft(n)])) for n in range(3)]
    done, _ = await asyncio.wait(publishes, timeout=POLL)  # the loop runs on meanwhile
    assert not done and store.state("c").top == 0
    store.busy_now = False
    published = await asyncio.wait_for(asyncio.gather(*publishes), TIMEOUT)
    assert [p.events[0].offset for p in published] == [1, 2, 3]
    await broker.close()


async def test_with_fsync_a_group_commit_is_answered_after_an_fsync_made_off_the_loop(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commits go on while the WAL is being fsynced; one fsync answers every group committed
    before it began, and nothing is answered before its fsync is done."""
    syncing, release = threading.Event(), threading.Event()
    syncs: list[str] = []
    original = Syncer.sync

    def sync(self: Syncer) -> None:
        syncs.append(threading.current_thread().name)
        if syncs[-1] == "pushhub-fsync":
            syncing.set()
            release.wait(TIMEOUT)
        original(self)

    monkeypatch.setattr(Syncer, "sync", sync)
    database = Database(str(tmp_path / "log.db"), fsync=True)
    database.open()
    store = SqliteStore(database, POLICY)
    store.state("c")  # a channel made with a write transaction of its own: durable on return, on this thread
    assert syncs == ["MainThread"]
    broker = EmbeddedBroker(store)
    await broker.start(lambda channel, events: None)
    first = asyncio.ensure_future(broker.publish("c", [draft(1)]))
    assert await asyncio.to_thread(syncing.wait, TIMEOUT)
    later = []
    for n in (2, 3):  # two more group commits meanwhile, on the loop
        later.append(asyncio.ensure_future(broker.publish("c", [draft(n)])))
        await asyncio.wait(later, timeout=POLL)
    assert store.state("c").top == 3 and not first.done() and not any(p.done() for p in later)
    release.set()
    published = await asyncio.wait_for(asyncio.gather(first, *later), TIMEOUT)
    assert [p.events[0].offset for p in published] == [1, 2, 3]
    assert syncs == ["MainThread", "pushhub-fsync", "pushhub-fsync"]  # the channel's row, then 2 for 3 groups
    await broker.close()
    database.close()


async def test_with_fsync_a_group_commit_that_cannot_be_made_durable_fails(
        tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def sync(self: Syncer) -> None:
        raise OSError(5, "Input/output error")

    database = Database(str(tmp_path / "log.db"), fsync=True)
    database.open()
    monkeypatch.setattr(Syncer, "sync", sync)
    broker = EmbeddedBroker(SqliteStore(database, POLICY))
    await broker.start(lambda channel, events: None)
    with pytest.raises(Unavailable, match="durable"):
        await asyncio.wait_for(broker.publish("c", [draft(1)]), TIMEOUT)
    await broker.close()
    monkeypatch.undo()
    database.close()
