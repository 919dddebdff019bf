"""Hostile numbers and times on the HTTP API of a real hub: each one is answered 4xx with the error
shape, and nothing accepted before is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest

from .utils import QUIET, TIMEOUT, HubProcess

HUGE = "9" * 5000  # more digits than Python's int() parses (4300)
TIME_10000 = "9999-12-31T23:59:59-23:59"  # a valid RFC 3339 text, in the year 10000 in UTC


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    tmp = tmp_path_factory.mktemp("bad-input")
    config = tmp / "ingest.toml"
    config.write_text('[sources.open]\nscheme = "none"\nchannel = "ingested"\n')
    process = HubProcess(["--data-dir", str(tmp / "data"), "--ingest-config", str(config)],
                         log_path=str(tmp / "hub.log")).start()
    yield process
    process.stop()


@pytest.fixture
async def client(hub: HubProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as c:
        yield c


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["message"]
    return dict(error)


async def raw_post(hub: HubProcess, path: str, content_length: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """A POST with a ``Content-Length`` header written by hand (HTTP clients compute their own)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {content_length}\r\nConnection: close\r\n\r\n".encode() + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), orjson.loads(payload)


async def test_content_length_with_thousands_of_digits(hub: HubProcess, client: httpx.AsyncClient) -> None:
    status, answer = await raw_post(hub, "/v1/ingest/open", "0" * 4400 + "17", b'{"type":"padded"}')
    assert status == 202, answer
    status, answer = await raw_post(hub, "/v1/ingest/open", "1" + "0" * 18, b"{}")
    assert status == 413 and answer["error"]["code"] == "payload_too_large", answer
    events = (await client.get("/v1/channels/ingested/events")).json()["events"]
    assert [e["type"] for e in events] == ["padded"]


@pytest.mark.parametrize("path", ["/v1/channels/orders/events", "/v1/webhooks/deliveries",
                                  "/v1/webhooks/attempts"])
@pytest.mark.parametrize("limit", [HUGE, "0" * 5000 + "1001", "1001", "0"])
async def test_limit_out_of_range(client: httpx.AsyncClient, path: str, limit: str) -> None:
    assert "limit" in assert_error(await client.get(path, params={"limit": limit}), 400)["message"]


async def test_padded_limit_in_range(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/channels/orders/events", params={"limit": "0" * 5000 + "10"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/v1/webhooks/deliveries", "/v1/webhooks/attempts"])
@pytest.mark.parametrize("before", [str(10**30), str(1 << 63), HUGE])
async def test_before_beyond_any_sequence(client: httpx.AsyncClient, path: str, before: str) -> None:
    assert "before" in assert_error(await client.get(path, params={"before": before}), 400)["message"]


async def test_before_at_the_largest_sequence(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/webhooks/deliveries", params={"before": str((1 << 63) - 1)})
    assert response.status_code == 200, response.text


async def test_event_time_beyond_year_9999(client: httpx.AsyncClient) -> None:
    one = await client.post("/v1/channels/times/events", json={"type": "t", "time": TIME_10000})
    assert "time" in assert_error(one, 422)["message"]
    batch = await client.post("/v1/channels/times/events",
                              json={"events": [{"type": "t"}, {"type": "t", "time": "0001-01-01T00:00:00+01:00"}]})
    assert "events[1]" in assert_error(batch, 422)["message"]
    assert (await client.get("/v1/channels/times")).json()["top"] == 0


async def test_replay_since_beyond_year_9999(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/webhooks/endpoints", json={"url": "https://example.com/hook"})
    assert created.status_code == 201, created.text
    endpoint = created.json()["id"]
    try:
        replay = await client.post(f"/v1/webhooks/endpoints/{endpoint}/replay", json={"since": TIME_10000})
        assert "time" in assert_error(replay, 422)["message"]
    finally:
        assert (await client.delete(f"/v1/webhooks/endpoints/{endpoint}")).status_code == 204


async def test_client_leaving_mid_body(hub: HubProcess, client: httpx.AsyncClient) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(b"POST /v1/channels/left/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{\"type\":")
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(QUIET)  # the hub notices the close on its own time; nothing to await
    assert (await client.get("/v1/channels/left")).json()["top"] == 0


def test_hub_log_has_no_traceback(hub: HubProcess) -> None:
    """Runs after the tests above: none of their bad input made the hub log a traceback."""
    assert "Traceback" not in hub.log()


@pytest.mark.parametrize("host", ["10.1", "0x0a000001", "167772161", "127.1", "0"])
async def test_shorthand_forbidden_address_refused_at_registration(client: httpx.AsyncClient, host: str) -> None:
    response = await client.post("/v1/webhooks/endpoints", json={"url": f"http://{host}/hook"})
    assert "address" in assert_error(response, 422)["message"]
    assert host not in (await client.get("/v1/webhooks/endpoints")).text
