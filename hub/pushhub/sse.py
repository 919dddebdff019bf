"""Server-Sent Events framing (pure).

Frames follow the WHATWG EventSource parser: ``id``, ``event``, ``data`` and ``retry`` fields, one
per line, and a blank line that dispatches the event. A frame with only an ``id`` updates the
browser's ``lastEventId`` without firing an event, which is how a stream hands out its starting
cursor before any event arrives.
"""

from __future__ import annotations

import orjson

from .numbers import is_decimal

HEARTBEAT = b":\n\n"

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
    (b"connection", b"keep-alive"),
]


def frame(data: bytes, *, id: str | None = None, event: str | None = None) -> bytes:
    """One event. ``data`` must not contain a newline (compact JSON never does)."""
    parts = []
    if id is not None:
        parts.append(b"id: " + id.encode())
    if event is not None:
        parts.append(b"event: " + event.encode())
    parts.append(b"data: " + data)
    return b"\n".join(parts) + b"\n\n"


def event_frame(id: str, event_json: bytes) -> bytes:
    return b"id: %s\ndata: %s\n\n" % (id.encode(), event_json)


def control_frame(event: str, payload: dict[str, object], *, id: str | None = None) -> bytes:
    return frame(orjson.dumps(payload), id=id, event=event)


def preamble(retry_ms: int, id: str) -> bytes:
    """The first bytes of every stream: the reconnect delay and the starting cursor."""
    return b"retry: %d\nid: %s\n\n" % (retry_ms, id.encode())


def chunk(payload: bytes) -> bytes:
    """Wrap ``payload`` as one HTTP/1.1 chunk, so it can be written straight to the socket."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


LAST_CHUNK = b"0\r\n\r\n"


class Message:
    __slots__ = ("data", "event", "id")

    def __init__(self, event: str, data: str, id: str | None) -> None:
        self.event = event
        self.data = data
        self.id = id


class Parser:
    """An incremental EventSource parser, for clients: feed it text, get dispatched messages.

    It follows the WHATWG algorithm: ``id`` is remembered even when a frame has no data, comments
    and unknown fields are ignored, and the ``retry`` field updates :attr:`retry`.
    """

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.retry: int | None = None
        self._buffer = ""
        self._data: list[str] = []
        self._event = ""

    def feed(self, text: str) -> list[Message]:
        self._buffer += text
        messages = []
        *lines, self._buffer = self._buffer.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        for line in lines:
            if not line:
                if self._data:
                    messages.append(Message(self._event or "message", "\n".join(self._data), self.last_id))
                self._data, self._event = [], ""
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value
            elif name == "id" and "\0" not in value:
                self.last_id = value
            elif name == "retry" and is_decimal(value):
                self.retry = int(value)
        return messages
