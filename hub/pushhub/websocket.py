"""WebSocket streams on the ``websockets`` sans-I/O protocol.

The opening handshake is :meth:`websockets.server.ServerProtocol.accept` on the request head the
hub's HTTP server has parsed, except in the plain case (:func:`plain_handshake`: one well-formed
field of each kind the library reads, no choice to make beyond the subprotocol), which the hub
answers itself with the bytes the library would send; anything else, every error included, is the
library's. After it, the socket's protocol is a :class:`WSStream`: client bytes
go through a ``ServerProtocol`` (framing, masking, control frames, close codes, the closing
handshake), which answers pings and closes by itself; the stream joins fragments, decodes text and
hands messages to the session. The hub writes its own messages as shared pre-framed bytes
(:func:`pushhub.protocol.ws_frame`), which is how one framing serves a whole fan-out group.

A ``ServerProtocol`` costs about 1.4 KB, so an idle stream does not keep one: it is made when bytes
arrive and dropped again when every byte fed has been parsed into whole frames and no fragmented
message is pending. A protocol made afresh in the ``OPEN`` state continues exactly where the
previous one stopped.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import codecs
import email.utils
import hashlib
import logging
import re
import time
from collections.abc import Callable
from typing import Any, Protocol

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from . import disconnect, protocol
from .connection import WSConnection

logger = logging.getLogger("pushhub")
WS_LOGGER = logging.getLogger("websockets.server")  # ServerProtocol's own default, looked up once

MAX_FRAGMENTS = 1024
"""Frames one message may be split into; more close the connection with 1009."""
FEED_BYTES = 16 * 1024
"""Client bytes parsed at a time: once a read full of tiny frames breaks a rule (say, too many
fragments), the protocol discards the rest of it instead of parsing it into frames."""
MAX_INBOX = 16
"""Client messages queued for the session before the socket stops being read."""
SUBPROTOCOLS = [Subprotocol(protocol.MSGPACK), Subprotocol(protocol.JSON)]
CLIENT_CLOSED = disconnect.Disconnect(1000, "client_gone")


def _select_subprotocol(server: ServerProtocol, offered: Any) -> Subprotocol | None:
    """msgpack if offered, else JSON if offered, else none (JSON text frames)."""
    for name in SUBPROTOCOLS:
        if name in offered:
            return name
    return None


HANDSHAKE_HEADERS = frozenset({b"connection", b"upgrade", b"sec-websocket-key", b"sec-websocket-version",
                               b"sec-websocket-protocol", b"sec-websocket-extensions"})
"""The request headers that ``ServerProtocol.accept`` reads (with no ``origins`` set, ``Origin`` is
not one): only these are converted for it."""


def handshake(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[bytes, str | None, bool]:
    """The handshake response to a request head: ``(response bytes, subprotocol, accepted)``."""
    server = ServerProtocol(subprotocols=SUBPROTOCOLS, select_subprotocol=_select_subprotocol, logger=WS_LOGGER)
    request_headers = Headers()
    for name, value in headers:
        if name in HANDSHAKE_HEADERS:
            request_headers[name.decode("latin-1")] = value.decode("latin-1")
    response = server.accept(Request(path, request_headers))
    server.send_response(response)
    return b"".join(server.data_to_send()), server.subprotocol, response.status_code == 101


GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
PLAIN_FIELDS = frozenset({b"connection", b"upgrade", b"sec-websocket-key", b"sec-websocket-version",
                          b"sec-websocket-protocol"})
_TOKENS = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*,[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*")
_COMMA = re.compile(rb"[ \t]*,[ \t]*")
_date: tuple[int, bytes] = (0, b"")
_ONE_OFFERED = {name.encode(): name for name in SUBPROTOCOLS}  # the usual offer: exactly one of ours


def _http_date() -> bytes:
    """The ``Date`` value ``ServerProtocol.accept`` writes, made once a second."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, email.utils.formatdate(second, usegmt=True).encode())
    return _date[1]


