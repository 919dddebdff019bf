"""The hub's HTTP/1.1 server protocol, one per client socket, on httptools.

Plain requests become ASGI ``http`` calls into the Starlette app: keep-alive, pipelining (one
request served at a time, in order), chunked request bodies, ``Expect: 100-continue``, and flow
control both ways. A request that a lean endpoint takes (the ``lean`` router of
:class:`ServerState`: the hot paths, for a request with a ``Content-Length`` the endpoint accepts
and no ``Expect: 100-continue``) is no ASGI call: once its whole body is in, the endpoint is handed
the scope and the body, and its answer (status, header lines, body) goes out in one write, in the
pipeline's order as any other. A request that a stream endpoint claims (the ``router``) is handed
over with its socket as soon as its head is read: the endpoint answers it and installs a protocol
of its own, and nothing of this one is kept.

Every request first meets the :class:`~pushhub.limits.HttpLimits`: a head larger than
``max_header_bytes`` or with more than ``max_headers`` fields is answered ``431``, a head or a body
that stops arriving ``408``. A limit that fires on a pipelined request waits until the requests
before it are answered, so a response to an accepted request is never lost to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from urllib.parse import unquote

import httptools
import orjson
from starlette.types import ASGIApp, Message, Scope

from .deadlines import SharedDeadline
from .forwarded import Proxies
from .limits import HttpLimits

logger = logging.getLogger("pushhub")
access_logger = logging.getLogger("pushhub.access")

StreamEndpoint = Callable[[Scope, asyncio.Transport, bytes], None]
"""Takes a request over with its socket: answers it, installs its own protocol on the transport and
feeds it ``rest`` (bytes the client sent after the head)."""
StreamRouter = Callable[[Scope], StreamEndpoint | None]
LeanAnswer = tuple[int, bytes, bytes]
LeanReply = Callable[[LeanAnswer | BaseException], None]
LeanEndpoint = Callable[[Scope, bytes, LeanReply], None]
"""Answers a request whose whole body is ``bytes`` by calling the reply once, then or later (no task
is made for it): with the status, the header lines (each ending in CRLF; the server adds
``content-length`` and ``connection``) and the body of the response, or with the exception that
failed it (answered 500). It raises only before it replies."""
LeanRouter = Callable[[Scope], LeanEndpoint | None]

BODY_HIGH_WATER = 256 * 1024  # request body bytes buffered before the socket stops being read
DROP_LIMIT = 8 * 1024 * 1024  # body bytes of an answered request read and dropped to keep the connection
ASGI = {"version": "3.0", "spec_version": "2.3"}


STATUS_LINES = {status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode())
                for status in http.HTTPStatus}


def status_line(status: int) -> bytes:
    return STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status  # a status without a standard phrase


def error_response(status: int, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A complete JSON error response after which the hub closes the connection."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    head = [status_line(status), b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
            *(b"%s: %s\r\n" % pair for pair in headers or []), b"connection: close\r\n\r\n"]
    return b"".join(head) + body


class ServerState:
    """What the connections of one listening server share."""

    def __init__(self, app: ASGIApp, router: StreamRouter, limits: HttpLimits, proxies: Proxies,
                 access_log: bool = False, address: tuple[str, int] | None = None,
                 lean: LeanRouter | None = None) -> None:
        self.app = app
        self.address = address  # the server end of every connection, when the listener has one address
        self.router = router
        self.lean = lean
        self.limits = limits
        self.proxies = proxies
        self.access_log = access_log
        self.connections: set[HttpConnection] = set()
        self.tasks: set[asyncio.Future[None]] = set()  # ASGI requests being answered, lean ones whose client left
        self.stopping = False
        self.all_closed: asyncio.Event | None = None
        self.first_heads: SharedDeadline[HttpConnection] = SharedDeadline(limits.head_timeout,
                                                                         HttpConnection.first_head_late)

    def stop(self) -> None:
        """No new requests: close idle keep-alive connections now and every other one after its
        response. A connection that has not sent its first request yet is left to send it (its
        client may have sent it already, and it is answered): it is closed after that response."""
        self.stopping = True
        for conn in list(self.connections):
            if conn.served and conn.active is None and conn.cycle is None and not conn.in_head:
                conn.close()

    async def wait_closed(self, timeout: float) -> None:
        """Wait until every connection is closed or handed to a stream, for at most ``timeout``."""
        if self.connections:
            self.all_closed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_closed.wait(), timeout)

    def forget(self, conn: HttpConnection) -> None:
        self.connections.discard(conn)
        if self.all_closed is not None and not self.connections:
            self.all_closed.set()


class HttpConnection(asyncio.Protocol):
    __slots__ = ("active", "claimed", "cycle", "deadline", "first_head", "head_bytes", "head_size", "header_count",
                 "headers", "in_head", "limits", "lingering", "loop", "on_deadline", "parser", "peer", "pipeline",
                 "read_paused", "refused", "served", "server", "state", "timer", "transport", "url", "writable")

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.limits = state.limits
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()  # asking for it again costs a getpid() each time
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_count = 0
        self.head_size = 0  # the request line and headers of the head being parsed
        self.head_bytes = 0  # bytes fed while the head was incomplete (bounds what the parser buffers)
        self.in_head = False
        self.cycle: Cycle | None = None  # the request being parsed
        self.active: Cycle | None = None  # the request being answered
        self.pipeline: deque[Cycle] = deque()
        self.claimed: tuple[StreamEndpoint, Scope] | None = None
        self.refused: bytes | None = None  # the error response owed once earlier requests are answered
        self.timer: asyncio.TimerHandle | None = None  # due at or before the deadline
        self.deadline = 0.0
        self.on_deadline: Callable[[], None] | None = None
        self.first_head = False  # the first head's deadline is the server's shared one (ServerState.first_heads)
        self.writable: asyncio.Future[None] | None = None
        self.read_paused = False
        self.lingering = False
        self.served = False  # a response was sent on this connection
        self.peer: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None

    # Connection events ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is no subclass)
        self.state.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        self.server = self.state.address
        if self.server is None:
            sock = transport.get_extra_info("sockname")
            self.server = (str(sock[0]), int(sock[1])) if isinstance(sock, tuple) else None
        self.first_head = True
        self.state.first_heads.start(self, self.loop)

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.forget(self)
        self._stop_timer()
        for cycle in (self.active, *self.pipeline, self.cycle):
            if cycle is not None:
                cycle.disconnect()
        # The parser and every request refer back to this object: let go of them, and a lost
        # connection is freed at once, not left to the collector (a handler still running keeps its
        # own request, and finished() then finds the transport closed).
        del self.parser
        self.active = self.cycle = None
        self.pipeline.clear()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        self.writable = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    async def drain(self) -> None:
        if self.writable is not None:
            await self.writable

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        if self.in_head or self.cycle is None:
            if self.head_bytes > self.limits.max_header_bytes:
                self._refuse(431, "headers_too_large", f"the request head exceeds {self.limits.max_header_bytes} bytes")
                return
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self.claimed is not None:
                self._hand_over(data[upgrade.args[0]:])
                return
            if self.cycle is not None:
                self.cycle.keep_alive = False  # an upgrade nobody takes: answer it as plain HTTP, then close
        except httptools.HttpParserCallbackError:
            logger.exception("reading a request failed")  # a callback of this class raised: a bug, not the client's
            if self.refused is None:
                self._refuse(500, "internal_error", "the request could not be read")
            return
        except httptools.HttpParserError as exc:
            if self.refused is None:
                self._refuse(400, "bad_request", f"malformed HTTP request: {exc}")
            return
        if self.claimed is not None:
            self._hand_over(b"")

    def _hand_over(self, rest: bytes) -> None:
        assert self.claimed is not None and self.transport is not None
        endpoint, scope = self.claimed
        self.claimed = None
        self.state.forget(self)
        self._stop_timer()
        del self.parser  # it refers back to this object: without the cycle, the object goes at once
        endpoint(scope, self.transport, rest)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _linger(self, response: bytes) -> None:
        """Send a response that ends the connection while the client may still be sending: a
        half-close, then its input is read and discarded until it closes, for at most
        ``close_timeout`` (closing a socket with unread input would reset it, and the client could
        lose the response)."""
        transport = self.transport
        if transport is None or transport.is_closing() or self.lingering:
            return
        self.lingering = True
        if response:
            transport.write(response)
        if self.read_paused:
            transport.resume_reading()
            self.read_paused = False
        if transport.can_write_eof():
            transport.write_eof()
            self._arm(self.limits.close_timeout, transport.abort)
        else:
            transport.close()

    def eof_received(self) -> bool:
        return False

    # Timers -----------------------------------------------------------------------------------

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` in ``delay`` seconds, unless armed again or disarmed before.

        One timer serves the deadlines as they move: arming again only moves the deadline, and a
        timer that comes due before it waits on for the rest. (A request arms up to three deadlines,
        and making and cancelling a timer costs 1.7 us on uvloop; moving a deadline, a clock read.)"""
        self.deadline = self.loop.time() + delay
        self.on_deadline = callback
        if self.timer is None or self.timer.when() > self.deadline:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(self.deadline, self._due)

    def _disarm(self) -> None:
        self.on_deadline = None
        if self.first_head:
            self.first_head = False
            self.state.first_heads.end(self)

    def _stop_timer(self) -> None:
        """No deadline any more, and no timer left holding on to the connection."""
        self._disarm()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _due(self) -> None:
        self.timer = None
        if self.on_deadline is None:
            return
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self._due)
            return
        callback, self.on_deadline = self.on_deadline, None
        callback()

    def first_head_late(self) -> None:
        """The shared deadline of the first head (:class:`ServerState`'s ``first_heads``) is past."""
        self.first_head = False
        self._head_timeout()

    def _head_timeout(self) -> None:
        if self.in_head:
            self._refuse(408, "request_timeout", f"the request head took over {self.limits.head_timeout:g} s")
        elif self.active is None:
            self.close()  # an idle keep-alive connection

    def _body_timeout(self) -> None:
        if self.cycle is not None and self.cycle.finished:
            self._linger(b"")  # the request is answered already; its body stopped arriving
            return
        self._refuse(408, "request_timeout", f"the request body stalled for {self.limits.body_timeout:g} s")

    # Parser callbacks -------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.claimed is not None or self.refused is not None:
            return
        self.url = b""
        self.headers = []
        self.header_count = 0
        self.head_size = 0
        self.in_head = True

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        self.head_size += len(name) + len(value) + 4
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.claimed is not None or self.refused is not None:
            return
        self.in_head = False
        self.head_bytes = 0
        limits = self.limits
        if self.header_count > limits.max_headers:
            self._refuse(431, "headers_too_large", f"more than {limits.max_headers} header fields")
            return
        if self.head_size > limits.max_header_bytes:
            self._refuse(431, "headers_too_large", f"the request head exceeds {limits.max_header_bytes} bytes")
            return
        self._disarm()
        scope = self._scope()
        endpoint = self.state.router(scope)
        if endpoint is not None:
            if self.active is not None:  # its socket cannot be handed over under a response being written
                self._refuse(400, "bad_request", "a stream request cannot be pipelined behind another request")
                return
            self.claimed = (endpoint, scope)
            return
        cycle = self.cycle = Cycle(self, scope, self.parser.should_keep_alive())
        if self.state.lean is not None and not cycle.expect_continue and cycle.sized:
            cycle.lean = self.state.lean(scope)
        if self.active is None:
            self._start(cycle)
        else:
            self.pipeline.append(cycle)
            self._update_reading()
        self._arm(limits.body_timeout, self._body_timeout)

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle is None or self.claimed is not None:
            return
        if cycle.finished:
            cycle.dropped += len(body)
            if cycle.dropped > DROP_LIMIT:
                self._linger(b"")  # not worth reading on: end the connection
            else:
                self._arm(self.limits.body_timeout, self._body_timeout)
            return
        cycle.body.append(bytes(body))
        cycle.buffered += len(body)
        cycle.wake()
        self._arm(self.limits.body_timeout, self._body_timeout)
        if cycle.buffered > BODY_HIGH_WATER and cycle.lean is None:  # a lean endpoint bounds what it takes
            self._update_reading()

    def on_message_complete(self) -> None:
        cycle = self.cycle
        if cycle is None or self.claimed is not None:
            return
        self.cycle = None
        cycle.complete = True
        cycle.wake()
        self._disarm()
        if cycle.lean is not None and self.active is cycle:
            self._respond(cycle)  # (its reply may come at once: then it serves the next request itself)
        elif cycle.finished and self.active is None and not self.lingering:
            self._next(cycle)  # the body of an answered request has gone by

    # Requests ---------------------------------------------------------------------------------

    def _scope(self) -> Scope:
        parsed = httptools.parse_url(self.url)
        raw_path = parsed.path
        path = raw_path.decode("ascii", "replace")
        if "%" in path:
            path = unquote(path)
        headers = self.headers
        host, port = self.peer or ("", 0)
        scheme = "http"
        proxies = self.state.proxies
        if proxies and proxies.trusts(host):
            forwarded = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-for"]
            client = proxies.client(host, forwarded)
            if client != host:
                host, port = client, 0
            for key, value in headers:
                if key == b"x-forwarded-proto" and value.strip().lower() in (b"http", b"https"):
                    scheme = value.strip().lower().decode()
        return {
            "type": "http", "asgi": ASGI, "http_version": self.parser.get_http_version(),
            "server": self.server, "client": (host, port), "scheme": scheme,
            "method": self.parser.get_method().decode("ascii"), "root_path": "", "path": path,
            "raw_path": raw_path, "query_string": parsed.query or b"", "headers": headers,
        }

    def _start(self, cycle: Cycle) -> None:
        self.active = cycle
        if cycle.lean is None:
            self._run(cycle.run(self.state.app))
        elif cycle.complete:
            self._respond(cycle)  # else once its body is in

    def _respond(self, cycle: Cycle) -> None:
        assert cycle.lean is not None
        cycle.respond(cycle.lean)

    def _run(self, coroutine: Coroutine[None, None, None]) -> None:
        task = self.loop.create_task(coroutine)
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    def finished(self, cycle: Cycle) -> None:
        """``cycle``'s response is complete: serve the next pipelined request, or wait for one."""
        self.active = None
        self.served = True
        if self.transport is None or self.transport.is_closing():
            return
        if not cycle.complete:  # answered before its body was read (a 401, a 413): the rest is dropped
            cycle.body.clear()
            cycle.buffered = 0
            if not cycle.keep_alive or self.state.stopping:
                self._linger(b"")
            else:
                self._update_reading()  # the next request is served once the body has gone by
            return
        self._next(cycle)

    def _next(self, cycle: Cycle) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if not cycle.keep_alive or self.state.stopping:
            self.close()
            return
        if self.pipeline:
            self._start(self.pipeline.popleft())
        elif self.refused is not None:
            self._linger(self.refused)
            return
        elif self.cycle is None:
            self._arm(self.limits.head_timeout, self._head_timeout)
        self._update_reading()

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer the request being read with an error and close, after the ones before it."""
        self.refused = error_response(status, code, message)
        self._disarm()
        self.in_head = False
        if self.cycle is not None and self.cycle is not self.active:
            if self.cycle in self.pipeline:
                self.pipeline.remove(self.cycle)
            self.cycle.disconnect()
        elif self.cycle is not None:
            self.cycle.disconnect()  # its body will not arrive
            if self.cycle.lean is not None:  # nothing was started for it
                self.cycle.finished = True
                self.active = None
        self.cycle = None
        if self.active is None:
            self._linger(self.refused)
        else:
            self._update_reading()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing() or self.lingering:
            return
        cycle = self.cycle
        pause = bool(self.pipeline) or self.refused is not None or (
            cycle is not None and cycle.buffered > BODY_HIGH_WATER)
        if pause and not self.read_paused:
            transport.pause_reading()
        elif not pause and self.read_paused:
            transport.resume_reading()
        self.read_paused = pause


class Cycle:
    """One request and its response, as an ASGI ``receive`` and ``send`` pair."""

    __slots__ = ("answered", "body", "buffered", "chunked", "complete", "conn", "delivered", "disconnected", "dropped",
                 "event", "expect_continue", "finished", "head_only", "keep_alive", "lean", "response_headers",
                 "scope", "sized", "started", "status")

    def __init__(self, conn: HttpConnection, scope: Scope, keep_alive: bool) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.body: list[bytes] = []
        self.buffered = 0
        self.dropped = 0  # body bytes that arrived after the response and were dropped
        self.complete = False  # the whole request body has arrived
        self.delivered = False  # ... and has been handed to the app
        self.disconnected = False
        self.event: asyncio.Event | None = None
        self.expect_continue = False
        self.sized = True  # the body has a Content-Length (or no body): it is not chunked
        for name, value in scope["headers"]:
            if name == b"expect":
                self.expect_continue = self.expect_continue or value.lower() == b"100-continue"
            elif name == b"transfer-encoding":
                self.sized = False
        self.lean: LeanEndpoint | None = None
        self.answered: asyncio.Future[None] | None = None  # the lean reply, awaited once the client left
        self.head_only = scope["method"] == "HEAD"
        self.started = False
        self.finished = False
        self.chunked = False
        self.status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []

    def wake(self) -> None:
        if self.event is not None:
            self.event.set()

    def disconnect(self) -> None:
        self.disconnected = True
        self.wake()
        if self.lean is not None and self.delivered and not self.finished and self.answered is None:
            self.answered = self.conn.loop.create_future()  # a shutdown waits for the reply
            self.conn.state.tasks.add(self.answered)

    async def run(self, app: ASGIApp) -> None:
        try:
            await app(self.scope, self.receive, self.send)
        except Exception as exc:
            self._failed(exc)
        else:
            if not self.finished:
                if not self.disconnected:
                    logger.error("request handler returned without a complete response: %s %s",
                                 self.scope["method"], self.scope["path"])
                self._fail()

    def _failed(self, exc: BaseException) -> None:
        """The handler raised ``exc``."""
        if self.disconnected:
            logger.debug("request handler failed after the client left", exc_info=exc)
        else:
            logger.error("request handler failed: %s %s", self.scope["method"], self.scope["path"], exc_info=exc)
        self._fail()

    def _fail(self) -> None:
        conn = self.conn
        if not self.started and not self.disconnected and conn.transport is not None:
            conn.transport.write(error_response(500, "internal_error", "the request failed"))
        self.finished = True
        self.disconnected = True
        conn.active = None
        if conn.refused is not None:
            conn._linger(conn.refused)  # the limit that cut this request short answers it
        else:
            conn.close()

    def respond(self, lean: LeanEndpoint) -> None:
        """Hand the request, its whole body in, to the lean endpoint that takes it."""
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        self.buffered = 0
        self.delivered = True
        try:
            lean(self.scope, body, self.reply)
        except Exception as exc:
            self._failed(exc)

    def reply(self, answer: LeanAnswer | BaseException) -> None:
        """The lean endpoint's answer: written in one write."""
        if self.answered is not None:
            self.answered.set_result(None)
            self.conn.state.tasks.discard(self.answered)
        if isinstance(answer, BaseException):
            self._failed(answer)
            return
        status, fields, content = answer
        conn = self.conn
        if self.disconnected or conn.transport is None:
            self._fail()
            return
        self.started = self.finished = True
        if not self.keep_alive or conn.state.stopping:
            self.keep_alive = False
            fields += b"connection: close\r\n"
        if conn.state.access_log:
            self._log(status)
        conn.transport.write(b"%s%scontent-length: %d\r\n\r\n%s" % (status_line(status), fields, len(content),
                                                                       content))
        conn.finished(self)

    async def receive(self) -> Message:
        if self.expect_continue:
            self.expect_continue = False
            if not self.complete and not self.body and self.conn.transport is not None:
                self.conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while not self.disconnected and not self.finished and not self.body and (self.delivered or not self.complete):
            if self.event is None:
                self.event = asyncio.Event()
            await self.event.wait()
            self.event.clear()
        if self.disconnected or (self.finished and not self.body):
            return {"type": "http.disconnect"}
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        self.buffered = 0
        self.conn._update_reading()
        more = not self.complete
        self.delivered = not more
        return {"type": "http.request", "body": body, "more_body": more}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.disconnected:
            return
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(f"expected http.response.start, got {kind}")
            self.started = True
            self.status = int(message["status"])
            self.response_headers = list(message.get("headers", []))
            return
        if self.finished or kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind} after the response")
        transport = self.conn.transport
        assert transport is not None
        body: bytes = message.get("body", b"")
        more = bool(message.get("more_body", False))
        data = []
        if self.status:
            data.append(self._head(body, more))
            self.status = 0
        if body and not self.head_only:
            data.append(b"%x\r\n%s\r\n" % (len(body), body) if self.chunked else body)
        if not more:
            self.finished = True
            if self.chunked and not self.head_only:
                data.append(b"0\r\n\r\n")
        transport.write(b"".join(data))
        if self.finished:
            self.conn.finished(self)
        else:
            await self.conn.drain()

    def _head(self, body: bytes, more: bool) -> bytes:
        status = self.status
        lines = [status_line(status)]
        has_length = False
        for name, value in self.response_headers:
            lower = name.lower()
            if lower == b"content-length":
                has_length = True
            elif lower == b"connection" and value.lower() == b"close":
                self.keep_alive = False
            lines.append(b"%s: %s\r\n" % (name, value))
        bodiless = status < 200 or status in (204, 304)
        if not has_length and not bodiless:
            if not more:
                lines.append(b"content-length: %d\r\n" % len(body))
            elif self.scope["http_version"] == "1.1":
                self.chunked = True
                lines.append(b"transfer-encoding: chunked\r\n")
            else:
                self.keep_alive = False
        if not self.keep_alive or self.conn.state.stopping:
            self.keep_alive = False
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        if self.conn.state.access_log:
            self._log(status)
        return b"".join(lines)

    def _log(self, status: int) -> None:
        scope = self.scope
        host, port = scope["client"]
        query = scope["query_string"]
        target = scope["path"] + ("?" + query.decode("latin-1") if query else "")
        access_logger.info('%s - "%s %s HTTP/%s" %d', f"{host}:{port}", scope["method"], target,
                           scope["http_version"], status)

