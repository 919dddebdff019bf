"""RFC 6455 conformance over raw sockets: every case of the table is sent to a real hub and to a
``websockets`` reference server in the same test, and both must answer it the same way.

An outcome is what a client can observe: the pongs it gets, the close code the server sends (or an
empty close), and whether the server then drops the connection. Data frames are left out (the hub
answers every message, the reference server only the probe). After the case's bytes the client
sends a probe, the hub's ``ping`` message: its answer proves the server handled everything before it
and kept the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import struct
from collections.abc import AsyncIterator, Iterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from .utils import TIMEOUT, HubProcess, free_port
from .ws_raw import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    client_frame,
    close_payload,
    open_raw,
    read_frame,
)

MAX_SIZE = 4096  # the hub's --max-body-bytes, which is also its WebSocket message limit
CLOSE_TIMEOUT = TIMEOUT / 5

PROBE = b'{"op":"ping","id":"probe"}'
PROBE_ANSWER = b'{"op":"pong","id":"probe"}'
Outcome = tuple[object, ...]


def f(payload: bytes, opcode: int = OP_TEXT, **kwargs: object) -> bytes:
    return client_frame(payload, opcode, **kwargs)  # type: ignore[arg-type]


def fragments_of(payload: bytes, opcode: int, count: int) -> bytes:
    size = -(-len(payload) // count)
    parts = [payload[i : i + size] for i in range(0, len(payload), size)]
    return b"".join(f(part, opcode if i == 0 else OP_CONT, fin=i == len(parts) - 1) for i, part in enumerate(parts))


def split(data: bytes, *cuts: int) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000]
VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999]

CASES: dict[str, bytes | list[bytes]] = {
    # Fragmentation
    "fragmented text": f(b"hel", fin=False) + f(b"lo ", OP_CONT, fin=False) + f(b"world", OP_CONT),
    "fragmented binary": f(b"\x00\x01", OP_BINARY, fin=False) + f(b"\x02", OP_CONT),
    "empty fragments": f(b"", fin=False) + f(b"", OP_CONT, fin=False) + f(b"", OP_CONT),
    "ping between fragments": f(b"a", fin=False) + f(b"p1", OP_PING) + f(b"b", OP_CONT, fin=False)
    + f(b"p2", OP_PING) + f(b"c", OP_CONT),
    "utf-8 split across fragments": f(b"\xc3", fin=False) + f(b"\xa9", OP_CONT),
    "utf-8 split in three": f(b"\xf0\x9f", fin=False) + f(b"\x98", OP_CONT, fin=False) + f(b"\x80", OP_CONT),
    "invalid utf-8 across fragments": f(b"\xce\xba\xe1", fin=False) + f(b"\xbd\xb9\xf4\x90\x80\x80", OP_CONT),
    "invalid utf-8 in a text frame": f(b"\xff\xfe"),
    "truncated utf-8 at the end": f(b"ok\xe2\x82"),
    "continuation without a message": f(b"x", OP_CONT),
    "new message during a fragmented one": f(b"a", fin=False) + f(b"b"),
    "close during a fragmented message": f(b"a", fin=False) + f(close_payload(1000), OP_CLOSE),
    # Reserved bits and opcodes
    "rsv1": f(b"x", rsv=0x40),
    "rsv2": f(b"x", rsv=0x20),
    "rsv3": f(b"x", rsv=0x10),
    "rsv on a ping": f(b"x", OP_PING, rsv=0x40),
    **{f"reserved opcode {op:#x}": f(b"x", op) for op in (0x3, 0x7, 0xB, 0xF)},
    # Control frames
    "empty ping": f(b"", OP_PING),
    "ping of 125 bytes": f(b"p" * 125, OP_PING),
    "ping of 126 bytes": f(b"p" * 126, OP_PING),
    "fragmented ping": f(b"x", OP_PING, fin=False),
    "unsolicited pong": f(b"hi", OP_PONG),
    "fragmented close": f(close_payload(1000), OP_CLOSE, fin=False),
    # Masking
    "unmasked text": f(b"x", mask=False),
    "unmasked ping": f(b"x", OP_PING, mask=False),
    "unmasked close": f(close_payload(1000), OP_CLOSE, mask=False),
    # Length forms and message size
    "16-bit length": f(b"x" * 300),
    "64-bit length": f(b"x" * 70, length_form=127),
    "16-bit length for a short frame": f(b"x" * 10, length_form=126),
    "message of exactly the limit": f(b"x" * MAX_SIZE, OP_BINARY),
    "message one byte over the limit": f(b"x" * (MAX_SIZE + 1), OP_BINARY),
    "fragments over the limit together": fragments_of(b"x" * (MAX_SIZE + 10), OP_BINARY, 4),
    "fragments at the limit together": fragments_of(b"x" * MAX_SIZE, OP_BINARY, 4),
    "huge 64-bit length": struct.pack("!BBQ", 0x82, 0xFF, 1 << 62) + b"\x00\x00\x00\x00",
    # Closing (§5.5.1, §7.4, §8.1)
    "empty close": f(b"", OP_CLOSE),
    "close with a 1-byte payload": f(b"\x03", OP_CLOSE),
    **{f"close code {code}": f(close_payload(code), OP_CLOSE) for code in INVALID_CODES + VALID_CODES},
    "close with a reason": f(close_payload(1000, b"bye"), OP_CLOSE),
    "close with a 123-byte reason": f(close_payload(1000, b"r" * 123), OP_CLOSE),
    "close with a non-utf-8 reason": f(close_payload(1000, b"\xff\xfe"), OP_CLOSE),
    "ping after close": f(close_payload(1000), OP_CLOSE) + f(b"late", OP_PING),
    "text after close": f(close_payload(1000), OP_CLOSE) + f(b"late"),
    # Several frames per write, one frame over several writes
    "pipelined frames": f(b"a", OP_PING) + f(b"message") + f(b"b", OP_PING),
    "frames before a violation in the same read": f(b"first", OP_PING) + f(b"x", mask=False),
    "ping split byte by byte": [bytes([b]) for b in f(b"split", OP_PING)],
    "fragments split across writes": split(f(b"ab", fin=False) + f(b"cd", OP_CONT) + f(b"w", OP_PING), 3, 12),
}


async def outcome(port: int, data: bytes | list[bytes]) -> Outcome:
    reader, writer = await open_raw(port, path="/v1/ws")
    seen: list[object] = []
    try:
        for chunk in [data] if isinstance(data, bytes) else data:
            writer.write(chunk)
            await writer.drain()
        with contextlib.suppress(ConnectionError):
            writer.write(f(PROBE))
            await writer.drain()
        while True:
            try:
                opcode, payload = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                seen.append("dropped without a close frame")
                return tuple(seen)
            if opcode == OP_TEXT and payload == PROBE_ANSWER:
                seen.append("open")
                return tuple(seen)
            if opcode == OP_PONG:
                seen.append(("pong", payload))
            elif opcode == OP_CLOSE:
                seen.append(("close", struct.unpack("!H", payload[:2])[0] if payload else None))
                try:
                    rest = await asyncio.wait_for(reader.read(), TIMEOUT)
                except ConnectionResetError:  # the probe was unread when the server closed: a reset, not a FIN
                    rest = b""
                seen.append("eof" if not rest else "more data")
                return tuple(seen)
    finally:
        writer.close()


@pytest.fixture(scope="module")
def conformance_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    log = str(tmp_path_factory.mktemp("conformance") / "hub.log")
    hub = HubProcess(["--memory", "--max-body-bytes", str(MAX_SIZE), "--close-timeout", str(CLOSE_TIMEOUT)],
                     log_path=log).start()
    yield hub
    hub.stop()


async def _answer_the_probe(ws: ServerConnection) -> None:
    async for message in ws:
        if message == PROBE.decode():
            await ws.send(PROBE_ANSWER.decode())


@contextlib.asynccontextmanager
async def reference_server() -> AsyncIterator[int]:
    """The ``websockets`` library's own server, configured like the hub."""
    port = free_port()
    async with serve(_answer_the_probe, "127.0.0.1", port, max_size=MAX_SIZE, subprotocols=["pushhub.json"],
                     ping_interval=None, close_timeout=CLOSE_TIMEOUT, compression=None):
        yield port


