"""The limits of the hub's HTTP server, on raw sockets against a real hub: head size and header
count (431), the head and body deadlines (408), and that a limit never costs an accepted request its
answer. Plus what the server must do for plain HTTP: keep-alive, pipelining, 100-continue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import httpx
import orjson
import pytest

from .utils import TIMEOUT, HubProcess

DEADLINE = TIMEOUT / 10


@pytest.fixture(scope="module")
def limited_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    log = str(tmp_path_factory.mktemp("limits") / "hub.log")
    hub = HubProcess(["--memory", "--head-timeout", str(DEADLINE), "--body-timeout", str(DEADLINE),
                      "--max-header-bytes", "8192", "--max-headers", "50"], log_path=log).start()
    yield hub
    hub.stop()


@contextlib.asynccontextmanager
async def raw(hub: HubProcess) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), TIMEOUT)
    return int(status_line.split()[1]), headers, body


async def at_eof(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), TIMEOUT) == b""
    except ConnectionResetError:
        return True


def publish_request(channel: str, data: int) -> bytes:
    body = orjson.dumps({"type": "t", "data": data})
    return (f"POST /v1/channels/{channel}/events HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


async def test_a_head_over_the_size_limit_gets_431(limited_hub: HubProcess) -> None:
    async with raw(limited_hub) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
        status, headers, body = await read_response(reader)
        assert status == 431
        assert orjson.loads(body)["error"]["code"] == "headers_too_large"
        assert headers["connection"] == "close"
        assert await at_eof(reader)


async def test_a_huge_header_is_not_read_into_memory(limited_hub: HubProcess) -> None:
    """64 MiB of one header: the hub answers 431 after about max-header-bytes, long before the end."""
    async with raw(limited_hub) as (reader, writer):
        answer = asyncio.ensure_future(read_response(reader))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        with contextlib.suppress(ConnectionError):
            while sent < 64 << 20 and not answer.done():
                writer.write(b"a" * (1 << 20))
                await asyncio.wait_for(writer.drain(), TIMEOUT)
                sent += 1 << 20
        assert (await answer)[0] == 431
    assert sent < 64 << 20


async def test_too_many_headers_get_431_and_a_few_are_fine(limited_hub: HubProcess) -> None:
    async with raw(limited_hub) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(48))
                     + b"\r\n")
        assert (await read_response(reader))[0] == 200
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(50))
                     + b"\r\n")
        assert (await read_response(reader))[0] == 431


async def test_a_head_that_stops_arriving_gets_408(limited_hub: HubProcess) -> None:
    async with raw(limited_hub) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        status, _, body = await read_response(reader)
        assert status == 408
        assert orjson.loads(body)["error"]["code"] == "request_timeout"
        assert await at_eof(reader)


async def test_an_idle_keep_alive_connection_is_closed_quietly(limited_hub: HubProcess) -> None:
    async with raw(limited_hub) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # no 408 for a request never begun


async def test_a_body_that_stops_arriving_gets_408_and_publishes_nothing(limited_hub: HubProcess) -> None:
    async with raw(limited_hub) as (reader, writer):
        request = publish_request("stalled", 1)
        writer.write(request[:-5])
        status, _, _ = await read_response(reader)
        assert status == 408
    async with httpx.AsyncClient(base_url=limited_hub.url, timeout=TIMEOUT) as client:
        assert (await client.get("/v1/channels/stalled")).json()["top"] == 0


async def test_a_limit_on_a_pipelined_request_keeps_the_answers_before_it(limited_hub: HubProcess) -> None:
    async with raw(limited_hub) as (reader, writer):
        writer.write(publish_request("pipelined", 1) + publish_request("pipelined", 2)
                     + b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        first, second, third = [await read_response(reader) for _ in range(3)]
        assert (first[0], second[0], third[0]) == (202, 202, 431)
        assert [orjson.loads(r[2])["offset"] for r in (first, second)] == [1, 2]


async def test_pipelined_requests_are_answered_in_order(limited_hub: HubProcess) -> None:
    async with raw(limited_hub) as (reader, writer):
        writer.write(b"".join(publish_request("ordered", i) for i in range(5)))
        offsets = [orjson.loads((await read_response(reader))[2])["offset"] for _ in range(5)]
        assert offsets == [1, 2, 3, 4, 5]


async def test_expect_100_continue(limited_hub: HubProcess) -> None:
    body = orjson.dumps({"type": "t", "data": 1})
    async with raw(limited_hub) as (reader, writer):
        writer.write(f"POST /v1/channels/continued/events HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                     f"content-length: {len(body)}\r\nexpect: 100-continue\r\n\r\n".encode())
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        assert (await read_response(reader))[0] == 202


async def test_a_malformed_request_gets_400(limited_hub: HubProcess) -> None:
    async with raw(limited_hub) as (reader, writer):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n")
        assert (await read_response(reader))[0] == 400


async def test_a_client_leaving_mid_body_is_no_error(limited_hub: HubProcess) -> None:
    async with raw(limited_hub) as (reader, writer):
        writer.write(publish_request("left", 1)[:-3])
        await writer.drain()
    async with raw(limited_hub) as (reader, writer):
        writer.write(publish_request("left", 2))
        status, _, body = await read_response(reader)
        assert (status, orjson.loads(body)["offset"]) == (202, 1)  # the cut-off request published nothing
    assert "Traceback" not in limited_hub.log()
    assert "ERROR" not in limited_hub.log()


async def test_a_stream_request_pipelined_behind_another_is_refused_after_its_answer(limited_hub: HubProcess) -> None:
    async with raw(limited_hub) as (reader, writer):
        writer.write(publish_request("behind", 1) + b"GET /v1/sse?channel=behind HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader))[0] == 202
        assert (await read_response(reader))[0] == 400


async def test_a_request_answered_before_its_body_keeps_the_connection(limited_hub: HubProcess) -> None:
    """Like a 401 or 404 sent on the head alone: the body that follows is dropped, and the next
    request on the connection is served (a client reusing it must not find it closed)."""
    async with raw(limited_hub) as (reader, writer):
        writer.write(b"POST /v1/nowhere HTTP/1.1\r\nHost: x\r\ncontent-length: 5000\r\n\r\n")
        assert (await read_response(reader))[0] == 404
        writer.write(b"x" * 5000 + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader))[0] == 200


async def test_a_body_refused_413_on_its_length_keeps_the_connection(limited_hub: HubProcess) -> None:
    size = 2 << 20
    async with raw(limited_hub) as (reader, writer):
        writer.write(b"POST /v1/channels/big/events HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\n\r\n" % size)
        assert (await read_response(reader))[0] == 413
        writer.write(b"x" * size + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader))[0] == 200


async def test_connections_that_send_nothing_are_closed_at_the_head_deadline(limited_hub: HubProcess) -> None:
    """The first head's deadline is one the connections share: every silent connection is closed
    at it, beside one whose head arrived in time and is answered."""
    async with contextlib.AsyncExitStack() as stack:
        silent = [await stack.enter_async_context(raw(limited_hub)) for _ in range(20)]
        reader, writer = await stack.enter_async_context(raw(limited_hub))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        assert all(await asyncio.gather(*(at_eof(r) for r, _ in silent)))
