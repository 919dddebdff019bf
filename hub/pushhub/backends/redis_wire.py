"""What the Redis scripts return and publish, read back into events (pure).

A live message is ``{epoch}\\n{first offset}\\n{event}\\n{event}…``: each event is its stored JSON,
which never contains a raw newline. A stream entry is ``[b"{offset}-0", [b"b", body, b"t", ms]]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..events import Event
from .base import HistoryPage, StreamState


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
