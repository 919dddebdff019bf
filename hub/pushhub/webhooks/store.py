"""Durable webhook state: endpoints, a cursor per channel over the event log, deliveries, attempts.

:class:`DeliveryStore` is the short interface; :class:`MemoryDeliveryStore` is its in-process twin
(for ``--memory`` hubs and tests) and :class:`SqliteDeliveryStore` keeps everything in the same
SQLite database, on the same connection, as the embedded log. The interface is async so that a networked store fits
it: :class:`~.redis_store.RedisDeliveryStore` maps each method that says *atomically* to one Lua
script, and is ``shared`` by several hub processes. The SQLite one does short synchronous work
inside its coroutines, like the embedded log.

A delivery is *pending* (waiting for ``next_at``), *succeeded* or *failed* (the schedule ran out, or
the endpoint answered 410); failed deliveries stay until retention removes them and can be resent.

Each attempt keeps the request headers it sent (secrets masked: :mod:`.masking`), and every batch of
finished attempts adds to its endpoints' per-minute counters (:class:`Minute`) in the same write.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from ..backends.sqlite import Appended, Database
from ..cursor import Position
from ..errors import Unavailable
from .endpoints import Endpoint, OldSecret

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
STATUSES = (PENDING, SUCCEEDED, FAILED)


class _DeliveryIds:
    """``dl_`` + 13 hex digits of microseconds since the epoch, strictly increasing within the
    process, + 8 random characters drawn once per process: unique across processes, and in creation
    order, so each new id lands at the end of the indexes on it (a random id dirties a random page
    of each one per write). No system call per id."""

    def __init__(self) -> None:
        self.last = 0
        self.tag = ""
        self.reset()

    def reset(self) -> None:
        """A tag of this process's own (also after a fork)."""
        self.tag = secrets.token_urlsafe(6)

    def __call__(self) -> str:
        self.last = max(self.last + 1, time.time_ns() // 1000)
        return f"dl_{self.last:013x}{self.tag}"


new_delivery_id = _DeliveryIds()
os.register_at_fork(after_in_child=new_delivery_id.reset)


@dataclass
class Delivery:
    id: str
    endpoint_id: str
    channel: str
    epoch: str
    offset: int
    event_id: str
    event_type: str
    payload: bytes  # the event as the log stores it
    next_at: float
    created_at: float
    status: str = PENDING
    attempts: int = 0  # every attempt ever made
    tries: int = 0  # failed attempts since the schedule last (re)started
    updated_at: float = 0.0
    last_status: int | None = None
    last_error: str | None = None
    seq: int = 0  # the order deliveries were created in, assigned by the store
    version: int = 0  # bumped by every resend, so an attempt in flight cannot undo one

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.endpoint_id, self.channel, self.epoch, self.offset)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "endpoint_id": self.endpoint_id, "event_id": self.event_id,
                "event_type": self.event_type, "channel": self.channel, "cursor": f"{self.epoch}.{self.offset}",
                "status": self.status, "attempts": self.attempts, "next_attempt_at":
                self.next_at if self.status == PENDING else None, "created_at": self.created_at,
                "updated_at": self.updated_at, "last_status": self.last_status, "last_error": self.last_error}


@dataclass
class Attempt:
    delivery_id: str
    endpoint_id: str
    event_id: str
    number: int
    at: float
    latency_ms: float
    status: int | None = None
    response: str = ""  # truncated response body
    error: str | None = None
    id: int = 0  # assigned by the store
    request_headers: dict[str, str] | None = None  # as sent, secrets masked; None if not kept

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


MINUTE = 60


@dataclass
class Minute:
    """One endpoint's attempts that started in one minute."""

    minute: int  # its start, in seconds since the epoch
    succeeded: int = 0
    failed: int = 0
    latency_ms: float = 0.0  # the sum over its attempts

    def as_dict(self) -> dict[str, Any]:
        count = self.succeeded + self.failed
        return {"minute": self.minute, "succeeded": self.succeeded, "failed": self.failed,
                "mean_latency_ms": self.latency_ms / count if count else None}


