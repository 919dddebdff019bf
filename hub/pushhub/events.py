"""Events: validation of what publishers send, and the one serialisation per wire format (pure)."""

from __future__ import annotations

import binascii
import itertools
import os
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import msgpack
import orjson

from .channels import validate_type
from .cursor import Position
from .errors import BadEvent, BadRequest

ID_MAX_LENGTH = 128


# base64's alphabet (as binascii writes it), and the same 64 characters of base64url in ASCII order
_SORTABLE = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                            b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
EVENT_FIELDS = frozenset({"id", "type", "time", "data", "meta"})


def _sortable(raw: bytes) -> str:
    """``raw`` (a multiple of 3 bytes) in base64url's characters, ordered as ``raw`` is."""
    return binascii.b2a_base64(raw, newline=False).translate(_SORTABLE).decode()


class _EventIds:
    """``evt_``, the time in milliseconds (8 characters that sort as the time does), then 56 random
    bits drawn once per process (again in a forked child) and a counter of 40 bits.

    Ids made one after the other sort together, so the event index (an index on ids) grows at one
    end instead of everywhere at once: measured, that halves what the index adds to an append. The
    random part keeps ids of different processes apart; they are not secrets (whoever sees an id can
    read its event), so that ids of one process follow one another does no harm, and making one
    reads nothing from the OS random device. The time's 6 bytes and the other 12 are encoded apart
    (each a whole number of base64 groups), the time's once per millisecond."""

    def __init__(self) -> None:
        self.millisecond = -1
        self.prefix = ""
        self.draw()
        os.register_at_fork(after_in_child=self.draw)

    def draw(self) -> None:
        self.process = secrets.token_bytes(7)
        self.counter = itertools.count()

    def next(self, now: float | None = None) -> str:
        ms = int((time.time() if now is None else now) * 1000)
        if ms != self.millisecond:
            self.prefix, self.millisecond = "evt_" + _sortable(ms.to_bytes(6, "big")), ms
        return self.prefix + _sortable(self.process + (next(self.counter) & 0xFF_FFFF_FFFF).to_bytes(5, "big"))


new_event_id = _EventIds().next


def format_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Clock:
    """The time of an event that did not say when it happened: now, to the millisecond, formatted
    once per millisecond however many events share it."""

    def __init__(self) -> None:
        self.millisecond = -1
        self.formatted = ""

    def now(self, seconds: float | None = None) -> str:
        millisecond = int((time.time() if seconds is None else seconds) * 1000)
        if millisecond != self.millisecond:
            self.formatted, self.millisecond = format_time(millisecond / 1000), millisecond
        return self.formatted


event_time = _Clock().now


