"""Following a channel again right after leaving it (a client reconnecting, a quick unsubscribe)."""

from __future__ import annotations

import httpx

from .utils import HubProcess, publish, ws_client


async def test_subscribe_right_after_unsubscribe_stays_subscribed(hub: HubProcess,
                                                                  client: httpx.AsyncClient) -> None:
    async with ws_client(hub.ws_url) as ws:
        await ws.subscribe("again")
        await ws.send(op="unsubscribe", channel="again")
        await ws.subscribe("again")
        sent = await publish(client, "again", "t", "still here")
        while (message := await ws.recv())["op"] != "event":
            assert message["op"] == "unsubscribed", message
    assert message["event"]["id"] == sent["id"]