def tally(attempts: Iterable[Attempt]) -> dict[tuple[str, int], Minute]:
    """The counters ``attempts`` add, by endpoint and minute (pure)."""
    counts: dict[tuple[str, int], Minute] = {}
    for attempt in attempts:
        minute = int(attempt.at // MINUTE * MINUTE)
        found = counts.get((attempt.endpoint_id, minute))
        if found is None:
            found = counts[(attempt.endpoint_id, minute)] = Minute(minute)
        if attempt.succeeded:
            found.succeeded += 1
        else:
            found.failed += 1
        found.latency_ms += attempt.latency_ms
    return counts


def outcome_matches(attempt: Attempt, succeeded: bool | None) -> bool:
    return succeeded is None or attempt.succeeded == succeeded


Moved = tuple[str, Position, list[Delivery]]  # a channel's cursor moves to a position with these deliveries
Committed = Callable[[bool], None]  # called once the moves are committed: whether each delivery was a new row
TakeIn = Callable[[Appended], tuple[Sequence[Moved], Committed] | None]
"""The intake's part of an append (see :meth:`DeliveryStore.join_appends`): the cursor moves to make
with it, and what to do once they are committed (told whether every delivery was added as a new row,
none of them being there already); ``None`` for nothing."""

Finished = Sequence[tuple[Delivery, Attempt]]  # attempts with their deliveries' new states
TakeRecords = Callable[[], tuple[Finished, Callable[[], None]] | None]
"""The recorder's part of an append (see :meth:`DeliveryStore.join_records`): the finished attempts
waiting to be written, and what to do once they are committed; ``None`` for nothing."""

class DeliveryStore(abc.ABC):
    """Opened and closed by its :class:`~pushhub.backends.base.Backend`, with the log."""

    shared = False  # whether other hub processes use the same store (then they see each other's changes)

    def join_appends(self, take_in: TakeIn | None) -> bool:
        """Make ``take_in``'s cursor moves, with their deliveries, in the transaction of each append to
        the log, if this store shares one with the log (SQLite); ``None`` stops. False if it cannot:
        then the intake enqueues after the append."""
        return False

    def join_records(self, take: TakeRecords | None) -> bool:
        """Write what ``take`` returns (as :meth:`finish_attempts` would) in the transaction of each
        append to the log, if this store shares one with the log (SQLite); ``None`` stops. False if
        it cannot."""
        return False

    # Endpoints
    @abc.abstractmethod
    async def save_endpoint(self, endpoint: Endpoint) -> None: ...

    @abc.abstractmethod
    async def endpoints(self) -> list[Endpoint]: ...

    @abc.abstractmethod
    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Remove the endpoint with its deliveries and attempts; False if there was none."""

    # Cursors over the log
    @abc.abstractmethod
    async def cursors(self) -> dict[str, Position]: ...

    @abc.abstractmethod
    async def track(self, channel: str, position: Position) -> None:
        """Start following ``channel`` after ``position`` unless it is followed already."""

    async def cursor(self, channel: str) -> Position | None:
        return (await self.cursors()).get(channel)

    async def endpoints_version(self) -> int | None:
        """A number that moves whenever any process changes an endpoint; ``None`` when only this
        process uses the store (it then knows every change)."""
        return None

    @abc.abstractmethod
    async def enqueue(self, channel: str, position: Position, deliveries: Sequence[Delivery], *,
                      after: Position | None = None, version: int | None = None) -> bool:
        """Atomically add ``deliveries`` (skipping any already there) and move ``channel``'s cursor to
        ``position``; but write nothing and return False if the stored cursor is not ``after`` or the
        endpoints version is not ``version`` (when given): another process moved on meanwhile."""

    @abc.abstractmethod
    async def resend(self, deliveries: Sequence[Delivery], now: float) -> int:
        """Add ``deliveries``; one that exists already is made pending again, due ``now``, its schedule
        restarted. Returns how many are now pending."""

    # Sending
    @abc.abstractmethod
    async def due(self, endpoint_id: str, now: float, limit: int, *, ordered: bool = False) -> list[Delivery]:
        """Pending deliveries due by ``now``, soonest first; with ``ordered``, only the oldest pending
        one, whenever it is due."""

    @abc.abstractmethod
    async def next_due(self, endpoint_id: str) -> float | None: ...

    async def claim(self, delivery: Delivery, now: float) -> bool:
        """Take ``delivery`` (as :meth:`due` returned it) for one attempt; False if it was resent since,
        or another process is sending it. A store only this process uses has nobody to share with."""
        return True

    async def finish_attempt(self, delivery: Delivery, attempt: Attempt) -> None:
        """Atomically record ``attempt`` and save ``delivery``'s new state, unless the delivery was
        resent while the attempt was in flight (then it stays pending, only its attempt count moves)."""
        await self.finish_attempts([(delivery, attempt)])

    @abc.abstractmethod
    async def finish_attempts(self, finished: Sequence[tuple[Delivery, Attempt]]) -> None:
        """:meth:`finish_attempt` for each pair, all in one write (a transaction, or one round trip)."""

    # Looking back
    @abc.abstractmethod
    async def delivery(self, delivery_id: str) -> Delivery | None: ...

    @abc.abstractmethod
    async def deliveries(self, *, endpoint_id: str | None = None, event_id: str | None = None,
                   status: str | None = None, before: int | None = None, limit: int = 100) -> list[Delivery]:
        """Newest first; ``before`` is the ``seq`` to page from."""

    @abc.abstractmethod
    async def attempts(self, *, endpoint_id: str | None = None, event_id: str | None = None,
                       delivery_id: str | None = None, succeeded: bool | None = None, before: int | None = None,
                       limit: int = 100) -> list[Attempt]:
        """Newest first; ``before`` is the attempt ``id`` to page from; ``succeeded`` keeps only the
        attempts answered 2xx (True) or the others (False)."""

    @abc.abstractmethod
    async def minutes(self, endpoint_id: str, since: float, until: float) -> list[Minute]:
        """The endpoint's counters of the minutes starting from ``since`` to ``until``, oldest first
        (minutes without attempts are left out)."""

    @abc.abstractmethod
    async def prune(self, before: float) -> int:
        """Drop attempts, finished deliveries and minute counters last touched before ``before``;
        return how many attempts and deliveries."""

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return next((e for e in await self.endpoints() if e.id == endpoint_id), None)


# The in-process twin ---------------------------------------------------------------------------

T = TypeVar("T")


def _newest(items: Iterable[T], keep: Callable[[T], bool], order: Callable[[T], int], before: int | None,
            limit: int) -> list[T]:
    chosen = [i for i in items if keep(i) and (before is None or order(i) < before)]
    chosen.sort(key=order, reverse=True)
    return chosen[:limit]


class MemoryDeliveryStore(DeliveryStore):
    def __init__(self) -> None:
        self._endpoints: dict[str, Endpoint] = {}
        self._cursors: dict[str, Position] = {}
        self._deliveries: dict[str, Delivery] = {}
        self._by_key: dict[tuple[str, str, str, int], str] = {}
        self._attempts: list[Attempt] = []
        self._minutes: dict[tuple[str, int], Minute] = {}
        self._seq = 0

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        self._endpoints[endpoint.id] = endpoint

    async def endpoints(self) -> list[Endpoint]:
        return sorted(self._endpoints.values(), key=lambda e: e.created_at)

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return self._endpoints.get(endpoint_id)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        if self._endpoints.pop(endpoint_id, None) is None:
            return False
        for delivery in [d for d in self._deliveries.values() if d.endpoint_id == endpoint_id]:
            del self._deliveries[delivery.id]
            del self._by_key[delivery.key]
        self._attempts = [a for a in self._attempts if a.endpoint_id != endpoint_id]
        self._minutes = {key: minute for key, minute in self._minutes.items() if key[0] != endpoint_id}
        return True

    async def cursors(self) -> dict[str, Position]:
        return dict(self._cursors)

    async def track(self, channel: str, position: Position) -> None:
        self._cursors.setdefault(channel, position)

    def _add(self, delivery: Delivery) -> Delivery | None:
        existing = self._by_key.get(delivery.key)
        if existing is not None:
            return self._deliveries[existing]
        self._seq += 1
        stored = dataclasses.replace(delivery, seq=self._seq)
        self._deliveries[stored.id] = stored
        self._by_key[stored.key] = stored.id
        return None

    async def enqueue(self, channel: str, position: Position, deliveries: Sequence[Delivery], *,
                      after: Position | None = None, version: int | None = None) -> bool:
        if after is not None and self._cursors.get(channel) != after:
            return False
        for delivery in deliveries:
            self._add(delivery)
        self._cursors[channel] = position
        return True

    async def resend(self, deliveries: Sequence[Delivery], now: float) -> int:
        for delivery in deliveries:
            existing = self._add(delivery)
            if existing is not None:
                existing.status, existing.tries, existing.next_at, existing.updated_at = PENDING, 0, now, now
                existing.version += 1
        return len(deliveries)

    def _pending(self, endpoint_id: str) -> list[Delivery]:
        return [d for d in self._deliveries.values() if d.endpoint_id == endpoint_id and d.status == PENDING]

    async def due(self, endpoint_id: str, now: float, limit: int, *, ordered: bool = False) -> list[Delivery]:
        pending = self._pending(endpoint_id)
        if ordered:
            return [dataclasses.replace(min(pending, key=lambda d: d.seq))] if pending else []
        ready = sorted((d for d in pending if d.next_at <= now), key=lambda d: (d.next_at, d.seq))
        return [dataclasses.replace(d) for d in ready[:limit]]

    async def next_due(self, endpoint_id: str) -> float | None:
        return min((d.next_at for d in self._pending(endpoint_id)), default=None)

    async def finish_attempts(self, finished: Sequence[tuple[Delivery, Attempt]]) -> None:
        recorded = []
        for delivery, attempt in finished:
            current = self._deliveries.get(delivery.id)
            if current is None:
                continue
            if current.version == delivery.version:
                self._deliveries[delivery.id] = dataclasses.replace(delivery)
            else:
                current.attempts, current.last_status, current.last_error = (
                    delivery.attempts, delivery.last_status, delivery.last_error)
            self._attempts.append(dataclasses.replace(attempt, id=len(self._attempts) + 1))
            recorded.append(attempt)
        for key, added in tally(recorded).items():
            found = self._minutes.setdefault(key, Minute(key[1]))
            found.succeeded += added.succeeded
            found.failed += added.failed
            found.latency_ms += added.latency_ms

    async def minutes(self, endpoint_id: str, since: float, until: float) -> list[Minute]:
        return sorted((dataclasses.replace(m) for (e, start), m in self._minutes.items()
                       if e == endpoint_id and since <= start <= until), key=lambda m: m.minute)

    async def delivery(self, delivery_id: str) -> Delivery | None:
        found = self._deliveries.get(delivery_id)
        return dataclasses.replace(found) if found else None

    async def deliveries(self, *, endpoint_id: str | None = None, event_id: str | None = None,
                   status: str | None = None, before: int | None = None, limit: int = 100) -> list[Delivery]:
        def keep(d: Delivery) -> bool:
            return ((endpoint_id is None or d.endpoint_id == endpoint_id)
                    and (event_id is None or d.event_id == event_id) and (status is None or d.status == status))
        return [dataclasses.replace(d) for d in
                _newest(self._deliveries.values(), keep, lambda d: d.seq, before, limit)]

    async def attempts(self, *, endpoint_id: str | None = None, event_id: str | None = None,
                       delivery_id: str | None = None, succeeded: bool | None = None, before: int | None = None,
                       limit: int = 100) -> list[Attempt]:
        def keep(a: Attempt) -> bool:
            return ((endpoint_id is None or a.endpoint_id == endpoint_id)
                    and (event_id is None or a.event_id == event_id)
                    and (delivery_id is None or a.delivery_id == delivery_id) and outcome_matches(a, succeeded))
        return _newest(self._attempts, keep, lambda a: a.id, before, limit)

    async def prune(self, before: float) -> int:
        count = len(self._attempts)
        self._attempts = [a for a in self._attempts if a.at >= before]
        self._minutes = {key: minute for key, minute in self._minutes.items() if key[1] >= before - MINUTE}
        dropped = count - len(self._attempts)
        for delivery in [d for d in self._deliveries.values() if d.status != PENDING and d.updated_at < before]:
            del self._deliveries[delivery.id]
            del self._by_key[delivery.key]
            dropped += 1
        return dropped


# SQLite ----------------------------------------------------------------------------------------

_DELIVERY_COLUMNS = ("seq, id, endpoint_id, channel, epoch, offset, event_id, event_type, payload, status, "
                     "attempts, tries, next_at, created_at, updated_at, last_status, last_error, version")
_DELIVERY_FIELDS = ", ".join(f.name for f in dataclasses.fields(Delivery))  # in the order Delivery takes them
_ATTEMPT_COLUMNS = ("id, delivery_id, endpoint_id, event_id, number, at, latency_ms, status, response, error, "
                    "request_headers")


def _endpoint_record(endpoint: Endpoint) -> bytes:
    body = endpoint.as_dict()
    body["retry_schedule"] = None if endpoint.retry_schedule is None else list(endpoint.retry_schedule)
    body["old_secrets"] = [[old.secret, old.expires_at] for old in endpoint.old_secrets]
    del body["old_secrets_expire_at"]
    return orjson.dumps(body)


def _endpoint_from_record(record: bytes) -> Endpoint:
    body = orjson.loads(record)
    schedule = body.pop("retry_schedule")
    return Endpoint(**{
        **body,
        "channels": tuple(body["channels"]), "types": tuple(body["types"]),
        "headers": tuple(body["headers"].items()),
        "retry_schedule": None if schedule is None else tuple(schedule),
        "old_secrets": tuple(OldSecret(secret, expires) for secret, expires in body["old_secrets"]),
    })


# The condition of the partial due index (schema version 6), literally: SQLite uses a partial index only
# for a query whose WHERE names its condition, which a bound parameter does not.
_IS_PENDING = f"status = '{PENDING}'"
_SAVE_DELIVERY = ("UPDATE webhook_deliveries SET status = ?, attempts = ?, tries = ?, next_at = ?, updated_at = ?, "
                  "last_status = ?, last_error = ? WHERE id = ? AND version = ?")  # unless resent since


def _saved(d: Delivery) -> tuple[Any, ...]:
    return (d.status, d.attempts, d.tries, d.next_at, d.updated_at, d.last_status, d.last_error, d.id, d.version)


_INSERT_ATTEMPT = f"INSERT INTO webhook_attempts ({_ATTEMPT_COLUMNS}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


def _recorded(a: Attempt) -> tuple[Any, ...]:
    return (a.delivery_id, a.endpoint_id, a.event_id, a.number, a.at, a.latency_ms, a.status, a.response, a.error,
            None if a.request_headers is None else orjson.dumps(a.request_headers))


_ADD_MINUTE = ("INSERT INTO webhook_minutes (endpoint_id, minute, succeeded, failed, latency_ms) "
               "VALUES (?, ?, ?, ?, ?) ON CONFLICT (endpoint_id, minute) DO UPDATE SET "
               "succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed, "
               "latency_ms = latency_ms + excluded.latency_ms")


def _filters(pairs: Sequence[tuple[str, Any]], page: tuple[str, int | None]) -> tuple[str, list[Any]]:
    """The WHERE clause of the ``(condition, value)`` pairs whose value is given, and the page."""
    clauses = [condition for condition, value in pairs if value is not None]
    params = [value for _, value in pairs if value is not None]
    if page[1] is not None:
        clauses.append(f"{page[0]} < ?")
        params.append(page[1])
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class SqliteDeliveryStore(DeliveryStore):
    """The webhook state in the hub's one SQLite :class:`~pushhub.backends.sqlite.Database`, beside
    the log (the tables are in :mod:`pushhub.backends.sqlite_schema`)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._take_in: TakeIn | None = None
        self._take_records: TakeRecords | None = None
        database.joined.append(self._joined)

    @property
    def db(self) -> sqlite3.Connection:
        return self.database.db

    def join_appends(self, take_in: TakeIn | None) -> bool:
        self._take_in = take_in
        return True

    def join_records(self, take: TakeRecords | None) -> bool:
        if self.database.fsync:  # an append's joined writes hear of their commit only after a later fsync
            return False
        self._take_records = take
        return True

    def _joined(self, db: sqlite3.Connection, appended: Appended) -> Callable[[], None] | None:
        after: list[Callable[[], None]] = []  # once committed
        taken = self._take_in(appended) if self._take_in is not None and appended else None
        if taken is not None:
            moves, committed = taken
            fresh = all([self._move(db, channel, position, deliveries) for channel, position, deliveries in moves])
            # With fsync the intake hears of the commit after a later fsync, when a worker may have
            # read these deliveries from the store already: then none is handed over as fresh.
            fresh = fresh and not self.database.fsync
            after.append(lambda: committed(fresh))
        records = self._take_records() if self._take_records is not None else None
        if records is not None:
            self._finish(db, records[0])
            after.append(records[1])
        if not after:
            return None

        def done() -> None:
            for call in after:
                call()
        return done

    def _write(self, statements: Callable[[sqlite3.Connection], object]) -> None:
        self.database.transaction(statements, "write webhook state")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self.db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise Unavailable(f"could not read webhook state: {exc}") from exc

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        self._write(lambda db: db.execute(
            "INSERT INTO webhook_endpoints (id, created_at, body) VALUES (?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET body = excluded.body",
            (endpoint.id, endpoint.created_at, _endpoint_record(endpoint))))

    async def endpoints(self) -> list[Endpoint]:
        return [_endpoint_from_record(body) for (body,) in
                self._read("SELECT body FROM webhook_endpoints ORDER BY created_at, id")]

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        rows = self._read("SELECT body FROM webhook_endpoints WHERE id = ?", (endpoint_id,))
        return _endpoint_from_record(rows[0][0]) if rows else None

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        deleted = []

        def statements(db: sqlite3.Connection) -> None:
            deleted.append(db.execute("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,)).rowcount)
            db.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?", (endpoint_id,))
            db.execute("DELETE FROM webhook_attempts WHERE endpoint_id = ?", (endpoint_id,))
            db.execute("DELETE FROM webhook_minutes WHERE endpoint_id = ?", (endpoint_id,))
        self._write(statements)
        return deleted[0] > 0

    async def cursors(self) -> dict[str, Position]:
        return {channel: Position(epoch, offset) for channel, epoch, offset in
                self._read("SELECT channel, epoch, offset FROM webhook_cursors")}

    async def track(self, channel: str, position: Position) -> None:
        self._write(lambda db: db.execute(
            "INSERT OR IGNORE INTO webhook_cursors (channel, epoch, offset) VALUES (?, ?, ?)",
            (channel, position.epoch, position.offset)))

    @staticmethod
    def _insert(db: sqlite3.Connection, deliveries: Sequence[Delivery]) -> bool:
        """Add those of ``deliveries`` that are not there yet; True if that was all of them."""
        return db.executemany(
            f"INSERT OR IGNORE INTO webhook_deliveries ({_DELIVERY_COLUMNS}) "
            "VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            [(d.id, d.endpoint_id, d.channel, d.epoch, d.offset, d.event_id, d.event_type, d.payload, d.status,
              d.attempts, d.tries, d.next_at, d.created_at, d.updated_at or d.created_at, d.last_status,
              d.last_error) for d in deliveries]).rowcount == len(deliveries)

    async def enqueue(self, channel: str, position: Position, deliveries: Sequence[Delivery], *,
                      after: Position | None = None, version: int | None = None) -> bool:
        moved = []

        def statements(db: sqlite3.Connection) -> None:
            if after is not None:
                row = db.execute("SELECT epoch, offset FROM webhook_cursors WHERE channel = ?", (channel,)).fetchone()
                if row is None or Position(*row) != after:
                    return
            moved.append(True)
            self._move(db, channel, position, deliveries)
        self._write(statements)
        return bool(moved)

    def _move(self, db: sqlite3.Connection, channel: str, position: Position, deliveries: Sequence[Delivery]) -> bool:
        """Add ``deliveries`` and move ``channel``'s cursor; True if every delivery was new."""
        fresh = self._insert(db, deliveries)
        db.execute("INSERT INTO webhook_cursors (channel, epoch, offset) VALUES (?, ?, ?) "
                   "ON CONFLICT (channel) DO UPDATE SET epoch = excluded.epoch, offset = excluded.offset",
                   (channel, position.epoch, position.offset))
        return fresh

    async def resend(self, deliveries: Sequence[Delivery], now: float) -> int:
        def statements(db: sqlite3.Connection) -> None:
            self._insert(db, deliveries)
            db.executemany(
                "UPDATE webhook_deliveries SET status = ?, tries = 0, next_at = ?, updated_at = ?, "
                "version = version + 1 WHERE endpoint_id = ? AND channel = ? AND epoch = ? AND offset = ?",
                [(PENDING, now, now, *d.key) for d in deliveries])
        self._write(statements)
        return len(deliveries)

    async def due(self, endpoint_id: str, now: float, limit: int, *, ordered: bool = False) -> list[Delivery]:
        if ordered:
            sql = (f"SELECT {_DELIVERY_FIELDS} FROM webhook_deliveries WHERE endpoint_id = ? AND {_IS_PENDING} "
                   "ORDER BY seq LIMIT 1")
            return [Delivery(*r) for r in self._read(sql, (endpoint_id,))]
        sql = (f"SELECT {_DELIVERY_FIELDS} FROM webhook_deliveries WHERE endpoint_id = ? AND {_IS_PENDING} "
               "AND next_at <= ? ORDER BY next_at, seq LIMIT ?")
        return [Delivery(*r) for r in self._read(sql, (endpoint_id, now, limit))]

    async def next_due(self, endpoint_id: str) -> float | None:
        rows = self._read(f"SELECT MIN(next_at) FROM webhook_deliveries WHERE endpoint_id = ? AND {_IS_PENDING}",
                          (endpoint_id,))
        return rows[0][0] if rows else None

    async def finish_attempts(self, finished: Finished) -> None:
        self._write(lambda db: self._finish(db, finished))

    @staticmethod
    def _finish(db: sqlite3.Connection, finished: Finished) -> None:
        saved = db.executemany(_SAVE_DELIVERY, [_saved(d) for d, _ in finished]).rowcount
        if saved == len(finished):  # the usual case: no delivery was resent or deleted meanwhile
            kept = [a for _, a in finished]
        else:  # each of the others by itself: a resent one keeps its new state, a deleted one is skipped
            kept = [a for d, a in finished if db.execute(_SAVE_DELIVERY, _saved(d)).rowcount or db.execute(
                "UPDATE webhook_deliveries SET attempts = ?, last_status = ?, last_error = ? WHERE id = ?",
                (d.attempts, d.last_status, d.last_error, d.id)).rowcount]
        db.executemany(_INSERT_ATTEMPT, [_recorded(a) for a in kept])
        db.executemany(_ADD_MINUTE, [(endpoint_id, m.minute, m.succeeded, m.failed, m.latency_ms)
                                     for (endpoint_id, _), m in tally(kept).items()])

    async def minutes(self, endpoint_id: str, since: float, until: float) -> list[Minute]:
        rows = self._read("SELECT minute, succeeded, failed, latency_ms FROM webhook_minutes "
                          "WHERE endpoint_id = ? AND minute BETWEEN ? AND ? ORDER BY minute",
                          (endpoint_id, since, until))
        return [Minute(*row) for row in rows]

    async def delivery(self, delivery_id: str) -> Delivery | None:
        rows = self._read(f"SELECT {_DELIVERY_FIELDS} FROM webhook_deliveries WHERE id = ?", (delivery_id,))
        return Delivery(*rows[0]) if rows else None

    async def deliveries(self, *, endpoint_id: str | None = None, event_id: str | None = None,
                   status: str | None = None, before: int | None = None, limit: int = 100) -> list[Delivery]:
        where, params = _filters([("endpoint_id = ?", endpoint_id), ("event_id = ?", event_id),
                                  ("status = ?", status)], ("seq", before))
        rows = self._read(f"SELECT {_DELIVERY_FIELDS} FROM webhook_deliveries{where} ORDER BY seq DESC LIMIT ?",
                          (*params, limit))
        return [Delivery(*r) for r in rows]

    async def attempts(self, *, endpoint_id: str | None = None, event_id: str | None = None,
                       delivery_id: str | None = None, succeeded: bool | None = None, before: int | None = None,
                       limit: int = 100) -> list[Attempt]:
        # By event through the deliveries' index: an attempt's delivery is kept as long as the attempt.
        where, params = _filters([("endpoint_id = ?", endpoint_id), ("delivery_id = ?", delivery_id),
                                  ("delivery_id IN (SELECT id FROM webhook_deliveries WHERE event_id = ?)", event_id),
                                  ("coalesce(status BETWEEN 200 AND 299, 0) = ?",
                                   None if succeeded is None else int(succeeded))],
                                 ("id", before))
        rows = self._read(f"SELECT {_ATTEMPT_COLUMNS} FROM webhook_attempts{where} ORDER BY id DESC LIMIT ?",
                          (*params, limit))
        return [Attempt(delivery_id=r[1], endpoint_id=r[2], event_id=r[3], number=r[4], at=r[5], latency_ms=r[6],
                        status=r[7], response=r[8], error=r[9], id=r[0],
                        request_headers=None if r[10] is None else orjson.loads(r[10])) for r in rows]

    async def prune(self, before: float) -> int:
        counts = []

        def statements(db: sqlite3.Connection) -> None:
            counts.append(db.execute("DELETE FROM webhook_attempts WHERE at < ?", (before,)).rowcount)
            db.execute("DELETE FROM webhook_minutes WHERE minute < ?", (before - MINUTE,))
            counts.append(db.execute("DELETE FROM webhook_deliveries WHERE status != ? AND updated_at < ?",
                                     (PENDING, before)).rowcount)
        self._write(statements)
        return sum(counts)


__all__ = ["FAILED", "MINUTE", "PENDING", "STATUSES", "SUCCEEDED", "Attempt", "Delivery", "DeliveryStore",
           "MemoryDeliveryStore", "Minute", "SqliteDeliveryStore", "new_delivery_id", "tally"]
