"""The streaming endpoints: Server-Sent Events (``GET /v1/sse``) and WebSocket (``/v1/ws``).

The hub's HTTP server (:mod:`pushhub.http11`) hands these requests over with their sockets once
their heads are read (:meth:`Streams.endpoint`). An endpoint answers with the SSE headers or the
WebSocket handshake, then installs a small protocol of its own on the socket, so an idle stream costs
only a few small objects, and fan-out writes pre-framed bytes to the transport directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import unquote_plus

from starlette.types import Scope

from . import cors, disconnect, protocol, sse
from .auth import NOTHING, Access, Grant, TokenExpired
from .channels import compile_patterns, validate_channel
from .connection import Connection, SSEConnection, Subscription, WSConnection
from .errors import BadRequest, PushHubError
from .events import EventDraft
from .http11 import StreamEndpoint, error_response, status_line
from .http_api import positioned
from .hub import Hub
from .limits import HttpLimits
from .provenance import WEBSOCKET, Origin
from .websocket import WSStream, handshake, plain_handshake

MAX_CHANNELS = 100
SSE_PATH = "/v1/sse"
WS_PATH = "/v1/ws"
logger = logging.getLogger("pushhub")


def _split(values: list[str]) -> list[str]:
    return [part for value in values for part in value.split(",") if part]


def parse_query(scope: Scope) -> dict[str, list[str]]:
    """The query's parameters by name, as ``urllib.parse.parse_qsl`` reads them with blank values
    kept; a parameter without an escape, the usual case on a connect, is not run through ``unquote``."""
    query: dict[str, list[str]] = {}
    for part in scope.get("query_string", b"").decode("latin-1").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in part or "+" in part:
            name, value = unquote_plus(name), unquote_plus(value)
        query.setdefault(name, []).append(value)
    return query


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def is_websocket(scope: Scope) -> bool:
    upgrade = header(scope, b"upgrade")
    return upgrade is not None and upgrade.lower() == "websocket"


def subscription_spec(channels: list[str], types: list[str]) -> tuple[tuple[str, ...], tuple[str, ...], Any]:
    if len(channels) == 1 and not types:  # the usual connect
        return (validate_channel(channels[0]),), (), None
    names = tuple(dict.fromkeys(validate_channel(c) for c in channels))
    if not names:
        raise BadRequest("name at least one channel")
    if len(names) > MAX_CHANNELS:
        raise BadRequest(f"at most {MAX_CHANNELS} channels per subscription")
    if not all(isinstance(t, str) for t in types):
        raise BadRequest("'types' must be a list of event-type patterns (strings)")
    type_patterns = tuple(sorted(set(types)))
    return tuple(sorted(names)), type_patterns, compile_patterns(type_patterns)


class MethodNotAllowed(BadRequest):
    status = 405
    code = "method_not_allowed"


def send_error(transport: asyncio.Transport, exc: PushHubError, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer a stream request with an error, and close its connection."""
    transport.write(error_response(exc.status, exc.code, exc.message, extra))
    transport.close()


def _sse_head(origin_headers: list[tuple[bytes, bytes]], chunked: bool) -> bytes:
    """The response head of an event stream."""
    head = [status_line(200), *(b"%s: %s\r\n" % pair for pair in sse.HEADERS + origin_headers)]
    if chunked:
        head.append(b"transfer-encoding: chunked\r\n")
    return b"".join(head) + b"\r\n"


SSE_HEAD = _sse_head([], True)  # the usual one: HTTP/1.1, no CORS headers


def scope_grant(access: Access, scope: Scope, query: dict[str, list[str]], origins: list[str]) -> Grant:
    """What a stream's credential allows: header, ``token`` query parameter, or cookie."""
    query_token = (query.get("token") or query.get("key") or [""])[-1] or None
    return access.presented(header(scope, b"authorization"), query_token, header(scope, b"cookie"),
                            header(scope, b"origin"), header(scope, b"host"), origins)


