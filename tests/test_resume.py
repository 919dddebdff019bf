"""Exact resume: every missed event once, in order, then live — or an in-band reset."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from .utils import QUIET, TIMEOUT, HubProcess, publish, sse_stream, ws_client


async def test_sse_resume_one_channel_with_last_event_id(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with sse_stream(hub.url, ["r"]) as stream:
        await publish(client, "r", "t", 1)
        await stream.events(1)
        cursor = stream.last_id
    for n in (2, 3, 4):
        await publish(client, "r", "t", n)
    async with sse_stream(hub.url, ["r"], last_event_id=cursor) as stream:
        missed = await stream.events(3)
        await publish(client, "r", "t", 5)
        (live,) = await stream.events(1)
    assert [e["data"] for e in missed] == [2, 3, 4]
    assert live["data"] == 5


async def test_sse_resume_from_initial_cursor_before_any_event(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with sse_stream(hub.url, ["quiet"]) as stream:
        cursor = stream.last_id
    assert cursor is not None
    await publish(client, "quiet", "t", "while away")
    async with sse_stream(hub.url, ["quiet"], query_cursor=cursor) as stream:
        (event,) = await stream.events(1)
    assert event["data"] == "while away"


async def test_sse_resume_several_channels_exactly(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with sse_stream(hub.url, ["m1", "m2", "m3"]) as stream:
        await publish(client, "m1", "t", "a1")
        await publish(client, "m2", "t", "b1")
        await stream.events(2)
        cursor = stream.last_id
    await publish(client, "m2", "t", "b2")
    await publish(client, "m1", "t", "a2")
    await publish(client, "m3", "t", "c1")
    await publish(client, "m1", "t", "a3")
    async with sse_stream(hub.url, ["m1", "m2", "m3"], last_event_id=cursor) as stream:
        missed = await stream.events(4)
        await stream.quiet(QUIET)
        cursor2 = stream.last_id
    per_channel: dict[str, list[str]] = {}
    for event in missed:
        per_channel.setdefault(event["channel"], []).append(event["data"])
    assert per_channel == {"m1": ["a2", "a3"], "m2": ["b2"], "m3": ["c1"]}
    await publish(client, "m3", "t", "c2")
    async with sse_stream(hub.url, ["m1", "m2", "m3"], last_event_id=cursor2) as stream:
        assert [e["data"] for e in await stream.events(1)] == ["c2"]
        await stream.quiet(QUIET)


async def test_sse_resume_with_new_channel_added(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with sse_stream(hub.url, ["old"]) as stream:
        cursor = stream.last_id
    await publish(client, "old", "t", "missed")
    await publish(client, "new", "t", "before subscribing")
    async with sse_stream(hub.url, ["old", "new"], query_cursor=cursor) as stream:
        assert [e["data"] for e in await stream.events(1)] == ["missed"]
        await publish(client, "new", "t", "live")
        assert [e["data"] for e in await stream.events(1)] == ["live"]


async def test_websocket_resume_with_cursor(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with ws_client(hub.ws_url) as ws:
        await ws.subscribe("w")
        await publish(client, "w", "t", 1)
        cursor = (await ws.recv())["cursor"]
    await publish(client, "w", "t", 2)
    await publish(client, "w", "t", 3)
    async with ws_client(hub.ws_url, binary=True) as ws:
        reply = await ws.subscribe("w", cursor=cursor)
        assert reply["cursor"] == cursor
        got = [await ws.recv(), await ws.recv()]
        assert [m["event"]["data"] for m in got] == [2, 3]
        assert got[-1]["cursor"].endswith(".3")


async def test_websocket_resume_with_a_cursor_in_the_url(hub: HubProcess, client: httpx.AsyncClient) -> None:
    async with ws_client(hub.ws_url + "?channel=wu") as ws:
        assert (await ws.recv())["op"] == "subscribed"
        await publish(client, "wu", "t", 1)
        cursor = (await ws.recv())["cursor"]
        await publish(client, "wu", "t", 2)
        await publish(client, "wu", "t", 3)
        async with ws_client(hub.ws_url + "?channel=wu&cursor=" + cursor) as resumed:
            reply = await resumed.recv()
            assert (reply["op"], reply["cursor"]) == ("subscribed", cursor)
            got = [await resumed.recv(), await resumed.recv()]
            assert [m["event"]["data"] for m in got] == [2, 3]


async def test_resume_while_publishing_has_no_gap_or_duplicate(hub: HubProcess, client: httpx.AsyncClient) -> None:
    """Resume while a publisher keeps going: history and live must meet exactly."""
    total = 300
    async with sse_stream(hub.url, ["flow"]) as stream:
        cursor = stream.last_id

    async def keep_publishing() -> None:
        async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as c:
            for i in range(total):
                await publish(c, "flow", "t", i)

    publisher = asyncio.create_task(keep_publishing())
    received: list[int] = []
    while len(received) < total:
        async with sse_stream(hub.url, ["flow"], last_event_id=cursor) as stream:
            for event in await stream.events(min(40, total - len(received)), timeout=4 * TIMEOUT):
                received.append(event["data"])
            cursor = stream.consumed_id  # the parser may already hold events not consumed yet
    await publisher
    assert received == list(range(total))


async def test_reset_when_cursor_older_than_retention(hub_factory: Callable[..., HubProcess], backend: str) -> None:
    hub = hub_factory("--retention", "5/1h", backend=backend)
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        async with sse_stream(hub.url, ["trim"]) as stream:
            await publish(client, "trim", "t", 0)
            await stream.events(1)
            cursor = stream.last_id
        for n in range(1, 11):
            await publish(client, "trim", "t", n)
        async with sse_stream(hub.url, ["trim"], last_event_id=cursor) as stream:
            reset, *events = await stream.events(6)
        history = (await client.get("/v1/channels/trim/events", params={"after": cursor})).json()
    assert reset["control"] == "reset"
    assert reset["channel"] == "trim" and reset["reason"] == "history_trimmed"
    assert [e["data"] for e in events] == [6, 7, 8, 9, 10]
    assert history["reset"] == "history_trimmed"
    assert [e["data"] for e in history["events"]] == [6, 7, 8, 9, 10]


async def test_reset_on_garbage_cursor_then_live(hub: HubProcess, client: httpx.AsyncClient) -> None:
    """A cursor that cannot be read, or names an offset past the top, resumes live: the reset hands
    out the channel's current position, and the next event follows it."""
    for n in range(3):
        await publish(client, "g", "t", n)
    state = (await client.get("/v1/channels/g")).json()
    live = f"{state['epoch']}.{state['top']}"
    async with sse_stream(hub.url, ["g"], last_event_id="not a cursor!") as stream:
        (reset,) = await stream.events(1)
        after = await publish(client, "g", "t", "after")
        (event,) = await stream.events(1)
    assert reset == {"control": "reset", "channel": "g", "reason": "bad_cursor", "cursor": live}
    assert event["data"] == "after" and event["offset"] == state["top"] + 1
    async with ws_client(hub.ws_url) as ws:
        await ws.subscribe("g", cursor=f"{state['epoch']}.999999")
        reset = await ws.recv()
        assert reset == {"op": "reset", "channel": "g", "reason": "bad_cursor", "cursor": after["cursor"]}