def plain_handshake(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, str | None] | None:
    """The ``101`` response and subprotocol that ``ServerProtocol.accept`` gives a ``GET`` over
    HTTP/1.1 with one of each field it reads, all well-formed; ``None`` for any other request, which
    goes to :func:`handshake`. Extensions are ignored, as by the library when it offers none.
    ``tests/test_ws_handshake.py`` holds the two to the same answers."""
    fields: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in PLAIN_FIELDS:
            if name in fields:
                return None
            fields[name] = value
    connection = fields.get(b"connection", b"").lower()
    if connection != b"upgrade" and not (_TOKENS.fullmatch(connection) and b"upgrade" in _COMMA.split(connection)):
        return None
    key = fields.get(b"sec-websocket-key", b"")
    if (fields.get(b"upgrade", b"").lower() != b"websocket" or fields.get(b"sec-websocket-version") != b"13"
            or len(key) != 24):
        return None
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except binascii.Error:
        return None
    subprotocol = None
    offered = fields.get(b"sec-websocket-protocol")
    if offered is not None:
        subprotocol = _ONE_OFFERED.get(offered)
        if subprotocol is None:
            if not _TOKENS.fullmatch(offered):
                return None
            names = _COMMA.split(offered)
            for choice in SUBPROTOCOLS:
                if choice.encode() in names:
                    subprotocol = choice
                    break
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    head = b"HTTP/1.1 101 Switching Protocols\r\nDate: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" \
        b"Sec-WebSocket-Accept: %s\r\n" % (_http_date(), accept)
    if subprotocol is not None:
        return head + b"Sec-WebSocket-Protocol: %s\r\n\r\n" % subprotocol.encode(), subprotocol
    return head + b"\r\n", None


def wire_size(length: int) -> int:
    """Bytes a masked client frame of ``length`` payload bytes takes on the wire (with the shortest
    length encoding; a client using a longer one only keeps its protocol from being dropped)."""
    return length + (6 if length < 126 else 8 if length < 65536 else 14)


class Session(Protocol):
    """What a stream hands the client's messages to."""

    async def handle(self, message: dict[str, Any]) -> None: ...


