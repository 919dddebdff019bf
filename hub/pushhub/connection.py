"""Client connections and the subscriptions they hold.

A connection writes pre-framed bytes straight to its socket's transport, once per turn of the event
loop (:class:`Outbox`): the fan-out never wakes a per-connection task and never copies an event per
connection. Its bounded queue is the transport's write buffer: past ``limit`` bytes the client is too
slow, and is disconnected with :data:`~pushhub.disconnect.SLOW_CONSUMER` after the bytes already queued,
so its last cursor is exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import cursor as cursors
from . import disconnect, protocol, sse
from .cursor import Position
from .events import Event


class Outbox:
    """Coalesces what is written to connections during one turn of the event loop.

    Events published in the same turn (concurrent publishers, a batch followed by another) reach
    a connection as one socket write at the end of the turn instead of one write each: the
    system call, not the framing, is the main cost of a delivery.
    """

    __slots__ = ("dirty", "loop", "scheduled")

    def __init__(self) -> None:
        self.dirty: list[Connection] = []
        self.scheduled = False
        self.loop: asyncio.AbstractEventLoop | None = None  # the first write's; asking each turn costs a getpid()

    def write_all(self, conns: Iterable[Connection], data: bytes) -> None:
        """Queue ``data`` for each open connection of ``conns`` (see :meth:`Connection.write`). The
        fan-out hands a whole group's members over in one call: no call per member."""
        dirty = self.dirty
        for conn in conns:
            if conn.closed is None:
                pending = conn.pending
                if pending is None:
                    conn.pending = [data]
                    dirty.append(conn)
                else:
                    pending.append(data)
        if dirty and not self.scheduled:
            self.scheduled = True
            if self.loop is None:
                self.loop = asyncio.get_running_loop()
            self.loop.call_soon(self.flush)

    def hold(self) -> bool:
        """Make what is written from now on wait for the caller's :meth:`flush` instead of the end of
        the loop turn, which then costs no turn of its own. False, and nothing changes, when a flush
        is due this turn already."""
        if self.scheduled:
            return False
        self.scheduled = True
        return True

    def flush(self) -> None:
        self.scheduled = False
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.flush()


class Connection:
    """Common state of one SSE or WebSocket client.

    ``render`` and ``render_reset`` return one message's payload; ``send`` frames it for the wire.
    ``head`` (the response head of the stream) waits for the stream's first :meth:`flush`, with
    whatever is written before it, instead of for the outbox's: a connect is answered in one write
    and costs the outbox nothing.
    """

    __slots__ = ("closed", "limit", "on_close", "outbox", "pending", "subscriptions", "transport")

    def __init__(self, transport: asyncio.WriteTransport, limit: int, outbox: Outbox,
                 head: bytes | None = None) -> None:
        self.transport = transport
        self.limit = limit
        self.outbox = outbox
        self.pending: list[bytes] | None = None if head is None else [head]
        self.closed: disconnect.Disconnect | None = None
        self.subscriptions: list[Subscription] = []
        self.on_close: Callable[[Connection], None] | None = None

    def write(self, data: bytes) -> None:
        """Queue bytes that are already framed for this connection's transport; they are written
        with everything else queued in this turn of the event loop, in order. Nothing is written
        once the stream is closed."""
        self.outbox.write_all((self,), data)

    def flush(self) -> None:
        pending = self.pending
        if pending is None:
            return
        self.pending = None
        transport = self.transport
        try:
            transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
        except RuntimeError:  # the client went away and the server has not noticed yet
            self.close(disconnect.CLIENT_GONE)
            return
        if transport.get_write_buffer_size() > self.limit:
            self.close(disconnect.SLOW_CONSUMER)

    def send(self, payload: bytes) -> None:
        """Frame one message for the wire and write it."""
        raise NotImplementedError

    def close(self, reason: disconnect.Disconnect) -> None:
        """End the stream from the server side, telling the client why."""
        if self.closed is not None:
            return
        self.mark_closed(reason)
        if not self.transport.is_closing():
            self.flush()
            self._goodbye(reason)

    def mark_closed(self, reason: disconnect.Disconnect) -> None:
        """The stream is over (``reason`` says why): nothing more is written to it."""
        self.closed = reason
        if self.on_close is not None:
            self.on_close(self)

    def _goodbye(self, reason: disconnect.Disconnect) -> None:
        """Tell the client why the stream ends, and end it."""
        raise NotImplementedError

    # Rendering, used once per group of subscriptions (live) or per subscription (catch-up).
    def group_kind(self, sub: Subscription) -> GroupKind:
        raise NotImplementedError

    def render(self, sub: Subscription, event: Event) -> bytes:
        raise NotImplementedError

    def render_reset(self, sub: Subscription, channel: str, reason: str) -> bytes:
        raise NotImplementedError