RFC = {
    "close with a 1-byte payload": (("close", 1002), "eof"),
    "close code 999": (("close", 1002), "eof"),
    "close code 1005": (("close", 1002), "eof"),
    "close code 4999": (("close", 4999), "eof"),
    "close with a non-utf-8 reason": (("close", 1007), "eof"),
    "empty close": (("close", None), "eof"),
    "invalid utf-8 across fragments": (("close", 1007), "eof"),
    "invalid utf-8 in a text frame": (("close", 1007), "eof"),
    "truncated utf-8 at the end": (("close", 1007), "eof"),
    "fragments split across writes": (("pong", b"w"), "open"),
    "message one byte over the limit": (("close", 1009), "eof"),
    "ping between fragments": (("pong", b"p1"), ("pong", b"p2"), "open"),
    "frames before a violation in the same read": (("pong", b"first"), ("close", 1002), "eof"),
    "ping split byte by byte": (("pong", b"split"), "open"),
}
"""What RFC 6455 itself requires in some of the cases. The hub must give exactly that; the
reference may not (websockets 13.0's server answers invalid UTF-8 with 1011 instead of 1007)."""


@pytest.mark.parametrize("name", CASES)
async def test_the_hub_answers_like_the_reference(conformance_hub: HubProcess, name: str) -> None:
    async with reference_server() as port:
        reference = await outcome(port, CASES[name])
    answer = await outcome(conformance_hub.port, CASES[name])
    assert answer == RFC.get(name, reference), f"reference: {reference}"
