"""The schema of the hub's SQLite file, version by version, and the upgrade from each to the next.

The version is the file's ``PRAGMA user_version``. Opening a file (:func:`migrate`):

- a new file gets every step;
- an older one is first copied (``pushhub.db.v<N>.bak``, with SQLite's backup API, so the copy is
  consistent), then brought forward in one transaction: a failure leaves the file as it was;
- a newer one, written by a later release, is refused with :class:`~pushhub.errors.DataVersionError`.

Version 0 is the layout of release c5059d1 and before (no ``user_version``): the logs and the
webhook state in ``pushhub.db``, ingest and ``Idempotency-Key`` records in ``dedupe.db`` beside it.
Version 2 adds the idempotency records to ``pushhub.db`` (table ``once``) and imports those of
``dedupe.db``, which is no longer read (it stays, untouched, as the copy of its data). Version 3
drops the index of webhook attempts by event id. Version 4 adds what the dashboard reads: the event
index (each event's id, type, origin and repeat count, in columns of ``events`` so that it is
written by the append's own INSERT and trimmed by the log's own DELETE, with an index on the id;
origins interned in ``origins``; the channels each type was published to in ``event_types``, where
a search by type starts), the request headers of each webhook attempt, and per-endpoint minute
counters (``webhook_minutes``). Version 5 stops writing a channel's row on every append: its top
is the offset of its newest event, or ``channels.recorded_top`` (the top recorded when the channel
was made, and by expiry before it deletes events) when that is larger. Version 6 indexes only the
pending deliveries by when they are due: a delivery leaves that index when it succeeds or fails for
good, instead of moving within it.

A change to a table is a new step appended to :data:`STEPS`; a step is never edited once released.
"""

from __future__ import annotations

import logging
import os
import sqlite3

from .. import idempotency
from ..errors import DataVersionError, Unavailable

logger = logging.getLogger("pushhub.sqlite")

# Version 1: the tables of release c5059d1, created where missing.
_LOG_AND_WEBHOOKS = """
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
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_cursors (
    channel TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    offset INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    endpoint_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    epoch TEXT NOT NULL,
    offset INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload BLOB NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    tries INTEGER NOT NULL,
    next_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    version INTEGER NOT NULL DEFAULT 0,
    UNIQUE (endpoint_id, channel, epoch, offset)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (endpoint_id, status, next_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE TABLE IF NOT EXISTS webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    at REAL NOT NULL,
    latency_ms REAL NOT NULL,
    status INTEGER,
    response TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX IF NOT EXISTS webhook_attempts_event ON webhook_attempts (event_id, id);
CREATE INDEX IF NOT EXISTS webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
CREATE INDEX IF NOT EXISTS webhook_attempts_at ON webhook_attempts (at);
"""

# Version 2: idempotency records beside the log, so that a record commits with its append.
_ONCE = """
CREATE TABLE once (
    channel TEXT NOT NULL,
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    expires REAL NOT NULL,
    value BLOB NOT NULL,
    epoch TEXT NOT NULL,
    first INTEGER NOT NULL,
    PRIMARY KEY (channel, scope, key)
) WITHOUT ROWID;
CREATE INDEX once_expires ON once (expires);
"""

# Version 3: attempts are no longer indexed by event id (the deliveries are, and each attempt's
# delivery is kept as long as the attempt): one index fewer to write per attempt, and a random one.
_LEANER_ATTEMPTS = """
DROP INDEX IF EXISTS webhook_attempts_event;
"""

# Version 4: the event index, attempts' request headers, per-endpoint minute counters.
_DASHBOARD = """
ALTER TABLE events ADD COLUMN id TEXT;
ALTER TABLE events ADD COLUMN type TEXT;
ALTER TABLE events ADD COLUMN origin INTEGER;
ALTER TABLE events ADD COLUMN delivery TEXT;
ALTER TABLE events ADD COLUMN repeats INTEGER NOT NULL DEFAULT 0;
UPDATE events SET id = json_extract(CAST(body AS TEXT), '$.id'), type = json_extract(CAST(body AS TEXT), '$.type');
CREATE INDEX events_id ON events (id);
CREATE TABLE event_types (
    type TEXT NOT NULL,
    channel TEXT NOT NULL,
    PRIMARY KEY (type, channel)
) WITHOUT ROWID;
INSERT OR IGNORE INTO event_types (type, channel) SELECT DISTINCT type, channel FROM events WHERE type IS NOT NULL;
CREATE TABLE origins (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE
);
ALTER TABLE webhook_attempts ADD COLUMN request_headers TEXT;
CREATE TABLE webhook_minutes (
    endpoint_id TEXT NOT NULL,
    minute INTEGER NOT NULL,
    succeeded INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    PRIMARY KEY (endpoint_id, minute)
) WITHOUT ROWID;
"""