class Streams:
    def __init__(self, hub: Hub, *, access: Access, cors_origins: list[str], max_queue_bytes: int,
                 sse_retry_ms: int, max_message_bytes: int, limits: HttpLimits) -> None:
        self.hub = hub
        self.access = access
        self.cors_origins = cors_origins
        self.max_queue_bytes = max_queue_bytes
        self.sse_retry_ms = sse_retry_ms
        self.max_message_bytes = max_message_bytes
        self.limits = limits
        self.sse_connections: dict[SSEConnection, None] = {}
        self.ws_streams: dict[WSStream, None] = {}
        self.outbox = hub.outbox
        self.tasks: set[asyncio.Task[None]] = set()
        self.all_closed: asyncio.Event | None = None
        self.ws_gone = self._ws_gone  # one bound method for every stream

    async def wait_closed(self, timeout: float) -> None:
        """Wait until no stream has its socket any more (the closing handshakes are done)."""
        if self.sse_connections or self.ws_streams:
            self.all_closed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_closed.wait(), timeout)

    def _closed(self) -> None:
        if self.all_closed is not None and not (self.sse_connections or self.ws_streams):
            self.all_closed.set()

    def endpoint(self, scope: Scope) -> StreamEndpoint | None:
        """The endpoint that takes ``scope``'s request over with its socket, if it is a stream."""
        path = scope["path"]
        if path == WS_PATH and is_websocket(scope):
            return self.websocket
        if path == SSE_PATH and scope["method"] != "OPTIONS":
            return self.sse
        return None

    def heartbeat(self) -> None:
        """Keep idle streams alive through proxies; close WebSockets that stopped answering pings."""
        for conn in list(self.sse_connections):
            conn.send(sse.HEARTBEAT)
        for stream in list(self.ws_streams):
            stream.keepalive()

    def expire_at(self, grant: Grant, conn: Connection) -> asyncio.TimerHandle | None:
        """One timer per connection: close it with ``token_expired`` when its token does."""
        if grant.expires is None:
            return None
        delay = max(0.0, grant.expires - self.access.clock())
        return asyncio.get_running_loop().call_later(delay, conn.close, disconnect.TOKEN_EXPIRED)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # Server-Sent Events -----------------------------------------------------------------------

    def sse(self, scope: Scope, transport: asyncio.Transport, rest: bytes) -> None:
        origin_headers = cors.headers(header(scope, b"origin"), self.cors_origins)
        if scope["method"] != "GET":
            send_error(transport, MethodNotAllowed("the event stream is read with GET"), origin_headers)
            return
        query = parse_query(scope)
        try:
            channels, types, match = subscription_spec(_split(query.get("channel", [])),
                                                       _split(query.get("type", [])))
            grant = scope_grant(self.access, scope, query, self.cors_origins)
            self.access.check_subscribe(grant, channels)
        except PushHubError as exc:
            send_error(transport, exc, origin_headers)
            return
        cursor = header(scope, b"last-event-id") or (query.get("lastEventId") or [""])[-1] or None
        chunked = scope["http_version"] == "1.1"
        conn = SSEConnection(transport, self.max_queue_bytes, self.outbox, chunked,
                             SSE_HEAD if chunked and not origin_headers else _sse_head(origin_headers, chunked))
        self.hub.add_connection(conn)
        self.sse_connections[conn] = None
        transport.set_protocol(_SSEStream(self, conn, self.expire_at(grant, conn)))
        if transport.is_closing():
            conn.mark_closed(disconnect.CLIENT_GONE)
            self._sse_gone(conn)
            return
        sub = Subscription(conn, channels, types, match)
        if cursor is not None or not self.hub.subscribe_now(sub, self._sse_announce):
            self._spawn(self._sse_subscribe(conn, sub, cursor))
        conn.flush()  # the headers and whatever the subscription sent at once, in one write

    def _sse_announce(self, sub: Subscription) -> None:
        sub.conn.send(sse.preamble(self.sse_retry_ms, sub.cursor()))

    async def _sse_subscribe(self, conn: SSEConnection, sub: Subscription, cursor: str | None) -> None:
        try:
            await self.hub.subscribe(sub, cursor, self._sse_announce)
        except PushHubError as exc:
            logger.warning("SSE subscription to %s failed: %s", ",".join(sub.channels), exc.message)
            conn.close(disconnect.INTERNAL_ERROR)

    def _sse_gone(self, conn: SSEConnection) -> None:
        self.sse_connections.pop(conn, None)
        self.hub.remove_connection(conn)
        self._closed()

    # WebSocket --------------------------------------------------------------------------------

    def websocket(self, scope: Scope, transport: asyncio.Transport, rest: bytes) -> None:
        plain = None
        if scope["method"] == "GET" and scope["http_version"] == "1.1":
            plain = plain_handshake(scope["headers"])
        if plain is None:
            query_string = scope["query_string"]
            path = scope["raw_path"].decode("latin-1") + ("?" + query_string.decode("latin-1") if query_string else "")
            response, subprotocol, accepted = handshake(path, scope["headers"])
            if not accepted:
                transport.write(response)
                transport.close()
                return
        else:
            response, subprotocol = plain
        # The response is written with the replies to the URL's subscriptions, if any, in one write.
        conn = WSConnection(transport, self.max_queue_bytes, self.outbox, subprotocol or protocol.JSON, response)
        self.hub.add_connection(conn)
        session = _WSSession(self, conn)
        stream = WSStream(conn, session, max_size=self.max_message_bytes,
                          close_timeout=self.limits.close_timeout, gone=self.ws_gone)
        self.ws_streams[stream] = None
        transport.set_protocol(stream)
        if transport.is_closing():
            conn.mark_closed(disconnect.CLIENT_GONE)
            self._ws_gone(stream)
            return
        query = parse_query(scope)
        try:
            session.grant = scope_grant(self.access, scope, query, self.cors_origins)
        except PushHubError as exc:
            conn.close(disconnect.TOKEN_EXPIRED if isinstance(exc, TokenExpired) else disconnect.UNAUTHORIZED)
            return
        stream.expiry = self.expire_at(session.grant, conn)
        session.subscribe_url(query, stream)
        conn.flush()
        if rest:
            stream.data_received(rest)

    def _ws_gone(self, stream: WSStream) -> None:
        self.ws_streams.pop(stream, None)
        conn = stream.conn
        self.hub.remove_connection(conn)
        # The connection points at its stream, which points at it and at its session, which points
        # at it too: cut that, and a closed connection is freed at once, not left to the collector's
        # next full pass (which would walk every open connection's objects to find it).
        conn.stream = None
        self._closed()


