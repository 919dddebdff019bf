"""The embedded default store: every channel's log in one SQLite database in WAL mode.

The hub keeps everything in that one file (``pushhub.db``): the logs, the idempotency records of
their publishes, and the webhook state (:class:`~pushhub.webhooks.store.SqliteDeliveryStore`). What
must commit with an append joins its transaction (:attr:`Database.joined`): the webhook intake's
deliveries and cursor moves are written in the same transaction as the events they are made for.

Appends commit before the publisher is answered. With ``synchronous=NORMAL`` a commit survives the
hub process crashing or being killed; with ``--fsync`` it also survives the machine losing power:
the WAL is fsynced after it, by a thread (:mod:`.sqlite_sync`) for the group commits, whose
publishers are answered and events fanned out once it is done (one fsync for every group committed
meanwhile), and at once for any other write transaction.

Checkpoints (copying the WAL back into the database file, with an fsync of each in any mode) run on
a thread of their own (:class:`Checkpointer`), never inside a commit on the event loop: SQLite's
automatic checkpoint would stall the loop for the two fsyncs every thousand pages. The WAL starts
over only after a checkpoint that caught up with the last commit, which one running beside the
commits never does while they keep coming: so once the WAL holds :data:`RESTART_FRAMES` frames, the
checkpointer finishes its next checkpoint with the commits held off (:meth:`Database.busy`; the
group commit waits for it off the loop, :meth:`pushhub.backends.embedded.Store.busy`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from ..channels import compile_patterns
from ..cursor import new_epoch
from ..errors import Unavailable
from ..events import Event
from ..provenance import Origin
from ..retention import RetentionPolicy
from . import sqlite_schema
from .base import LEGACY_SCOPE, ChannelPage, Found, HistoryPage, Published, Recorded, StreamState
from .embedded import Append, Durable, Store
from .sqlite_sync import Syncer

logger = logging.getLogger("pushhub")

Appended = Sequence[tuple[str, list[Event]]]  # the channel and the new events of each append, in order


class Joined(Protocol):
    """Writes that join an append's transaction: called inside it, after the events are written, with
    what was appended; returns what to do once it committed (if anything)."""

    def __call__(self, db: sqlite3.Connection, appended: Appended) -> Callable[[], None] | None: ...


INSERT_EVENTS = ("INSERT INTO events (channel, seq, ts, body, id, type, origin, delivery) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
CHECKPOINT_COMMITS = 200  # commits between checkpoints (SQLite's own default is every 1000 WAL pages)
CHECKPOINT_IDLE = 1.0  # seconds between checkpoints when fewer commits came
RESTART_FRAMES = 4096  # WAL frames (16 MiB of pages, one hash table of its index) that make the WAL start over


class Checkpointer:
    """A thread with a connection of its own that checkpoints the WAL in ``PASSIVE`` mode (it never
    waits for the writer) after every :data:`CHECKPOINT_COMMITS` commits it is told of, or every
    :data:`CHECKPOINT_IDLE` seconds. When the WAL has grown past :data:`RESTART_FRAMES` it then holds
    the commits off (``hold``) and checkpoints once more, what came since the first pass: that
    checkpoint catches up, and the next commit starts the WAL over."""

    def __init__(self, path: str, hold: Callable[[], contextlib.AbstractContextManager[None]]) -> None:
        self.path = path
        self.hold = hold
        self.commits = 0
        self._due = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="pushhub-checkpoint", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        self.commits += 1
        if self.commits % CHECKPOINT_COMMITS == 0:
            self._due.set()

    def stop(self) -> None:
        self._stopping = True
        self._due.set()
        self._thread.join()

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            while not self._stopping:
                self._due.wait(CHECKPOINT_IDLE)
                self._due.clear()
                try:
                    _, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if frames > RESTART_FRAMES:
                        with self.hold():
                            db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # the next one tries again; commits go on meanwhile
                    logger.warning("could not checkpoint %s: %s", self.path, exc)
        finally:
            db.close()


class Database:
    """The one connection to the hub's SQLite file (WAL mode), and its one write path.

    The log, the idempotency records and the webhook store all live in this file and write through
    :meth:`transaction` on this connection: one writer, so no write ever waits for another
    process's lock, and work that commits together (an append and its record) shares a transaction.
    Opening the file brings its schema up to date (:mod:`.sqlite_schema`).
    """

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        self.path = path
        self.fsync = fsync
        self._db: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None
        self._syncer: Syncer | None = None  # with fsync
        self._writing = threading.Lock()  # held by each write transaction, and by the checkpointer (hold)
        self._open = threading.Event()  # cleared while the checkpointer holds the commits off
        self._open.set()
        self.joined: list[Joined] = []  # called by every append, in its transaction

    def open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # with fsync, the Syncer's
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open the database {self.path}: {exc}") from exc
        try:
            sqlite_schema.migrate(db, self.path)
            db.execute("PRAGMA wal_autocheckpoint=0")  # the Checkpointer's job
        except BaseException:
            db.close()
            raise
        self._db = db
        self._checkpointer = Checkpointer(self.path, self._hold)
        if self.fsync:
            self._syncer = Syncer(self.path + "-wal")

    def close(self) -> None:
        if self._syncer is not None:
            self._syncer.close()
            self._syncer = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):  # closing checkpoints too, if it can
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise Unavailable(f"the database {self.path} is closed")
        return self._db

    def busy(self) -> bool:
        """Whether a write transaction would wait now: the checkpointer holds the commits off while
        it catches up with the WAL (for as long as two fsyncs take)."""
        return not self._open.is_set()

    @contextlib.contextmanager
    def _hold(self) -> Iterator[None]:
        """No write transaction begins meanwhile; the one under way, if any, ends first. (The
        commits yield: a lock alone would let the loop's next transaction take it first, again and
        again.)"""
        self._open.clear()
        try:
            with self._writing:
                yield
        finally:
            self._open.set()

    def when_durable(self, callback: Durable) -> None:
        """Call ``callback`` once what was committed until now survives losing power (with fsync: on
        the event loop, after the Syncer's next fsync; else at once, as a commit survives a crash)."""
        if self._syncer is None:
            callback(None)
        else:
            self._syncer.after(callback)

    def transaction(self, statements: Callable[[sqlite3.Connection], object], what: str, *,
                    sync: bool = True) -> None:
        """Run ``statements`` in one write transaction; any SQLite error becomes
        :class:`~pushhub.errors.Unavailable` saying that ``what`` failed. With fsync the commit is
        durable on return, unless ``sync`` is false: then :meth:`when_durable` says when."""
        db = self.db
        if not self._open.is_set():
            self._open.wait()
        try:
            with self._writing:
                db.execute("BEGIN IMMEDIATE")
                try:
                    statements(db)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise Unavailable(f"could not {what}: {exc}") from exc
        if self._checkpointer is not None:
            self._checkpointer.committed()
        if sync and self._syncer is not None:
            try:
                self._syncer.sync()
            except OSError as exc:
                raise Unavailable(f"could not {what}: {exc}") from exc


def _after_commit(committed: list[Callable[[], None]], error: Exception | None) -> None:
    """What the joined writes do once their commit is durable (nothing if it may not be: the
    webhook intake then reads the log again)."""
    if error is None:
        for after in committed:
            after()


class SqliteStore(Store):
    """Every channel's log, and the idempotency records of its publishes, in the :class:`Database`."""

    def __init__(self, database: Database, retention: RetentionPolicy) -> None:
        super().__init__(retention)
        self.database = database
        self._heads: dict[str, list[object]] = {}  # channel -> [epoch, top]
        self._origins: dict[str, int] = {}  # Origin.key() -> its row in origins, once committed
        self._origin_keys: dict[int, str] = {}
        self._types: set[tuple[str, str]] = set()  # (type, channel) pairs known to be in event_types

    def _origin_id(self, db: sqlite3.Connection, key: str, made: dict[str, int]) -> int:
        """The id of ``key`` in ``origins``, added in this transaction if it is new (``made``
        keeps those until the transaction commits)."""
        known = self._origins.get(key) or made.get(key)
        if known is None:
            row = db.execute("INSERT INTO origins (key) VALUES (?) ON CONFLICT (key) DO UPDATE SET key = key "
                             "RETURNING id", (key,)).fetchone()
            known = made[key] = int(row[0])
        return known

    @property
    def db(self) -> sqlite3.Connection:
        return self.database.db

    def busy(self) -> bool:
        return self.database.busy()

    def when_durable(self, callback: Durable) -> None:
        self.database.when_durable(callback)

    def _head(self, channel: str) -> list[object]:
        head = self._heads.get(channel)
        if head is None:
            row = self.db.execute("SELECT epoch, MAX(recorded_top, IFNULL((SELECT MAX(seq) FROM events WHERE "
                                  "channel = ?1), 0)) FROM channels WHERE name = ?1", (channel,)).fetchone()
            head = self._heads[channel] = list(row) if row else [None, 0]
        return head

    def append_all(self, appends: Sequence[Append], now: float) -> list[Published]:
        """One transaction for all of ``appends``; the cached heads move only once it committed."""
        heads: dict[str, tuple[str, int]] = {}  # channel -> (epoch, top) as the transaction leaves it
        created: list[tuple[str, str]] = []  # the channels (and their epochs) that have no row yet
        results: list[Published] = []
        committed: list[Callable[[], None]] = []
        made: dict[str, int] = {}
        typed: set[tuple[str, str]] = set()

        rows: list[tuple[object, ...]] = []  # the events of every append, inserted in one executemany

        def insert_rows(db: sqlite3.Connection) -> None:
            if rows:
                db.executemany(INSERT_EVENTS, rows)
                rows.clear()

        def statements(db: sqlite3.Connection) -> None:
            for channel, drafts, once, origin in appends:
                fresh = False
                if channel in heads:
                    epoch, top = heads[channel]
                else:
                    cached_epoch, cached_top = self._head(channel)
                    assert isinstance(cached_top, int)
                    if isinstance(cached_epoch, str):
                        epoch = cached_epoch
                    else:
                        epoch, fresh = new_epoch(), True
                    top = cached_top
                if once is not None:
                    insert_rows(db)  # a record found may name an event of this transaction
                    row = db.execute(
                        "SELECT value, epoch, first FROM once WHERE channel = ? AND key = ? AND scope IN (?, ?) "
                        "AND expires > ? ORDER BY scope = ? LIMIT 1",
                        (channel, once.key, once.scope, LEGACY_SCOPE, now, LEGACY_SCOPE)).fetchone()
                    if row is not None:
                        if row[1] == epoch:
                            db.execute("UPDATE events SET repeats = repeats + 1 WHERE channel = ? AND seq = ?",
                                       (channel, row[2]))
                        results.append(Published([], Recorded(bytes(row[0]), row[1], row[2])))
                        continue
                    db.execute("INSERT OR REPLACE INTO once (channel, scope, key, expires, value, epoch, first) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)",
                               (channel, once.scope, once.key, now + once.ttl, once.value, epoch, top + 1))
                origin_id = None if origin is None else self._origin_id(db, origin.key(), made)
                delivery = None if origin is None else origin.delivery
                events = []
                for draft in drafts:
                    top += 1
                    rows.append((channel, top, now, draft.stored(), draft.id, draft.type, origin_id, delivery))
                    events.append(Event(channel, epoch, top, draft))
                    typing = (draft.type, channel)
                    if typing not in self._types and typing not in typed:
                        typed.add(typing)
                        db.execute("INSERT OR IGNORE INTO event_types (type, channel) VALUES (?, ?)", typing)
                results.append(Published(events))
                heads[channel] = (epoch, top)
                if fresh:
                    created.append((channel, epoch))
            insert_rows(db)
            if created:
                db.executemany("INSERT INTO channels (name, epoch, recorded_top) VALUES (?, ?, 0)", created)
            for channel, (_, top) in heads.items():
                keep = self.retention.for_channel(channel).max_events
                if top > keep:
                    db.execute("DELETE FROM events WHERE channel = ? AND seq <= ?", (channel, top - keep))
            if self.database.joined:
                appended = [(append.channel, published.events) for append, published in zip(appends, results,
                                                                                            strict=True)
                            if published.events]
                for joined in self.database.joined:
                    after = joined(db, appended)
                    if after is not None:
                        committed.append(after)

        self.database.transaction(statements, "append to the log", sync=False)
        for channel, (epoch, top) in heads.items():
            self._heads[channel] = [epoch, top]
        self._origins.update(made)
        self._types |= typed
        if committed:
            self.database.when_durable(functools.partial(_after_commit, committed))
        return results

    def _state(self, channel: str) -> StreamState:
        epoch, top = self._head(channel)
        if epoch is None:
            created = new_epoch()
            self.database.transaction(lambda db: db.execute(
                "INSERT INTO channels (name, epoch, recorded_top) VALUES (?, ?, 0)", (channel, created)),
                "create a channel")
            epoch = self._heads[channel][0] = created
        assert isinstance(epoch, str) and isinstance(top, int)
        row = self.db.execute("SELECT MIN(seq) FROM events WHERE channel = ?", (channel,)).fetchone()
        return StreamState(epoch, top, row[0] if row[0] is not None else top + 1)

    def state(self, channel: str) -> StreamState:
        try:
            return self._state(channel)
        except sqlite3.Error as exc:
            raise Unavailable(f"could not read the log: {exc}") from exc

    def read(self, channel: str, after: int, limit: int) -> HistoryPage:
        try:
            state = self._state(channel)
            rows = self.db.execute(
                "SELECT seq, body FROM events WHERE channel = ? AND seq > ? ORDER BY seq LIMIT ?",
                (channel, after, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise Unavailable(f"could not read the log: {exc}") from exc
        return HistoryPage([Event.from_stored(channel, state.epoch, seq, body) for seq, body in rows], state)

    def expire(self, now: float) -> int:
        dropped = []

        def statements(db: sqlite3.Connection) -> None:
            for (channel,) in db.execute("SELECT name FROM channels").fetchall():
                cutoff = now - self.retention.for_channel(channel).max_age
                top = self._head(channel)[1]  # read before the newest event may go (and cached)
                deleted = db.execute("DELETE FROM events WHERE channel = ? AND ts < ?", (channel, cutoff))
                if deleted.rowcount:
                    db.execute("UPDATE channels SET recorded_top = ? WHERE name = ?", (top, channel))
                dropped.append(deleted.rowcount)
            db.execute("DELETE FROM once WHERE expires <= ?", (now,))
        self.database.transaction(statements, "expire old events")
        return sum(dropped)

    # The event index ------------------------------------------------------------------------------

    def _found(self, rows: list[tuple[str, int, bytes, int | None, str | None, int]]) -> list[Found]:
        found = []
        for channel, seq, body, origin_id, delivery, repeats in rows:
            epoch = self._state(channel).epoch
            origin = None
            if origin_id is not None:
                key = self._origin_keys.get(origin_id)
                if key is None:
                    key = self._origin_keys[origin_id] = self.db.execute(
                        "SELECT key FROM origins WHERE id = ?", (origin_id,)).fetchone()[0]
                origin = Origin.from_key(key, delivery)
            found.append(Found(Event.from_stored(channel, epoch, seq, body), origin, repeats))
        return found

    def _search(self, sql: str, params: tuple[object, ...]) -> list[Found]:
        try:
            return self._found(self.db.execute(
                f"SELECT channel, seq, body, origin, delivery, repeats FROM events {sql}", params).fetchall())
        except sqlite3.Error as exc:
            raise Unavailable(f"could not read the event index: {exc}") from exc

    def find(self, event_id: str, limit: int) -> list[Found]:
        return self._search("WHERE id = ? LIMIT ?", (event_id, limit))

    def find_type(self, event_type: str, limit: int) -> list[Found]:
        """Each channel the type was published to is read newest first (a walk back over its log,
        which retention bounds), and the newest ``limit`` of all are kept."""
        try:
            channels = [c for (c,) in self.db.execute("SELECT channel FROM event_types WHERE type = ?",
                                                      (event_type,)).fetchall()]
            rows = [row for channel in channels for row in self.db.execute(
                "SELECT ts, channel, seq, body, origin, delivery, repeats FROM events WHERE channel = ? AND type = ? "
                "ORDER BY seq DESC LIMIT ?", (channel, event_type, limit)).fetchall()]
        except sqlite3.Error as exc:
            raise Unavailable(f"could not read the event index: {exc}") from exc
        rows.sort(key=lambda row: (row[0], row[2]), reverse=True)
        return self._found([row[1:] for row in rows[:limit]])

    def channels(self, pattern: str, after: str, limit: int) -> ChannelPage:
        compile_patterns([pattern], kind="channel")  # refuses what GLOB would read differently
        try:
            rows = self.db.execute("SELECT name FROM channels WHERE name > ? AND name GLOB ? ORDER BY name LIMIT ?",
                                   (after, pattern, limit + 1)).fetchall()
        except sqlite3.Error as exc:
            raise Unavailable(f"could not list the channels: {exc}") from exc
        names = [name for (name,) in rows]
        return ChannelPage(names[:limit], names[limit - 1] if len(names) > limit else None)

    def recent(self, channel: str, since: float) -> int:
        try:
            return int(self.db.execute("SELECT COUNT(*) FROM events WHERE channel = ? AND ts >= ?",
                                       (channel, since)).fetchone()[0])
        except sqlite3.Error as exc:
            raise Unavailable(f"could not read the log: {exc}") from exc