class WSStream(asyncio.Protocol):
    """The protocol of a WebSocket after its handshake."""

    __slots__ = (
        "close_timeout",
        "close_timer",
        "conn",
        "decoder",
        "expiry",
        "fragments",
        "gone",
        "heard",
        "inbox",
        "max_size",
        "pinged",
        "server",
        "session",
        "unparsed",
        "worker",
    )

    def __init__(self, conn: WSConnection, session: Session, *,
                 max_size: int, close_timeout: float, gone: Callable[[WSStream], None]) -> None:
        self.conn = conn
        self.session = session
        self.max_size = max_size
        self.close_timeout = close_timeout
        self.gone = gone
        self.expiry: asyncio.TimerHandle | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        self.server: ServerProtocol | None = None
        self.unparsed = 0  # bytes fed to ``server`` that are not yet part of a whole frame
        self.fragments: list[Any] | None = None  # the parts of a fragmented message
        self.decoder: codecs.IncrementalDecoder | None = None  # its text decoder, if it is text
        self.inbox: list[dict[str, Any]] | None = None  # made when the first message arrives
        self.worker: asyncio.Task[None] | None = None
        self.heard = True
        self.pinged = False
        conn.stream = self

    def _server(self) -> ServerProtocol:
        if self.server is None:
            self.server = ServerProtocol(state=State.OPEN, max_size=self.max_size, logger=WS_LOGGER)
        return self.server

    def data_received(self, data: bytes) -> None:
        self.heard = True
        if self.server is None and self.conn.closed is not None:
            return
        server = self._server()
        for start in range(0, len(data), FEED_BYTES):
            chunk = data[start : start + FEED_BYTES]
            server.receive_data(chunk)
            self.unparsed += len(chunk)
            for frame in server.events_received():
                assert isinstance(frame, Frame)
                self.unparsed -= wire_size(len(frame.data))
                if self.conn.closed is None:
                    self._frame(server, frame)
            self._after(server)
        if server.state is State.OPEN and not self.unparsed and self.fragments is None:
            self.server = None

    def _frame(self, server: ServerProtocol, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._message(opcode is Opcode.TEXT, frame.data)
                return
            self.fragments = []
            self.decoder = codecs.getincrementaldecoder("utf-8")() if opcode is Opcode.TEXT else None
            self._fragment(server, frame)
        elif opcode is Opcode.CONT and self.fragments is not None:
            if len(self.fragments) >= MAX_FRAGMENTS:
                server.fail(1009, f"a message in more than {MAX_FRAGMENTS} frames")
                return
            self._fragment(server, frame)

    def _fragment(self, server: ServerProtocol, frame: Frame) -> None:
        fragments = self.fragments
        assert fragments is not None
        if self.decoder is None:
            fragments.append(bytes(frame.data))
        else:
            try:
                fragments.append(self.decoder.decode(frame.data, final=frame.fin))
            except UnicodeDecodeError:
                server.fail(1007, "invalid UTF-8 in a text message")
                return
        if frame.fin:
            self.fragments = None
            if self.decoder is None:
                self.queue({"bytes": b"".join(fragments)})
            else:
                self.decoder = None
                self.queue({"text": "".join(fragments)})

    def _message(self, text: bool, data: Any) -> None:
        if not text:
            self.queue({"bytes": bytes(data)})
            return
        try:
            self.queue({"text": bytes(data).decode()})
        except UnicodeDecodeError:
            self._server().fail(1007, "invalid UTF-8 in a text message")

    def _after(self, server: ServerProtocol) -> None:
        """Write what the protocol has to say; follow it when it closes or has closed."""
        conn = self.conn
        if server.state is not State.OPEN and conn.closed is None:
            received = server.close_rcvd
            if received is not None and server.close_sent is received:
                conn.mark_closed(CLIENT_CLOSED)
            else:
                sent = server.close_sent
                conn.mark_closed(disconnect.Disconnect(sent.code, sent.reason) if sent else CLIENT_CLOSED)
        output = server.data_to_send()
        if not output:
            return
        conn.flush()
        transport = conn.transport
        for data in output:
            if transport.is_closing():
                return
            if data:
                transport.write(data)
            else:
                self._end(transport)

    def _end(self, transport: asyncio.WriteTransport) -> None:
        """The server ends TCP first (§7.1.1): a half-close, so that the client reads the close frame
        even while it is still sending (closing a socket with unread input would reset it); what it
        sends is discarded until it closes too, for at most ``close_timeout``."""
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()
        self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        if self.close_timer is None and not self.conn.transport.is_closing():
            self.close_timer = asyncio.get_running_loop().call_later(self.close_timeout, self.conn.transport.abort)

    def eof_received(self) -> bool:
        return False  # the client is done: close the socket

    def close(self, reason: disconnect.Disconnect) -> None:
        """Start the closing handshake; drop the connection if the client does not complete it."""
        server = self._server()
        if server.state is State.OPEN:
            server.send_close(reason.code, reason.reason[:120])
        self._after(server)
        self._arm_close_timer()

    def queue(self, message: dict[str, Any]) -> None:
        """Hand ``message`` to the session, after those before it."""
        if self.inbox is None:
            self.inbox = []
        self.inbox.append(message)
        if len(self.inbox) >= MAX_INBOX:
            self.conn.transport.pause_reading()  # type: ignore[attr-defined]
        if self.worker is None:
            self.worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        inbox, conn = self.inbox, self.conn
        assert inbox is not None
        try:
            while inbox and conn.closed is None:
                message = inbox.pop(0)
                if len(inbox) == MAX_INBOX - 1:
                    conn.transport.resume_reading()  # type: ignore[attr-defined]
                await self.session.handle(message)
        except Exception:
            logger.exception("WebSocket message handler failed")
            conn.close(disconnect.INTERNAL_ERROR)
        finally:
            self.worker = None

    def keepalive(self) -> None:
        """Ping; close a client that did not send anything since the previous ping."""
        if self.pinged and not self.heard:
            self.conn.close(disconnect.PING_TIMEOUT)
            return
        self.heard, self.pinged = False, True
        self.conn.write(protocol.PING_FRAME)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.expiry, self.close_timer):
            if timer is not None:
                timer.cancel()
        if self.conn.closed is None:
            self.conn.mark_closed(disconnect.CLIENT_GONE)
        self.gone(self)
