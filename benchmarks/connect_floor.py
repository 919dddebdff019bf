"""The connect floor: what a connect costs the stack under the hub (uvloop, httptools, one write)
with nothing of the hub on top, measured beside the hub in the same run.

    python -m benchmarks.connect_floor --transport ws --runs 3 --nice -10 [--nchan]

The bare server parses each request head with httptools as the hub does, then answers a WebSocket
with a ``101`` carrying its ``Sec-WebSocket-Accept`` and a ``subscribed`` frame, or an SSE request
with the stream's head and a first frame, in one write, and keeps the socket open; that is what
:mod:`benchmarks.connect`'s generator waits for from pushhub. The two servers take turns
``--runs`` times, with nginx+Nchan third if ``--nchan`` (the other options are
:mod:`benchmarks.connect`'s); each run is saved to ``benchmarks/results/connect.jsonl`` with its
``tree`` (``bare``, ``this`` or ``nchan``), and the medians and ranges are printed side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import sys
from collections.abc import Callable

import httptools
import uvloop

from benchmarks import connect
from benchmarks.loadgen import Hub, ServerProcess, free_port
from benchmarks.nchan import Nchan

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUBSCRIBED = b'{"op":"subscribed","id":null,"channel":"c","cursor":"x"}'
SSE_ANSWER = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
              b"transfer-encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(b"id: x\n\n"), b"id: x\n\n"))
HEALTHY = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"


class BareStream(asyncio.Protocol):
    """One connection: the head parsed, one answer written, then the socket held open."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.key = b""
        self.answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.answered:
            return
        with contextlib.suppress(httptools.HttpParserUpgrade):  # a WebSocket's head: answered already
            self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"sec-websocket-key":
            self.key = value

    def on_headers_complete(self) -> None:
        assert self.transport is not None
        self.answered = True
        if self.url.startswith(b"/v1/ws"):
            accept = base64.b64encode(hashlib.sha1(self.key + GUID).digest())
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                 b"Sec-WebSocket-Accept: %s\r\n\r\n\x81%c%s" % (accept, len(SUBSCRIBED), SUBSCRIBED))
        elif self.url.startswith(b"/v1/sse"):
            self.transport.write(SSE_ANSWER)
        else:
            self.transport.write(HEALTHY)
            self.transport.close()


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(BareStream, "127.0.0.1", port, backlog=2048)
    await server.serve_forever()


class BareServer(ServerProcess):
    """The bare server in a process of its own, answering as pushhub does (its dialect)."""

    def __init__(self) -> None:
        self.port = free_port()

    def start(self) -> BareServer:
        self.launch([sys.executable, "-m", "benchmarks.connect_floor", "--serve", str(self.port)],
                    f"http://{self.host}:{self.port}/healthz", "bare server")
        return self


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the bare server itself
    parser.add_argument("--nchan", action="store_true", help="nginx+Nchan too, third in each run")
    own, rest = parser.parse_known_args(argv)
    if own.serve:
        uvloop.run(serve(own.serve))
        return 0
    args = connect.parse_args(rest)
    servers: dict[str, Callable[[], ServerProcess]] = {
        "bare": BareServer, "this": lambda: Hub(storage=args.storage, extra_args=args.hub_arg)}
    if own.nchan:
        servers["nchan"] = Nchan
    return connect.finish(args, connect.interleaved(args, servers))


if __name__ == "__main__":
    sys.exit(main())
