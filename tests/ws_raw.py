"""A WebSocket client with no library, for frames a library would refuse to send: raw client
frames, the opening handshake on a plain socket, and reading the server's frames."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

from .utils import TIMEOUT

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def client_frame(payload: bytes, opcode: int = OP_TEXT, *, fin: bool = True, mask: bool = True,
                 rsv: int = 0, length_form: int | None = None) -> bytes:
    """A frame as a client sends it, masked with a random key. ``length_form`` (126 or 127) forces
    a longer length encoding than the payload needs."""
    first = (0x80 if fin else 0) | rsv | opcode
    length = len(payload)
    bit = 0x80 if mask else 0
    form = length_form or (length if length < 126 else 126 if length < 65536 else 127)
    if form < 126:
        head = struct.pack("!BB", first, bit | length)
    elif form == 126:
        head = struct.pack("!BBH", first, bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, bit | 127, length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


async def open_raw(port: int, path: str = "/v1/ws", subprotocol: str | None = "pushhub.json",
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    offer = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    writer.write((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next server frame as ``(opcode, payload)``; raises IncompleteReadError at EOF."""
    first, second = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", await reader.readexactly(8))[0]
    return first & 0x0F, await asyncio.wait_for(reader.readexactly(length), TIMEOUT)


async def read_close(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    while True:
        opcode, payload = await read_frame(reader)
        if opcode == OP_CLOSE:
            return struct.unpack("!H", payload[:2])[0], payload[2:]