class Subscription:
    """Channels a connection follows together, with one type filter and one position per channel.

    A subscription is *catching up* (reading history, buffering live events in ``backlog``) until
    its positions meet the hub's, then *live*: a member of one :class:`Group` per channel, after
    which the hub tracks its positions for it.
    """

    __slots__ = ("backlog", "channels", "conn", "live", "match", "pos", "types", "waiting")

    def __init__(self, conn: Connection, channels: tuple[str, ...], types: tuple[str, ...],
                 match: Callable[[str], bool] | None) -> None:
        self.conn = conn
        self.channels = channels
        self.types = types
        self.match = match
        self.pos: dict[str, Position] = {}
        self.backlog: list[Event] = []
        self.live = False
        self.waiting = False

    def cursor(self) -> str:
        return cursors.encode(self.pos, self.channels)


class SSEConnection(Connection):
    __slots__ = ("chunked",)

    def __init__(self, transport: asyncio.WriteTransport, limit: int, outbox: Outbox, chunked: bool,
                 head: bytes | None = None) -> None:
        super().__init__(transport, limit, outbox, head)
        self.chunked = chunked

    def send(self, payload: bytes) -> None:
        self.write(sse.chunk(payload) if self.chunked else payload)

    def _goodbye(self, reason: disconnect.Disconnect) -> None:
        goodbye = sse.control_frame("disconnect", reason.as_dict())
        self.transport.write(sse.chunk(goodbye) + sse.LAST_CHUNK if self.chunked else goodbye)
        self.transport.close()

    def group_kind(self, sub: Subscription) -> SSEGroup:
        return SSEGroup(sub.channels, self.chunked)

    def render(self, sub: Subscription, event: Event) -> bytes:
        return sse.event_frame(sub.cursor(), event.json)

    def render_reset(self, sub: Subscription, channel: str, reason: str) -> bytes:
        cursor = sub.cursor()
        return sse.control_frame("reset", {"channel": channel, "reason": reason, "cursor": cursor}, id=cursor)


class WSConnection(Connection):
    __slots__ = ("encoder", "stream")

    def __init__(self, transport: asyncio.WriteTransport, limit: int, outbox: Outbox, subprotocol: str,
                 head: bytes | None = None) -> None:
        super().__init__(transport, limit, outbox, head)
        self.encoder = protocol.ENCODERS[subprotocol]
        self.stream: Any = None  # the socket's pushhub.websocket.WSStream, which does the closing handshake

    def send(self, payload: bytes) -> None:
        self.write(protocol.ws_frame(payload, binary=self.encoder.binary))

    def reply(self, message: dict[str, Any]) -> None:
        self.send(self.encoder.message(message))

    def _goodbye(self, reason: disconnect.Disconnect) -> None:
        self.stream.close(reason)

    def group_kind(self, sub: Subscription) -> WSGroup:
        return WS_GROUPS[self.encoder.binary]

    def render(self, sub: Subscription, event: Event) -> bytes:
        return self.encoder.event(event, sub.pos[event.channel].encode())

    def render_reset(self, sub: Subscription, channel: str, reason: str) -> bytes:
        return self.encoder.message({"op": "reset", "channel": channel, "reason": reason,
                                     "cursor": sub.pos[channel].encode()})


@dataclass(frozen=True, slots=True)
class WSGroup:
    """WebSocket subscribers with one wire format: a live event is framed the same for all."""

    binary: bool


WS_GROUPS = (WSGroup(binary=False), WSGroup(binary=True))  # one of each, shared: made once, not per subscribe


@dataclass(frozen=True, slots=True)
class SSEGroup:
    """SSE subscribers of the same channels: the id of an event is the cursor over all of them."""

    channels: tuple[str, ...]
    chunked: bool


GroupKind = WSGroup | SSEGroup


def render_batch(kind: GroupKind, events: list[Event], tops: Mapping[str, Position]) -> bytes:
    """Frame a batch of live events of one channel once for every connection of one group kind.

    ``tops`` holds the hub's position of every channel before the batch; the SSE id of a
    multi-channel subscription is built from it, as a live subscriber has seen exactly up to the tops.
    """
    if isinstance(kind, WSGroup):
        binary = kind.binary
        return b"".join(
            protocol.ws_frame(
                protocol.event_msgpack(e, e.position.encode()) if binary
                else protocol.event_json(e, e.position.encode()),
                binary=binary,
            )
            for e in events
        )
    channels = kind.channels
    if len(channels) == 1 and len(events) == 1:  # the usual live event: one channel's cursor is its position
        e = events[0]
        payload = sse.event_frame(e.position.encode(), e.json)
        return sse.chunk(payload) if kind.chunked else payload
    positions = {channel: tops[channel] for channel in channels}
    parts = []
    for e in events:
        positions[e.channel] = e.position
        parts.append(sse.event_frame(cursors.encode(positions, channels), e.json))
    payload = b"".join(parts)
    return sse.chunk(payload) if kind.chunked else payload
