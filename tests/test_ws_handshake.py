"""The hub's own answer to a plain WebSocket handshake against the library's, on plain values.

:func:`pushhub.websocket.plain_handshake` must answer a request exactly as
``ServerProtocol.accept`` does (:func:`pushhub.websocket.handshake`), or not at all: every variant
below, built from the values of each field the library reads (absent, repeated, odd, invalid),
is given to both."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from pushhub.websocket import handshake, plain_handshake

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ABSENT = None
Values = list[bytes | tuple[bytes, ...] | None]

CONNECTION: Values = [b"Upgrade", b"upgrade", b"UPGRADE", b"keep-alive, Upgrade", b"Upgrade,keep-alive",
                      b"keep-alive,\tupgrade", b"keep-alive", b"", b"Upgrade, ", b",Upgrade", b"up grade",
                      b"Upgrade;q=1", ABSENT, (b"keep-alive", b"Upgrade")]
UPGRADE: Values = [b"websocket", b"WebSocket", b"websocket/13", b"h2c", b"websocket, h2c", b"", ABSENT,
                   (b"websocket", b"websocket")]
KEYS: Values = [KEY, b"AAAAAAAAAAAAAAAAAAAAAB==", b"AAAAAAAAAAAAAAAAAAAAAA", b"dGhlIHNhbXBsZSBub25jZQ=",
                b"dGhlIHNhbXBsZSBub25jZQ===", b"dGhlIHNhbXBsZSBub25jZQ==x", b"dGhlIHNhbXBsZSBub25j ZQ==",
                b"dGhlIHNhbXBsZSBub25jZQ\xe9=", b"c2hvcnQ=", b"AAAAAAAAAAAAAAAAAAAAAAA=", ABSENT, (KEY, KEY)]
VERSION: Values = [b"13", b"8", b"13, 8", b"013", b"", ABSENT, (b"13", b"13")]
PROTOCOL: Values = [ABSENT, b"pushhub.json", b"pushhub.msgpack", b"pushhub.msgpack, pushhub.json",
                    b"pushhub.json,pushhub.msgpack", b"chat", b"chat, pushhub.json", b"pushhub.json, ", b", chat",
                    b"pushhub.json chat", b"", b"Pushhub.JSON", b"pushhub.json;v=1", (b"chat", b"pushhub.json")]
EXTENSIONS: Values = [ABSENT, b"permessage-deflate; client_max_window_bits", b"x-unknown", b";;;,",
                      (b"permessage-deflate", b"permessage-deflate")]
OTHER = [(b"host", b"hub.example"), (b"origin", b"https://app.example"), (b"user-agent", b"test")]


def fields(name: bytes, value: bytes | tuple[bytes, ...] | None) -> list[tuple[bytes, bytes]]:
    if value is None:
        return []
    return [(name, v) for v in (value if isinstance(value, tuple) else (value,))]


def requests() -> Iterator[list[tuple[bytes, bytes]]]:
    """Every combination of the connection, upgrade, subprotocol and extension values with a valid
    key and version, and every key and version with the others plain."""
    for connection, upgrade, protocol, extensions in itertools.product(CONNECTION, UPGRADE, PROTOCOL, EXTENSIONS):
        yield [*OTHER, *fields(b"upgrade", upgrade), *fields(b"connection", connection),
               (b"sec-websocket-key", KEY), (b"sec-websocket-version", b"13"),
               *fields(b"sec-websocket-protocol", protocol), *fields(b"sec-websocket-extensions", extensions)]
    for key, version, protocol in itertools.product(KEYS, VERSION, PROTOCOL[:3]):
        yield [*OTHER, (b"upgrade", b"websocket"), (b"connection", b"Upgrade"), *fields(b"sec-websocket-key", key),
               *fields(b"sec-websocket-version", version), *fields(b"sec-websocket-protocol", protocol)]


def without_date(response: bytes) -> tuple[bytes, list[bytes]]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    dates = [line for line in lines if line.startswith(b"Date: ")]
    assert len(dates) == 1
    return b"\r\n".join(line for line in lines if not line.startswith(b"Date: ")) + b"\r\n\r\n" + body, dates


def test_the_plain_handshake_answers_as_the_library_does() -> None:
    plain = 0
    for headers in requests():
        expected, subprotocol, accepted = handshake("/v1/ws?channel=a", headers)
        ours = plain_handshake(headers)
        if ours is None:
            continue
        plain += 1
        assert accepted, headers
        response, chosen = ours
        assert without_date(response)[0] == without_date(expected)[0], headers
        assert chosen == subprotocol, headers
    # the fast path is not vacuous: the 6 well-formed connection values that name upgrade, the 2
    # spellings of websocket and the 8 subprotocol offers that are plain token lists, with every
    # extension offer; and the 2 keys that decode to 16 bytes with version 13
    assert plain == 6 * 2 * 8 * 5 + 2 * 3


def test_the_plain_handshake_takes_what_clients_send() -> None:
    base = [(b"host", b"hub.example"), (b"upgrade", b"websocket"), (b"sec-websocket-key", KEY),
            (b"sec-websocket-version", b"13")]
    browser = [*base, (b"connection", b"Upgrade"),
               (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits")]
    firefox = [*base, (b"connection", b"keep-alive, Upgrade"), (b"sec-websocket-protocol", b"pushhub.msgpack")]
    for headers in (browser, firefox):
        ours = plain_handshake(headers)
        assert ours is not None
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in ours[0]  # RFC 6455 §1.3
    assert plain_handshake(firefox) is not None and plain_handshake(firefox)[1] == "pushhub.msgpack"  # type: ignore[index]


def test_the_date_is_an_http_date_of_now() -> None:
    ours = plain_handshake([(b"upgrade", b"websocket"), (b"connection", b"upgrade"), (b"sec-websocket-key", KEY),
                            (b"sec-websocket-version", b"13")])
    assert ours is not None
    expected, _, _ = handshake("/", [(b"upgrade", b"websocket"), (b"connection", b"upgrade"),
                                     (b"sec-websocket-key", KEY), (b"sec-websocket-version", b"13")])
    ((ours_date,), (library_date,)) = without_date(ours[0])[1], without_date(expected)[1]
    assert ours_date[:-12] == library_date[:-12]  # the same day (the clock may tick between the two)
    assert ours_date.endswith(b" GMT")
