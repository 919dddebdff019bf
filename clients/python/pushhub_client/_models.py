"""What the hub sends, as small typed values, and how to read them from its JSON (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One event at its position in a channel's log.

    ``cursor`` is where to resume to receive what comes after this event: on SSE the cursor of the
    whole subscription, on WebSocket and in history the cursor of :attr:`channel`.
    """

    id: str
    channel: str
    type: str
    time: str
    data: Any
    meta: dict[str, Any]
    epoch: str
    offset: int
    cursor: str

    @classmethod
    def from_json(cls, body: dict[str, Any], cursor: str) -> Event:
        return cls(id=body["id"], channel=body["channel"], type=body["type"], time=body["time"],
                   data=body.get("data"), meta=body.get("meta") or {}, epoch=body["epoch"],
                   offset=body["offset"], cursor=cursor)


@dataclass(frozen=True, slots=True)
class Reset:
    """The resume on ``channel`` could not be exact (``reason``: ``history_trimmed``,
    ``epoch_changed`` or ``bad_cursor``): events may have been skipped. Delivery continues from
    ``cursor``; refetch state from your source of truth if you need it complete."""

    channel: str
    reason: str
    cursor: str


@dataclass(frozen=True, slots=True)
class Published:
    """Where a published event landed."""

    id: str
    channel: str
    epoch: str
    offset: int
    cursor: str

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Published:
        return cls(id=body["id"], channel=body["channel"], epoch=body["epoch"], offset=body["offset"],
                   cursor=body["cursor"])


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One page of a channel's history: ``reset`` is set when it does not continue exactly from the
    cursor it was asked for; ``cursor`` reads the next page; ``more`` says whether there is one."""

    channel: str
    reset: str | None
    cursor: str
    more: bool
    events: list[Event] = field(default_factory=list)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> HistoryPage:
        events = [Event.from_json(e, f"{e['epoch']}.{e['offset']}") for e in body["events"]]
        return cls(channel=body["channel"], reset=body["reset"], cursor=body["cursor"], more=body["more"],
                   events=events)


@dataclass(frozen=True, slots=True)
class Advice:
    """Why the hub ended a stream. Codes 4000-4499 mean reconnect and resume; 4500 and above mean
    do not reconnect without changing something."""

    code: int
    reason: str

    @property
    def reconnect(self) -> bool:
        return should_reconnect(self.code)


def should_reconnect(code: int) -> bool:
    """Whether a WebSocket close code (or an SSE ``disconnect`` code) invites a reconnect.

    pushhub's own codes decide for themselves; of the standard ones, only a policy violation (1008),
    unsupported data (1003) and a too-large message (1009) are not worth retrying unchanged.
    """
    if 4000 <= code < 5000:
        return code < 4500
    return code not in (1003, 1008, 1009)