def parse_time(value: str) -> str:
    """Accept an RFC 3339 timestamp and return it normalised to UTC with millisecond precision."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError) as exc:
        raise BadEvent(f"invalid time {value!r}: use RFC 3339, e.g. 2026-01-31T12:00:00Z") from exc
    if parsed.tzinfo is None:
        raise BadEvent(f"invalid time {value!r}: a UTC offset is required")
    try:
        return format_time(parsed.timestamp())
    except (ValueError, OverflowError) as exc:  # e.g. 9999-12-31T23:59:59-23:59 is in the year 10000 in UTC
        raise BadEvent(f"invalid time {value!r}: it falls outside the years 1-9999 in UTC") from exc


class EventDraft:
    """A validated event that has not been appended to a log yet."""

    __slots__ = ("data", "id", "meta", "time", "type")

    def __init__(self, id: str, type: str, time: str, data: Any, meta: dict[str, Any]) -> None:
        self.id = id
        self.type = type
        self.time = time
        self.data = data
        self.meta = meta

    @classmethod
    def from_json(cls, body: Any, *, now: float | None = None) -> EventDraft:
        """Validate one event as a publisher sends it (``type`` required; ``data``, ``time``,
        ``meta``, ``id`` optional)."""
        if not isinstance(body, dict):
            raise BadEvent("an event must be a JSON object")
        if not EVENT_FIELDS.issuperset(body):
            raise BadEvent(f"unknown event field(s): {', '.join(sorted(body.keys() - EVENT_FIELDS))}")
        if "type" not in body:
            raise BadEvent("an event needs a 'type', e.g. 'payment.created'")
        try:
            type_ = validate_type(body["type"])
        except BadRequest as exc:
            raise BadEvent(exc.message) from exc
        event_id = body.get("id")
        raw_time = body.get("time")
        if now is None and (event_id is None or raw_time is None):
            now = time.time()
        if event_id is None:
            event_id = new_event_id(now)
        elif not isinstance(event_id, str) or not 0 < len(event_id) <= ID_MAX_LENGTH:
            raise BadEvent(f"'id' must be a string of 1-{ID_MAX_LENGTH} characters")
        if raw_time is None:
            when = event_time(now)
        elif isinstance(raw_time, str):
            when = parse_time(raw_time)
        else:
            raise BadEvent("'time' must be an RFC 3339 string")
        meta = body.get("meta", {})
        if not isinstance(meta, dict):
            raise BadEvent("'meta' must be a JSON object")
        return cls(event_id, type_, when, body.get("data"), meta)

    def stored(self) -> bytes:
        """The bytes a log stores for this event; :meth:`Event.from_stored` reads them back."""
        return orjson.dumps({"id": self.id, "type": self.type, "time": self.time, "data": self.data,
                             "meta": self.meta})


class Event:
    """An event at its position in a channel's log.

    Its wire forms (JSON and msgpack) are computed once, on first use, and shared by every
    connection that receives it.
    """

    __slots__ = ("_json", "_msgpack", "channel", "data", "epoch", "id", "meta", "offset", "time", "type")

    def __init__(self, channel: str, epoch: str, offset: int, draft: EventDraft) -> None:
        self.channel = channel
        self.epoch = epoch
        self.offset = offset
        self.id = draft.id
        self.type = draft.type
        self.time = draft.time
        self.data = draft.data
        self.meta = draft.meta
        self._json: bytes | None = None
        self._msgpack: bytes | None = None

    @classmethod
    def from_stored(cls, channel: str, epoch: str, offset: int, stored: bytes) -> Event:
        body = orjson.loads(stored)
        return cls(channel, epoch, offset, EventDraft(body["id"], body["type"], body["time"],
                                                      body["data"], body["meta"]))

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.offset)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "channel": self.channel, "type": self.type, "time": self.time,
                "data": self.data, "meta": self.meta, "epoch": self.epoch, "offset": self.offset}

    @property
    def json(self) -> bytes:
        if self._json is None:
            self._json = orjson.dumps(self.as_dict())
        return self._json

    @property
    def msgpack(self) -> bytes:
        if self._msgpack is None:
            self._msgpack = msgpack.packb(self.as_dict())
        return self._msgpack

    def __repr__(self) -> str:
        return f"<Event {self.channel}@{self.epoch}.{self.offset} {self.type}>"


def parse_publish_body(body: bytes) -> tuple[list[EventDraft], bool]:
    """Parse a publish request: one event object, or ``{"events": [...]}`` for a batch (then the
    second value is true)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if isinstance(parsed, dict) and "events" in parsed and "type" not in parsed:
        items = parsed["events"]
        if not isinstance(items, list) or not items:
            raise BadEvent("'events' must be a non-empty list of events")
        if len(parsed) != 1:
            raise BadEvent("a batch body has only the 'events' field")
        drafts = []
        now = time.time()
        for index, item in enumerate(items):
            try:
                drafts.append(EventDraft.from_json(item, now=now))
            except BadEvent as exc:
                raise BadEvent(f"events[{index}]: {exc.message}") from exc
        return drafts, True
    return [EventDraft.from_json(parsed)], False
