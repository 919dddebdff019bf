"""The WebSocket message protocol (pure): parsing client messages, encoding server messages and the
server frames that carry them (client frames are read by ``websockets``: :mod:`pushhub.websocket`).

Messages are JSON text frames, or msgpack binary frames when the client negotiated the
``pushhub.msgpack`` subprotocol. Client → server (``id`` is echoed in the reply)::

    {"op": "subscribe", "id": 1, "channel": "orders", "types": ["payment.*"], "cursor": "k3j9x2ab.41"}
    {"op": "unsubscribe", "id": 2, "channel": "orders"}
    {"op": "publish", "id": 3, "channel": "orders", "event": {"type": "payment.created", "data": {}}}
    {"op": "ping", "id": 4}

Server → client::

    {"op": "subscribed", "id": 1, "channel": "orders", "cursor": "k3j9x2ab.41"}
    {"op": "unsubscribed", "id": 2, "channel": "orders"}
    {"op": "published", "id": 3, "channel": "orders", "event_id": "evt_…", "epoch": "…", "offset": 42,
     "cursor": "k3j9x2ab.42"}
    {"op": "pong", "id": 4}
    {"op": "event", "channel": "orders", "cursor": "k3j9x2ab.42", "event": {…}}
    {"op": "reset", "channel": "orders", "reason": "history_trimmed", "cursor": "k3j9x2ab.57"}
    {"op": "error", "id": 3, "code": "bad_event", "message": "…"}
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import orjson

from .errors import BadRequest
from .events import Event

JSON = "pushhub.json"
MSGPACK = "pushhub.msgpack"
OPS = ("subscribe", "unsubscribe", "publish", "ping")


def ws_frame(payload: bytes, *, binary: bool) -> bytes:
    """An unmasked, unfragmented server frame: the same bytes for every connection."""
    first = 0x82 if binary else 0x81
    length = len(payload)
    if length < 126:
        return struct.pack("!BB", first, length) + payload
    if length < 65536:
        return struct.pack("!BBH", first, 126, length) + payload
    return struct.pack("!BBQ", first, 127, length) + payload


PING_FRAME = b"\x89\x00"


def decode(raw: str | bytes, *, binary: bool) -> dict[str, Any]:
    """Decode one client message into an object."""
    try:
        message = msgpack.unpackb(raw) if binary else orjson.loads(raw)
    except Exception as exc:
        raise BadRequest("message is not valid " + ("msgpack" if binary else "JSON")) from exc
    if not isinstance(message, dict):
        raise BadRequest("a message must be an object")
    return message


def require_json_values(message: dict[str, Any]) -> None:
    """A msgpack message must hold only what JSON can carry too (events are stored and served as
    JSON): no ``bin`` or extension values, no keys other than strings."""
    try:
        orjson.dumps(message)
    except TypeError as exc:
        raise BadRequest("a msgpack message may hold only JSON values (no bin, no ext, string keys)") from exc


def message_id(message: dict[str, Any]) -> int | str | None:
    """The ``id`` to echo in the reply; ``None`` if absent or unusable."""
    msg_id = message.get("id")
    if isinstance(msg_id, bool) or not isinstance(msg_id, int | str):
        return None
    return msg_id


def validate(message: dict[str, Any]) -> str:
    """Check the envelope of a decoded message and return its op."""
    if "id" in message and message_id(message) is None:
        raise BadRequest("'id' must be an integer or a string")
    op = message.get("op")
    if op not in OPS:
        raise BadRequest(f"unknown op {op!r}: expected one of {', '.join(OPS)}")
    return str(op)


class Encoder:
    """Encodes server messages for one subprotocol (unframed)."""

    __slots__ = ("binary",)

    def __init__(self, subprotocol: str) -> None:
        self.binary = subprotocol == MSGPACK

    def message(self, payload: dict[str, Any]) -> bytes:
        body: bytes = msgpack.packb(payload) if self.binary else orjson.dumps(payload)
        return body

    def event(self, event: Event, cursor: str) -> bytes:
        return event_msgpack(event, cursor) if self.binary else event_json(event, cursor)

    def subscribed(self, msg_id: int | str | None, channel: str, cursor: str) -> bytes:
        """The ``subscribed`` reply. Without an ``id`` (a subscription in the handshake's URL, one per
        connect) its JSON is formatted directly: channel names and cursors never need escaping."""
        if msg_id is None and not self.binary:
            return b'{"op":"subscribed","id":null,"channel":"%s","cursor":"%s"}' % (channel.encode(), cursor.encode())
        return self.message({"op": "subscribed", "id": msg_id, "channel": channel, "cursor": cursor})


ENCODERS = {JSON: Encoder(JSON), MSGPACK: Encoder(MSGPACK)}
"""One encoder per subprotocol, shared by its connections."""


def event_json(event: Event, cursor: str) -> bytes:
    return b'{"op":"event","channel":"%s","cursor":"%s","event":%s}' % (
        event.channel.encode(), cursor.encode(), event.json)


_EVENT_MSGPACK_HEAD: bytes = b"\x84" + b"".join(msgpack.packb(k) for k in ("op", "event", "channel"))


def event_msgpack(event: Event, cursor: str) -> bytes:
    # A msgpack map is its header followed by key/value pairs, so the event's own encoding is
    # spliced in as the value of "event" without re-encoding it.
    tail: bytes = msgpack.packb(event.channel) + msgpack.packb("cursor") + msgpack.packb(cursor)
    return _EVENT_MSGPACK_HEAD + tail + _EVENT_KEY + event.msgpack


_EVENT_KEY: bytes = msgpack.packb("event")