class _SSEStream(asyncio.Protocol):
    """The protocol of an SSE socket after its headers: it only learns when the client leaves."""

    __slots__ = ("conn", "expiry", "streams")

    def __init__(self, streams: Streams, conn: SSEConnection, expiry: asyncio.TimerHandle | None) -> None:
        self.streams = streams
        self.conn = conn
        self.expiry = expiry

    def data_received(self, data: bytes) -> None:
        """An EventSource sends nothing after its request; anything else is ignored."""

    def connection_lost(self, exc: Exception | None) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        if self.conn.closed is None:
            self.conn.mark_closed(disconnect.CLIENT_GONE)
        self.streams._sse_gone(self.conn)


class _WSSession:
    """The state of one WebSocket client's protocol: its subscriptions and rights."""

    __slots__ = ("access", "conn", "grant", "hub", "streams", "subs")

    def __init__(self, streams: Streams, conn: WSConnection) -> None:
        self.streams = streams
        self.hub = streams.hub
        self.access = streams.access
        self.conn = conn
        self.grant = Grant(NOTHING, NOTHING)  # until the handshake's credential is read
        self.subs: dict[str, Subscription] = {}

    async def handle(self, message: dict[str, Any]) -> None:
        """Answer one client message, or a request the handshake's URL made (``{"request": …}``)."""
        request = message.get("request")
        msg_id: Any = None
        try:
            if request is None:
                binary = message.get("bytes") is not None
                if binary != self.conn.encoder.binary:
                    kind = "binary" if binary else "text"
                    raise BadRequest(f"{kind} frames are not part of this connection's subprotocol")
                request = protocol.decode(message["bytes"] if binary else message["text"], binary=binary)
                msg_id = protocol.message_id(request)
                if binary:
                    protocol.require_json_values(request)
            op = protocol.validate(request)
            await getattr(self, "op_" + op)(request, msg_id)
        except PushHubError as exc:
            self._error(msg_id, exc)

    def _error(self, msg_id: Any, exc: PushHubError) -> None:
        if self.conn.closed is None:
            self.conn.reply({"op": "error", "id": msg_id, "code": exc.code, "message": exc.message})

    def subscribe_url(self, query: dict[str, list[str]], stream: WSStream) -> None:
        """The subscriptions named in the handshake's URL (``channel``, ``type``, ``cursor``, as for
        SSE), made as if the client had sent a ``subscribe`` without an ``id`` for each channel
        first: the same replies, in order. Most are made at once, so their ``subscribed`` replies
        leave with the ``101`` in one write; the others are queued before any client message."""
        channels = _split(query.get("channel", []))
        cursor = (query.get("cursor") or [""])[-1] or None
        if cursor is not None and len(channels) > 1:
            self._error(None, BadRequest("a cursor in the URL resumes one channel: name only one"))
            return
        types = _split(query.get("type", []))
        for channel in channels:
            if cursor is None and self._subscribe_now(channel, types):
                continue
            stream.queue({"request": {"op": "subscribe", "channel": channel, "types": types, "cursor": cursor}})

    def _subscribe_now(self, channel: str, types: list[str]) -> bool:
        try:
            sub = self._subscription(channel, types, None)
        except PushHubError:
            return False  # answered by the ordinary path
        if self.hub.subscribe_now(sub, self._announcer(None)):
            return True
        del self.subs[sub.channels[0]]
        return False

    def _subscription(self, channel: Any, types: Any, cursor: Any) -> Subscription:
        """The subscription a ``subscribe`` request asks for, checked and registered (not attached)."""
        types = types or []
        if not isinstance(types, list):
            raise BadRequest("'types' must be a list of patterns")
        if cursor is not None and not isinstance(cursor, str):
            raise BadRequest("'cursor' must be a string")
        channels, type_patterns, match = subscription_spec([channel] if isinstance(channel, str) else [], types)
        name = channels[0]
        self.access.check_subscribe(self.grant, channels)
        if name in self.subs:
            raise BadRequest(f"already subscribed to {name!r}: unsubscribe first")
        sub = self.subs[name] = Subscription(self.conn, channels, type_patterns, match)
        return sub

    def _announcer(self, msg_id: Any) -> Callable[[Subscription], None]:
        def announce(sub: Subscription) -> None:
            conn = self.conn
            conn.send(conn.encoder.subscribed(msg_id, sub.channels[0], sub.cursor()))
        return announce

    async def op_ping(self, request: dict[str, Any], msg_id: Any) -> None:
        self.conn.reply({"op": "pong", "id": msg_id})

    async def op_subscribe(self, request: dict[str, Any], msg_id: Any) -> None:
        cursor = request.get("cursor")
        sub = self._subscription(request.get("channel"), request.get("types"), cursor)
        announce = self._announcer(msg_id)
        if cursor is None and self.hub.subscribe_now(sub, announce):
            return
        try:
            await self.hub.subscribe(sub, cursor, announce)
        except BaseException:
            self.subs.pop(sub.channels[0], None)
            raise

    async def op_unsubscribe(self, request: dict[str, Any], msg_id: Any) -> None:
        channel = request.get("channel")
        sub = self.subs.pop(channel, None) if isinstance(channel, str) else None
        if sub is None:
            raise BadRequest(f"not subscribed to {channel!r}")
        self.hub.unsubscribe(sub)
        self.conn.reply({"op": "unsubscribed", "id": msg_id, "channel": channel})

    async def op_publish(self, request: dict[str, Any], msg_id: Any) -> None:
        channel = request.get("channel")
        if not isinstance(channel, str):
            raise BadRequest("'channel' must be a string")
        validate_channel(channel)
        self.access.check_publish(self.grant, channel)
        draft = EventDraft.from_json(request.get("event"))
        (event,) = await self.hub.publish(channel, [draft], Origin(WEBSOCKET, self.grant.publisher))
        self.conn.reply({**positioned(event), "op": "published", "id": msg_id, "event_id": event.id})

