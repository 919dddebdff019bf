"""The admin views of the log and the webhook additions the dashboard uses, against a real hub on every
backend: channels by pattern in pages, the event index with provenance (HTTP publish, WebSocket publish,
ingest, repeats), an event's page with its deliveries and attempts (request headers masked), an
endpoint's minute counters and backlog, a test send, and attempts filtered by outcome."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from .utils import TIMEOUT, HubProcess, publish, sse_stream, ws_client
from .webhook_utils import Reply, eventually, receiver

ADMIN, PUBLISHER = "admin-key-for-admin-api", "publisher-key-for-admin-api"
GITHUB_SECRET = "gh-secret"
INGEST = f"""
[sources.github]
scheme = "github"
secrets = ["{GITHUB_SECRET}"]
channel = "gh"
"""


def identity(key: str) -> str:
    return "key:" + hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def admin_hub(hub_factory: Callable[..., HubProcess], backend: str, tmp_path: Path) -> HubProcess:
    config = tmp_path / "ingest.toml"
    config.write_text(INGEST)
    return hub_factory("--admin-key", ADMIN, "--publisher-key", PUBLISHER, "--ingest-config", str(config),
                       "--webhook-allow-network", "127.0.0.0/8", "--webhook-retry-schedule", "", backend=backend)


def as_admin(hub: HubProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT, headers={"authorization": f"Bearer {ADMIN}"})


async def test_provenance_of_each_way_in_and_what_subscribers_see(admin_hub: HubProcess) -> None:
    async with as_admin(admin_hub) as admin, httpx.AsyncClient(
            base_url=admin_hub.url, timeout=TIMEOUT, headers={"authorization": f"Bearer {PUBLISHER}"}) as publisher:
        async with sse_stream(admin_hub.url, ["orders"], headers={"authorization": f"Bearer {ADMIN}"}) as live:
            await live.started()
            keyed = {"idempotency-key": "order-7"}
            first = await publisher.post("/v1/channels/orders/events", json={"type": "order.created"}, headers=keyed)
            for _ in range(2):
                again = await publisher.post("/v1/channels/orders/events", json={"type": "order.created"},
                                             headers=keyed)
                assert again.headers["idempotent-replayed"] == "true"
            (seen,) = await live.events(1)
            assert set(seen) == {"id", "channel", "type", "time", "data", "meta", "epoch", "offset"}
        async with ws_client(admin_hub.ws_url, headers={"authorization": f"Bearer {PUBLISHER}"}) as ws:
            sent = await ws.request(op="publish", channel="orders", event={"type": "order.paid", "id": "evt_ws"})
            assert sent["op"] == "published"
        body = b'{"action": "opened"}'
        signature = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
        ingested = await admin.post("/v1/ingest/github", content=body, headers={
            "x-hub-signature-256": signature, "x-github-delivery": "gh-delivery-1", "x-github-event": "issues",
            "content-type": "application/json"})
        assert ingested.status_code == 202, ingested.text

        page = (await admin.get(f"/v1/admin/events/{first.json()['id']}")).json()
        (found,) = page["found"]
        assert found["origin"] == {"via": "api", "publisher": identity(PUBLISHER)} and found["repeats"] == 2
        assert found["cursor"] == first.json()["cursor"] and found["event"]["type"] == "order.created"
        (ws_found,) = (await admin.get("/v1/admin/events", params={"id": "evt_ws"})).json()["data"]
        assert ws_found["origin"] == {"via": "websocket", "publisher": identity(PUBLISHER)}
        (gh,) = (await admin.get(f"/v1/admin/events/{ingested.json()['id']}")).json()["found"]
        assert gh["origin"] == {"via": "ingest", "source": "github", "scheme": "github",
                                "delivery_id": "gh-delivery-1"}
        by_type = (await admin.get("/v1/admin/events", params={"type": "order.paid"})).json()["data"]
        assert [f["event"]["id"] for f in by_type] == ["evt_ws"]

        assert (await admin.get("/v1/admin/events/evt_none")).status_code == 404
        assert (await admin.get("/v1/admin/events", params={"id": "a", "type": "b"})).status_code == 400
        assert (await admin.get("/v1/admin/events", params={"type": "bad type"})).status_code == 400
        assert (await publisher.get("/v1/admin/events", params={"id": "evt_ws"})).status_code == 403
        assert (await publisher.get("/v1/admin/channels", headers={"authorization": "Bearer wrong"})).status_code \
            == 401


async def test_channels_by_pattern_in_pages(admin_hub: HubProcess) -> None:
    async with as_admin(admin_hub) as admin:
        for name in ["shop.a", "shop.b", "shop.c", "other"]:
            await publish(admin, name, "t")
        await publish(admin, "shop.a", "t")
        first = (await admin.get("/v1/admin/channels", params={"pattern": "shop.*", "limit": 2})).json()
        assert [c["channel"] for c in first["data"]] == ["shop.a", "shop.b"] and first["next_after"] == "shop.b"
        assert first["data"][0]["top"] == 2 and first["data"][0]["per_minute"] == 2
        assert first["data"][0]["cursor"] == f"{first['data'][0]['epoch']}.2"
        rest = (await admin.get("/v1/admin/channels", params={"pattern": "shop.*", "after": "shop.b"})).json()
        assert [c["channel"] for c in rest["data"]] == ["shop.c"] and rest["next_after"] is None
        assert (await admin.get("/v1/admin/channels", params={"pattern": "bad pattern"})).status_code == 400
        async with sse_stream(admin_hub.url, ["other"], headers={"authorization": f"Bearer {ADMIN}"}) as live:
            await live.started()
            (other,) = (await admin.get("/v1/admin/channels", params={"pattern": "oth*"})).json()["data"]
            assert other["subscriptions"] == 1


async def test_event_page_deliveries_attempts_stats_and_test_send(admin_hub: HubProcess) -> None:
    async with receiver(lambda n: Reply(500 if n == 0 else 200, body=b"received")) as server, \
            as_admin(admin_hub) as admin:
        created = await admin.post("/v1/webhooks/endpoints", json={
            "url": server.url, "channels": ["pay"], "headers": {"authorization": "Bearer sk_live_0123456789"}})
        endpoint = created.json()
        sent = await publish(admin, "pay", "payment.created", {"n": 1})
        await server.wait_for(1)
        failed = await eventually(lambda: admin.get("/v1/webhooks/deliveries", params={"status": "failed"}),
                                  lambda r: len(r.json()["data"]) == 1)
        await admin.post(f"/v1/webhooks/deliveries/{failed.json()['data'][0]['id']}/replay")
        await server.wait_for(2)
        page = await eventually(lambda: admin.get(f"/v1/admin/events/{sent['id']}"),
                                lambda r: len(r.json()["deliveries"][0]["attempts_log"]) == 2)
        (delivery,) = page.json()["deliveries"]
        assert delivery["status"] == "succeeded" and [a["status"] for a in delivery["attempts_log"]] == [200, 500]
        shown = delivery["attempts_log"][0]["request_headers"]
        assert shown["authorization"] == "Bear…" and shown["webhook-id"] == sent["id"]
        assert shown["webhook-signature"] == "v1,…" and "sk_live" not in str(page.json())
        received = server.requests[1].headers
        assert received["webhook-signature"].startswith("v1,") and received["webhook-signature"] != "v1,…"

        ok = (await admin.get("/v1/webhooks/attempts", params={"endpoint": endpoint["id"], "status": "succeeded"}))
        assert [a["status"] for a in ok.json()["data"]] == [200]
        bad = (await admin.get("/v1/webhooks/attempts", params={"status": "failed", "limit": 1})).json()
        assert [a["status"] for a in bad["data"]] == [500]
        assert (await admin.get("/v1/webhooks/attempts", params={"status": "nope"})).status_code == 400

        stats = (await admin.get(f"/v1/webhooks/endpoints/{endpoint['id']}/stats")).json()
        assert sum(m["succeeded"] for m in stats["minutes"]) == 1 and sum(m["failed"] for m in stats["minutes"]) == 1
        assert stats["pending"] == 0 and stats["next_attempt_at"] is None
        assert (await admin.get(f"/v1/webhooks/endpoints/{endpoint['id']}/stats",
                                params={"minutes": "0"})).status_code == 400

        tested = (await admin.post(f"/v1/webhooks/endpoints/{endpoint['id']}/test")).json()
        assert tested["status"] == 200 and tested["succeeded"] and tested["response"] == "received"
        assert tested["request_headers"]["webhook-signature"] == "v1,…"
        probe = (await server.wait_for(3))[2]
        assert probe.json()["type"] == "pushhub.test" and probe.headers["webhook-id"] == tested["event_id"]
        assert (await admin.get("/v1/admin/events", params={"type": "pushhub.test"})).json()["data"] == []
        attempts = (await admin.get("/v1/webhooks/attempts", params={"endpoint": endpoint["id"]})).json()["data"]
        assert len(attempts) == 2  # the test send recorded nothing
        custom = await admin.post(f"/v1/webhooks/endpoints/{endpoint['id']}/test",
                                  json={"type": "custom.check", "data": {"x": 1}})
        assert custom.json()["status"] == 200 and (await server.wait_for(4))[3].json()["data"] == {"x": 1}
        assert (await admin.post(f"/v1/webhooks/endpoints/{endpoint['id']}/test", json={"nope": 1})).status_code == 422
        assert (await admin.post("/v1/webhooks/endpoints/ep_none/test")).status_code == 404
