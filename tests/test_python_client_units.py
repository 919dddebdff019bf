"""The Python client's pure parts on plain values, and its reconnect decisions over a scripted
transport (httpx.MockTransport) where a real hub cannot be made to misbehave on cue."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pushhub_client
import pytest
from pushhub_client import Backoff, Client, Disconnected, Event, RequestRejected, Reset
from pushhub_client._client import websocket_url
from pushhub_client._models import should_reconnect
from pushhub_client._sse import SSEDecoder, SSEMessage


def test_the_client_under_test_is_this_checkout() -> None:
    assert Path(pushhub_client.__file__).resolve().is_relative_to(Path(__file__).resolve().parent.parent)


def test_backoff_grows_caps_and_jitters() -> None:
    low = Backoff(initial=0.1, maximum=1.0, factor=2.0, jitter=0.5, random=lambda: 0.0)
    assert [low.delay(n) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    high = Backoff(initial=0.1, maximum=1.0, factor=2.0, jitter=0.5, random=lambda: 1.0)
    assert high.delay(0) == pytest.approx(0.05) and high.delay(10_000) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        Backoff(initial=2, maximum=1)


@pytest.mark.parametrize(("code", "expected"), [
    (4000, True), (4001, True), (4499, True), (4500, False), (4503, False),
    (1000, True), (1001, True), (1006, True), (1011, True), (1008, False), (1003, False),
])
def test_close_codes(code: int, expected: bool) -> None:
    assert should_reconnect(code) is expected


def test_sse_decoder_follows_eventsource_rules() -> None:
    decoder = SSEDecoder()
    lines = ["retry: 2000", "id: k.0", "", ": heartbeat", "", "id: k.1", "data: {\"a\":", "data: 1}", "",
             "event: reset", "data: {}", "unknown: x", "", "id: bad\0id", "data: x", ""]
    messages = [m for m in (decoder.line(line) for line in lines) if m is not None]
    assert messages == [SSEMessage("message", '{"a":\n1}', "k.1"), SSEMessage("reset", "{}", "k.1"),
                        SSEMessage("message", "x", "k.1")]
    assert decoder.retry_ms == 2000


def test_websocket_url() -> None:
    assert websocket_url("https://hub.example/") == "wss://hub.example/v1/ws"
    assert websocket_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/v1/ws"
    with pytest.raises(ValueError):
        websocket_url("hub.example")


EVENT = ('{"id":"e%d","channel":"c","type":"t","time":"2026-01-01T00:00:00.000Z","data":%d,"meta":{},'
         '"epoch":"k","offset":%d}')


def stream(*frames: str) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content="".join(frames).encode())


def scripted(*responses: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return httpx.MockTransport(handler), seen


def client_for(transport: httpx.MockTransport, sleeps: list[float]) -> Client:
    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    return Client("http://hub.test", transport=transport, sleep=sleep,
                  backoff=Backoff(initial=1.0, maximum=8.0, jitter=0.0))


async def collect(client: Client, expect: type[Exception], **kwargs: object) -> list[Event | Reset]:
    items: list[Event | Reset] = []
    with pytest.raises(expect):
        async for item in client.subscribe("c", **kwargs):  # type: ignore[arg-type]
            items.append(item)
    return items


async def test_sse_reconnects_on_advice_and_stops_when_told() -> None:
    transport, requests = scripted(
        httpx.Response(503, headers={"retry-after": "3"}),
        stream("retry: 100\nid: k.0\n\n", f"id: k.1\ndata: {EVENT % (1, 1, 1)}\n\n",
               'event: disconnect\ndata: {"code":4000,"reason":"shutdown","reconnect":true}\n\n'),
        stream("id: k.1\n\n",
               'id: k.5\nevent: reset\ndata: {"channel":"c","reason":"history_trimmed","cursor":"k.5"}\n\n',
               f"id: k.6\ndata: {EVENT % (6, 6, 6)}\n\n",
               'event: disconnect\ndata: {"code":4501,"reason":"unauthorized","reconnect":false}\n\n'),
    )
    sleeps: list[float] = []
    async with client_for(transport, sleeps) as client:
        items = await collect(client, Disconnected)
    assert [type(i).__name__ for i in items] == ["Event", "Reset", "Event"]
    assert isinstance(items[0], Event) and items[0].cursor == "k.1"
    assert items[1] == Reset("c", "history_trimmed", "k.5")
    assert [r.headers.get("last-event-id") for r in requests] == [None, None, "k.1"]
    assert [r.url.params.get_list("channel") for r in requests] == [["c"]] * 3
    # Retry-After wins over the first backoff step; after a stream was accepted the backoff restarts.
    assert sleeps == [3.0, 1.0]


async def test_sse_stream_cut_without_advice_backs_off_exponentially() -> None:
    transport, requests = scripted(stream("id: k.2\n\n"), httpx.Response(502), httpx.Response(502),
                                   httpx.Response(400, json={"error": {"code": "bad_channel", "message": "no"}}))
    sleeps: list[float] = []
    async with client_for(transport, sleeps) as client:
        await collect(client, RequestRejected, cursor="k.1")
    assert [r.headers.get("last-event-id") for r in requests] == ["k.1", "k.2", "k.2", "k.2"]
    assert sleeps == [1.0, 2.0, 4.0]


async def test_publish_rejection_keeps_hub_error_code() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": {"code": "bad_event", "message": "needs a type"}})

    async with Client("http://hub.test", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RequestRejected) as exc:
            await client.publish("c", "t")
    assert (exc.value.status, exc.value.code, exc.value.detail) == (422, "bad_event", "needs a type")


def test_client_needs_channels_and_takes_single_names() -> None:
    client = Client("http://hub.test")
    subscription = client.subscribe("orders", types="payment.*")
    assert (subscription.channels, subscription.types) == (("orders",), ("payment.*",))
    assert client.subscribe_ws("orders", types="payment.*").types == ("payment.*",)
    subscribe: Callable[..., object]
    for subscribe in (client.subscribe, client.subscribe_ws):
        with pytest.raises(ValueError):
            subscribe([])


async def test_token_provider_is_asked_before_every_connection() -> None:
    transport, requests = scripted(
        stream("id: k.1\n\n", 'event: disconnect\ndata: {"code":4002,"reason":"token_expired","reconnect":true}\n\n'),
        stream("id: k.1\n\n", 'event: disconnect\ndata: {"code":4501,"reason":"unauthorized","reconnect":false}\n\n'),
        httpx.Response(202, json={"id": "e", "channel": "c", "epoch": "k", "offset": 2, "cursor": "k.2"}),
    )
    issued = iter(["token-1", "token-2", "token-3"])

    async def fresh_token() -> str:
        return next(issued)

    async with Client("http://hub.test", transport=transport, token_provider=fresh_token,
                      backoff=Backoff(initial=0.0, maximum=0.0)) as client:
        with pytest.raises(Disconnected):
            async for _ in client.subscribe("c"):
                pass
        await client.publish("c", "t")
    assert [r.headers["authorization"] for r in requests] == ["Bearer token-1", "Bearer token-2", "Bearer token-3"]
    with pytest.raises(ValueError):
        Client("http://hub.test", key="k", token_provider=fresh_token)