# Version 5: an append no longer writes its channel's row (one page fewer per commit): the top is
# the newest event's offset, or the one recorded when the channel was made or expiry emptied its log.
_TOP_FROM_THE_LOG = """
ALTER TABLE channels RENAME COLUMN top TO recorded_top;
"""

# Version 6: the due index holds the pending deliveries only (fewer pages per commit: a finished
# delivery is deleted from it, not moved to the region of its new status). The queries it serves
# name 'pending' literally, which is how SQLite knows they may use a partial index.
_PENDING_DUE = """
DROP INDEX webhook_deliveries_due;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_at) WHERE status = 'pending';
"""

# STEPS[n - 1] takes a file from version n - 1 to n
STEPS = (_LOG_AND_WEBHOOKS, _ONCE, _LEANER_ATTEMPTS, _DASHBOARD, _TOP_FROM_THE_LOG, _PENDING_DUE)
VERSION = len(STEPS)
LEGACY_DEDUPE = "dedupe.db"  # beside the log, in version 0


def version_of(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, path: str) -> None:
    """Bring the file open on ``db`` (at ``path``) to :data:`VERSION`, or refuse it."""
    try:
        found = version_of(db)
        populated = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone() is not None
    except sqlite3.Error as exc:
        raise Unavailable(f"cannot read {path}: {exc}") from exc
    if found > VERSION:
        raise DataVersionError(
            f"{path} has schema version {found}, newer than this pushhub understands ({VERSION}): it was written "
            "by a later release. Run that release, or restore the copy made before the upgrade "
            f"({path}.v{VERSION}.bak, if there is one)")
    if found == VERSION:
        return
    backup = f"{path}.v{found}.bak"
    if populated:
        _copy(db, backup)
    legacy = os.path.join(os.path.dirname(os.path.abspath(path)), LEGACY_DEDUPE) if found < 2 else None
    imported = _upgrade(db, path, found, legacy if legacy is not None and os.path.exists(legacy) else None)
    if populated:
        logger.warning("upgraded %s from schema version %d to %d%s; the file as it was is in %s", path, found,
                       VERSION, f", with {imported} records of {legacy}" if imported else "", backup)


def _copy(db: sqlite3.Connection, backup: str) -> None:
    try:
        target = sqlite3.connect(backup)
        try:
            db.backup(target)
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise Unavailable(f"cannot copy the database to {backup} before upgrading it: {exc}") from exc


def _upgrade(db: sqlite3.Connection, path: str, found: int, legacy: str | None) -> int:
    """Run the steps after version ``found`` and import ``legacy``'s records, in one transaction."""
    imported = 0
    try:
        if legacy is not None:
            db.execute("ATTACH DATABASE ? AS legacy", (legacy,))
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                for step in STEPS[found:]:
                    for statement in step.split(";"):
                        if statement.strip():
                            db.execute(statement)
                if legacy is not None:
                    imported = _import_dedupe(db)
                db.execute(f"PRAGMA user_version = {VERSION}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            if legacy is not None:
                db.execute("DETACH DATABASE legacy")
    except sqlite3.Error as exc:
        raise Unavailable(f"could not upgrade {path} from schema version {found} to {VERSION} (the file is "
                          f"unchanged): {exc}") from exc
    return imported


def _import_dedupe(db: sqlite3.Connection) -> int:
    if db.execute("SELECT 1 FROM legacy.sqlite_master WHERE name = 'dedupe'").fetchone() is None:
        return 0
    rows = []
    for key, expires, value in db.execute("SELECT key, expires, value FROM legacy.dedupe").fetchall():
        try:
            converted = idempotency.from_legacy(key, bytes(value))
        except (ValueError, KeyError, TypeError, IndexError):
            logger.warning("not importing the malformed dedupe record %r", key)
            continue
        if converted is not None:
            channel, scope, name, recorded = converted
            rows.append((channel, scope, name, expires, recorded.value, recorded.epoch, recorded.first))
    db.executemany("INSERT OR IGNORE INTO once (channel, scope, key, expires, value, epoch, first) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)