async def test_reset_on_another_epoch_replays_what_is_kept(hub: HubProcess, client: httpx.AsyncClient) -> None:
    first = await publish(client, "e", "t", 1)
    await publish(client, "e", "t", 2)
    async with ws_client(hub.ws_url) as ws:
        await ws.subscribe("e", cursor="zzzz.999999")
        reset = await ws.recv()
        replayed = [(await ws.recv())["event"]["data"] for _ in range(2)]
    assert reset == {"op": "reset", "channel": "e", "reason": "epoch_changed", "cursor": f"{first['epoch']}.0"}
    assert replayed == [1, 2]


async def test_history_pagination(hub: HubProcess, client: httpx.AsyncClient) -> None:
    for n in range(7):
        await publish(client, "h", "t", n)
    seen = []
    after = None
    while True:
        params = {"limit": "3", **({"after": after} if after else {})}
        page = (await client.get("/v1/channels/h/events", params=params)).json()
        seen += [e["data"] for e in page["events"]]
        after = page["cursor"]
        if not page["more"]:
            break
    assert seen == list(range(7))
    async with sse_stream(hub.url, ["h"], query_cursor=after) as stream:
        await publish(client, "h", "t", 7)
        assert [e["data"] for e in await stream.events(1)] == [7]


async def test_resume_after_hub_restart(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory(backend="sqlite")
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        async with sse_stream(hub.url, ["durable"]) as stream:
            await publish(client, "durable", "t", 1)
            await stream.events(1)
            cursor = stream.last_id
        await publish(client, "durable", "t", 2)
    hub.restart()
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        await publish(client, "durable", "t", 3)
        async with sse_stream(hub.url, ["durable"], last_event_id=cursor) as stream:
            assert [e["data"] for e in await stream.events(2)] == [2, 3]
            await stream.quiet(QUIET)


async def test_memory_hub_restart_means_epoch_changed(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory(backend="memory")
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client, \
            sse_stream(hub.url, ["volatile"]) as stream:
        await publish(client, "volatile", "t", 1)
        await stream.events(1)
        cursor = stream.last_id
    hub.restart()
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        await publish(client, "volatile", "t", "new epoch")
        async with sse_stream(hub.url, ["volatile"], last_event_id=cursor) as stream:
            reset, event = await stream.events(2)
    assert reset["reason"] == "epoch_changed"
    assert event["data"] == "new epoch"


async def test_quick_resubscribe_keeps_receiving(hub: HubProcess, client: httpx.AsyncClient) -> None:
    """The last subscriber leaves and a new one arrives at once: the channel stays live."""
    for round_ in range(5):
        async with ws_client(hub.ws_url) as ws:
            await ws.subscribe("flicker")
            assert (await ws.request(op="unsubscribe", channel="flicker"))["op"] == "unsubscribed"
            await ws.subscribe("flicker")
            await publish(client, "flicker", "t", round_)
            assert (await ws.recv())["event"]["data"] == round_
