"""The WebSocket message protocol (pure): parsing client messages, encoding server messages and the
raw frames that carry them.

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

try:
    from websockets.speedups import apply_mask
except ImportError:  # a websockets build without its C extension
    from websockets.utils import apply_mask

from .errors import BadRequest, PushHubError
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

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def pong_frame(payload: bytes) -> bytes:
    return struct.pack("!BB", 0x8A, len(payload)) + payload


def close_frame(code: int, reason: str) -> bytes:
    """A close frame; control frames carry at most 125 bytes, so the reason is cut to fit."""
    payload = struct.pack("!H", code) + reason.encode()[:123]
    return struct.pack("!BB", 0x88, len(payload)) + payload


def decode(raw: str | bytes, *, binary: bool) -> dict[str, Any]:
    """Decode one client message into an object."""
    try:
        message = msgpack.unpackb(raw) if binary else orjson.loads(raw)
    except Exception as exc:
        raise BadRequest("message is not valid " + ("msgpack" if binary else "JSON")) from exc
    if not isinstance(message, dict):
        raise BadRequest("a message must be an object")
    return message


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

    def __init__(self, subprotocol: str) -> None:
        self.binary = subprotocol == MSGPACK

    def message(self, payload: dict[str, Any]) -> bytes:
        body: bytes = msgpack.packb(payload) if self.binary else orjson.dumps(payload)
        return body

    def event(self, event: Event, cursor: str) -> bytes:
        return event_msgpack(event, cursor) if self.binary else event_json(event, cursor)


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


class FrameError(PushHubError):
    """A client broke the WebSocket framing rules; the connection is closed with ``close_code``."""

    status = 400
    code = "bad_frame"

    def __init__(self, close_code: int, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code


class FrameReader:
    """Reads the frames a client sends (RFC 6455, no extensions): feed it bytes as they arrive, get
    back complete messages and control frames, in order, as ``(opcode, payload)``.

    Fragmented messages are reassembled; the payload of a text message is not decoded here. Client
    frames must be masked, control frames short and final, and no message larger than
    ``max_size``; otherwise :class:`FrameError` names the close code.
    """

    __slots__ = ("_buffer", "_fragments", "_opcode", "max_size")

    def __init__(self, max_size: int = MAX_MESSAGE_BYTES) -> None:
        self.max_size = max_size
        self._buffer: bytearray | None = None  # an incomplete frame, grown in place
        self._fragments: list[bytes] | None = None
        self._opcode = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer: bytes | bytearray
        if self._buffer is None:
            buffer = data
        else:
            buffer = self._buffer
            buffer += data
        out: list[tuple[int, bytes]] = []
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            if first & 0x70:
                raise FrameError(1002, "reserved bits are set but no extension was negotiated")
            if not second & 0x80:
                raise FrameError(1002, "client frames must be masked")
            length, head = second & 0x7F, pos + 2
            if length == 126:
                if size - head < 2:
                    break
                length, head = int.from_bytes(buffer[head : head + 2], "big"), head + 2
            elif length == 127:
                if size - head < 8:
                    break
                length, head = int.from_bytes(buffer[head : head + 8], "big"), head + 8
            if length > self.max_size:
                raise FrameError(1009, f"message larger than {self.max_size} bytes")
            end = head + 4 + length
            if end > size:
                break
            payload = apply_mask(buffer[head + 4 : end], buffer[head : head + 4])
            pos = end
            self._frame(first & 0x80, first & 0x0F, payload, out)
        if pos == size:
            self._buffer = None
        elif isinstance(buffer, bytearray):
            del buffer[:pos]
        else:
            self._buffer = bytearray(buffer[pos:])
        return out

    def _frame(self, fin: int, opcode: int, payload: bytes, out: list[tuple[int, bytes]]) -> None:
        if opcode in (OP_CLOSE, OP_PING, OP_PONG):
            if not fin or len(payload) > 125:
                raise FrameError(1002, "control frames must be final and at most 125 bytes")
            out.append((opcode, payload))
        elif opcode == OP_CONTINUATION:
            if self._fragments is None:
                raise FrameError(1002, "continuation frame without a message to continue")
            self._fragments.append(payload)
            if sum(map(len, self._fragments)) > self.max_size:
                raise FrameError(1009, f"message larger than {self.max_size} bytes")
            if fin:
                out.append((self._opcode, b"".join(self._fragments)))
                self._fragments = None
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._fragments is not None:
                raise FrameError(1002, "new message before the previous one was finished")
            if fin:
                out.append((opcode, payload))
            else:
                self._fragments, self._opcode = [payload], opcode
        else:
            raise FrameError(1002, f"unknown opcode {opcode:#x}")
