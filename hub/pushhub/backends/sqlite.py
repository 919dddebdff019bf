"""The embedded default store: every channel's log in one SQLite database in WAL mode.

Appends commit before the publisher is answered. With ``synchronous=NORMAL`` (the default) a commit
survives the hub process crashing or being killed; ``synchronous=FULL`` (``--fsync``) also survives
the machine losing power, at the cost of an fsync per commit.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Sequence

from ..cursor import new_epoch
from ..errors import Unavailable
from ..events import Event, EventDraft
from ..retention import RetentionPolicy
from .base import HistoryPage, StreamState
from .embedded import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS channels (
    name TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    top INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    channel TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (channel, seq)
) WITHOUT ROWID;
"""


class Database:
    """One autocommit connection to the WAL database at ``path``, with ``schema`` applied on open.

    Several may share a file (the log and the webhook store do): each waits up to 5 s for another's
    write to finish instead of failing at once.
    """

    def __init__(self, path: str, schema: str, *, fsync: bool, name: str) -> None:
        self.path = path
        self.schema = schema
        self.fsync = fsync
        self.name = name
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
        db.executescript(self.schema)
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise Unavailable(f"the {self.name} is closed")
        return self._db

    def transaction(self, statements: Callable[[sqlite3.Connection], object], what: str) -> None:
        """Run ``statements`` in one write transaction; any SQLite error becomes
        :class:`~pushhub.errors.Unavailable` saying that ``what`` failed."""
        db = self.db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                statements(db)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise Unavailable(f"could not {what}: {exc}") from exc


class OnDatabase:
    """A store kept in one :class:`Database`: opening and closing the store opens and closes it."""

    database: Database

    def open(self) -> None:
        self.database.open()

    def close(self) -> None:
        self.database.close()

    @property
    def db(self) -> sqlite3.Connection:
        return self.database.db


class SqliteStore(OnDatabase, Store):
    def __init__(self, path: str, retention: RetentionPolicy, *, fsync: bool = False) -> None:
        super().__init__(retention)
        self.database = Database(path, SCHEMA, fsync=fsync, name="log store")
        self._heads: dict[str, list[object]] = {}  # channel -> [epoch, top]

    def _head(self, channel: str) -> list[object]:
        head = self._heads.get(channel)
        if head is None:
            row = self.db.execute("SELECT epoch, top FROM channels WHERE name = ?", (channel,)).fetchone()
            head = self._heads[channel] = list(row) if row else [None, 0]
        return head

    def append(self, channel: str, drafts: Sequence[EventDraft], now: float) -> list[Event]:
        head = self._head(channel)
        top = head[1]
        assert isinstance(top, int)
        epoch = head[0] if isinstance(head[0], str) else new_epoch()
        new_top = top + len(drafts)

        def statements(db: sqlite3.Connection) -> None:
            rows = [(channel, top + i, now, d.stored()) for i, d in enumerate(drafts, 1)]
            db.executemany("INSERT INTO events (channel, seq, ts, body) VALUES (?, ?, ?, ?)", rows)
            db.execute(
                "INSERT INTO channels (name, epoch, top) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET top = excluded.top",
                (channel, epoch, new_top),
            )
            keep = self.retention.for_channel(channel).max_events
            if new_top > keep:
                db.execute("DELETE FROM events WHERE channel = ? AND seq <= ?", (channel, new_top - keep))

        self.database.transaction(statements, "append to the log")
        head[0], head[1] = epoch, new_top
        return [Event(channel, epoch, top + i, d) for i, d in enumerate(drafts, 1)]

    def _state(self, channel: str) -> StreamState:
        epoch, top = self._head(channel)
        if epoch is None:
            epoch = self._heads[channel][0] = new_epoch()
            self.db.execute("INSERT INTO channels (name, epoch, top) VALUES (?, ?, 0)", (channel, epoch))
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
        dropped = 0
        for (channel,) in self.db.execute("SELECT name FROM channels").fetchall():
            cutoff = now - self.retention.for_channel(channel).max_age
            dropped += self.db.execute("DELETE FROM events WHERE channel = ? AND ts < ?", (channel, cutoff)).rowcount
        return dropped
