"""The WebSocket frame reader (pure): client frames as bytes in, messages and control frames out."""

from __future__ import annotations

import os
import struct

import pytest

from pushhub.protocol import OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, FrameError, FrameReader


def client_frame(payload: bytes, opcode: int = OP_TEXT, *, fin: bool = True, mask: bool = True,
                 rsv: int = 0) -> bytes:
    """A frame as a client sends it, masked with a random key."""
    first = (0x80 if fin else 0) | rsv | opcode
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", first, (0x80 if mask else 0) | length)
    elif length < 65536:
        head = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, length)
    else:
        head = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536])
def test_unmasks_messages_of_every_length_form(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    assert FrameReader().feed(client_frame(payload, OP_BINARY)) == [(OP_BINARY, payload)]


def test_frames_split_anywhere_and_several_per_read() -> None:
    data = client_frame(b'{"op":"ping"}') + client_frame(b"\x01\x02", OP_BINARY) + client_frame(b"x" * 300)
    reader = FrameReader()
    out = []
    for i in range(len(data)):
        out += reader.feed(data[i : i + 1])
    assert out == [(OP_TEXT, b'{"op":"ping"}'), (OP_BINARY, b"\x01\x02"), (OP_TEXT, b"x" * 300)]
    assert FrameReader().feed(data) == out


def test_fragments_are_joined_and_control_frames_may_interleave() -> None:
    data = (client_frame(b"hel", fin=False) + client_frame(b"ping", OP_PING)
            + client_frame(b"lo", opcode=0, fin=False) + client_frame(b"!", opcode=0))
    assert FrameReader().feed(data) == [(OP_PING, b"ping"), (OP_TEXT, b"hello!")]


VIOLATIONS = {
    "unmasked": (client_frame(b"x", mask=False), 1002),
    "reserved bits": (client_frame(b"x", rsv=0x40), 1002),
    "continuation first": (client_frame(b"x", opcode=0), 1002),
    "unknown opcode": (client_frame(b"x", opcode=0x3), 1002),
    "unfinished message": (client_frame(b"a", fin=False) + client_frame(b"b"), 1002),
    "long ping": (client_frame(b"x" * 126, OP_PING), 1002),
    "fragmented close": (client_frame(b"\x03\xe8", OP_CLOSE, fin=False), 1002),
    "too big": (client_frame(b"x" * 201), 1009),
    "too big in fragments": (client_frame(b"x" * 120, fin=False) + client_frame(b"x" * 120, opcode=0), 1009),
}


@pytest.mark.parametrize(("data", "code"), VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_framing_violations_name_their_close_code(data: bytes, code: int) -> None:
    with pytest.raises(FrameError) as caught:
        FrameReader(max_size=200).feed(data)
    assert caught.value.close_code == code
