"""Publishing and live delivery over SSE and WebSocket, against a real hub process."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from .utils import QUIET, TIMEOUT, HubProcess, publish, sse_stream, ws_client


async def test_publish_answers_with_position(client: httpx.AsyncClient) -> None:
    first = await publish(client, "orders", "payment.created", {"amount": 5})
    second = await publish(client, "orders", "payment.created", {"amount": 6})
    assert first["channel"] == "orders"
    assert second["epoch"] == first["epoch"]
    assert second["offset"] == first["offset"] + 1
    assert first["id"].startswith("evt_")
    assert second["cursor"] == f"{second['epoch']}.{second['offset']}"


async def test_batch_publish_is_ordered(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/channels/b/events", json={"events": [{"type": "a"}, {"type": "b"}]})
    assert response.status_code == 202
    offsets = [e["offset"] for e in response.json()["events"]]
    assert offsets == [1, 2]


async def test_sse_receives_live_events(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with sse_stream(hub.url, ["orders"]) as stream:
        sent = await publish(client, "orders", "payment.created", {"amount": 5}, meta={"source": "test"})
        (event,) = await stream.events(1)
    assert event["id"] == sent["id"]
    assert event["type"] == "payment.created"
    assert event["data"] == {"amount": 5}
    assert event["meta"] == {"source": "test"}
    assert event["offset"] == sent["offset"]
    assert stream.last_id == sent["cursor"]


async def test_sse_headers_suit_proxies(hub: HubProcess) -> None:
    async with sse_stream(hub.url, ["x"]) as stream:
        headers = stream.response.headers
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["cache-control"] == "no-cache, no-transform"
        assert headers["x-accel-buffering"] == "no"
        assert "content-encoding" not in headers
        await stream.started()
        assert stream.parser.retry is not None


async def test_sse_several_channels_and_type_filter(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with sse_stream(hub.url, ["a", "b"], types=["payment.*"]) as stream:
        await publish(client, "a", "payment.created", 1)
        await publish(client, "b", "refund.created", 2)
        await publish(client, "b", "payment.failed", 3)
        await publish(client, "c", "payment.created", 4)
        events = await stream.events(2)
        await stream.quiet(QUIET)
    assert [(e["channel"], e["data"]) for e in events] == [("a", 1), ("b", 3)]


async def test_websocket_json_subscribe_publish(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with ws_client(hub.ws_url) as ws:
        reply = await ws.subscribe("chat")
        assert reply["cursor"].endswith(".0")
        published = await ws.request(op="publish", channel="chat", event={"type": "message", "data": "hi"})
        assert published["op"] == "published" and published["offset"] == 1
        pushed = await ws.recv()
    assert pushed["op"] == "event"
    assert pushed["channel"] == "chat"
    assert pushed["cursor"] == published["cursor"]
    assert pushed["event"]["data"] == "hi"


async def test_websocket_subscribes_to_the_channels_in_its_url(hub: HubProcess, client: httpx.AsyncClient) -> None:
    url = hub.ws_url + "?channel=url-one,url-two&type=keep.*"
    async with ws_client(url) as first, ws_client(url) as second:  # the first follows new channels, the second not
        for ws in (first, second):
            replies = [await ws.recv(), await ws.recv()]
            assert [(r["op"], r["id"], r["channel"]) for r in replies] == [
                ("subscribed", None, "url-one"), ("subscribed", None, "url-two")]
            assert all(r["cursor"].endswith(".0") for r in replies)
        await publish(client, "url-two", "drop.me", 0)
        await publish(client, "url-two", "keep.me", 1)
        for ws in (first, second):
            pushed = await ws.recv()
            assert (pushed["channel"], pushed["event"]["data"]) == ("url-two", 1)
        again = await first.request(op="subscribe", channel="url-one")
        assert (again["op"], again["code"]) == ("error", "bad_request")


@pytest.mark.parametrize(("query", "code"), [
    ("channel=bad%20name", "bad_channel"),
    ("channel=a,b&cursor=k3j9x2ab.1", "bad_request"),
])
async def test_a_bad_subscription_in_the_url_gets_an_error_and_keeps_the_connection(
        hub: HubProcess, query: str, code: str) -> None:
    async with ws_client(hub.ws_url + "?" + query) as ws:
        reply = await ws.recv()
        assert (reply["op"], reply["id"], reply["code"]) == ("error", None, code)
        assert (await ws.request(op="ping"))["op"] == "pong"


async def test_websocket_msgpack(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with ws_client(hub.ws_url, binary=True) as ws:
        assert ws.ws.subprotocol == "pushhub.msgpack"
        await ws.subscribe("bin")
        await publish(client, "bin", "t", {"n": 1})
        pushed = await ws.recv()
        assert pushed["event"]["data"] == {"n": 1}
        assert (await ws.request(op="ping"))["op"] == "pong"


async def test_websocket_subscribe_unsubscribe_at_any_time(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with ws_client(hub.ws_url) as ws:
        await ws.subscribe("one")
        await ws.subscribe("two", types=["keep.*"])
        await publish(client, "two", "drop.me", 0)
        await publish(client, "two", "keep.me", 1)
        await publish(client, "one", "x", 2)
        got = [await ws.recv(), await ws.recv()]
        assert [(m["channel"], m["event"]["data"]) for m in got] == [("two", 1), ("one", 2)]
        assert (await ws.request(op="unsubscribe", channel="one"))["op"] == "unsubscribed"
        await publish(client, "one", "x", 3)
        await publish(client, "two", "keep.it", 4)
        message = await ws.recv()
        assert (message["channel"], message["event"]["data"]) == ("two", 4)


async def test_concurrent_publishers_same_order_for_everyone(hub: HubProcess, client: httpx.AsyncClient) -> None:
    count = 50
    async with sse_stream(hub.url, ["race"]) as one, sse_stream(hub.url, ["race"]) as two, \
            ws_client(hub.ws_url) as ws:
        await ws.subscribe("race")
        await one.started()
        await two.started()

        async def publisher(n: int) -> None:
            async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as c:
                for i in range(count):
                    await publish(c, "race", "t", f"{n}-{i}")

        await asyncio.gather(*(publisher(n) for n in range(4)))
        seen_one = [e["data"] for e in await one.events(4 * count)]
        seen_two = [e["data"] for e in await two.events(4 * count)]
        seen_ws = [(await ws.recv())["event"]["data"] for _ in range(4 * count)]
    assert seen_one == seen_two == seen_ws
    assert sorted(seen_one) == sorted(f"{n}-{i}" for n in range(4) for i in range(count))


async def test_stats_and_metrics_count_what_happened(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with sse_stream(hub.url, ["counted"]) as one, ws_client(hub.ws_url) as ws:
        await ws.subscribe("counted")
        await publish(client, "counted", "t", 1)
        await one.events(1)
        await ws.recv()
        stats = (await client.get("/v1/stats")).json()
        metrics = (await client.get("/metrics")).text
    assert stats["published"] == 1 and stats["delivered"] == 2
    assert stats["sse_connections"] == 1 and stats["ws_connections"] == 1 and stats["active_channels"] == 1
    assert "pushhub_events_published_total 1.0" in metrics
    assert "pushhub_deliveries_total 2.0" in metrics
