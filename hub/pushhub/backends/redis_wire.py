"""What the Redis scripts return and publish, read back into events (pure).

A live message is ``{epoch}\\n{first offset}\\n{event}\\n{event}…``: each event is its stored JSON,
which never contains a raw newline. A stream entry is ``[b"{offset}-0", [b"b", body, b"t", ms, …]]``,
with the event index's fields after those two (``i`` id, ``y`` type, ``o`` origin key, ``d`` delivery
id) on entries appended since the index exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..events import Event
from ..provenance import Origin
from .base import Found, HistoryPage, StreamState


def decode_live(channel: str, payload: bytes) -> list[Event]:
    epoch, first, *bodies = payload.split(b"\n")
    start = int(first)
    text = epoch.decode()
    return [Event.from_stored(channel, text, start + index, body) for index, body in enumerate(bodies)]


def entry_offset(entry_id: bytes) -> int:
    return int(entry_id.partition(b"-")[0])


def decode_page(channel: str, reply: Sequence[Any]) -> HistoryPage:
    """The read script's reply ``[epoch, top, earliest, entries]`` as a page."""
    epoch = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    state = StreamState(epoch, int(reply[1]), int(reply[2]))
    events = [Event.from_stored(channel, epoch, entry_offset(entry_id), fields[1])
              for entry_id, fields in reply[3]]
    return HistoryPage(events, state)


def decode_found(channel: str, reply: Sequence[Any]) -> list[Found]:
    """The find script's reply ``[epoch, [[entry, repeats]...]]`` as index hits."""
    epoch = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    found = []
    for (entry_id, fields), repeats in reply[1]:
        named = dict(zip(fields[::2], fields[1::2], strict=True))
        key = named.get(b"o")
        origin = Origin.from_key(key.decode(), named.get(b"d", b"").decode() or None) if key else None
        found.append(Found(Event.from_stored(channel, epoch, entry_offset(entry_id), named[b"b"]), origin,
                           int(repeats)))
    return found
