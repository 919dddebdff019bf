"""Outgoing webhooks through a real hub process: the HTTP API and CLI, signatures checked with the
`standardwebhooks` package, and deliveries that survive the hub being killed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from .utils import TIMEOUT, HubProcess, publish
from .webhook_utils import Reply, eventually, receiver

ALLOW = ("--webhook-allow-network", "127.0.0.0/8")
KEY = "k3y"


def cli(hub: HubProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pushhub", *args, "--url", hub.url, "--key", KEY],
                          capture_output=True, text=True, timeout=4 * TIMEOUT)


def admin(hub: HubProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT, headers={"authorization": f"Bearer {KEY}"})


async def test_endpoint_api(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory(*ALLOW, "--admin-key", KEY)
    async with admin(hub) as client:
        response = await client.post("/v1/webhooks/endpoints", json={
            "url": "https://example.com/hook", "channels": ["orders"], "types": ["payment.*"], "description": "x"})
        assert response.status_code == 201, response.text
        endpoint = response.json()
        assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"] is True
        listed = (await client.get("/v1/webhooks/endpoints")).json()["data"]
        assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]
        shown = (await client.get(f"/v1/webhooks/endpoints/{endpoint['id']}")).json()
        assert shown["secret"] == endpoint["secret"]
        patched = await client.patch(f"/v1/webhooks/endpoints/{endpoint['id']}",
                                     json={"enabled": False, "rate_limit": 3})
        assert patched.status_code == 200 and patched.json()["enabled"] is False
        assert patched.json()["rate_limit"] == 3.0 and patched.json()["description"] == "x"
        rotated = (await client.post(f"/v1/webhooks/endpoints/{endpoint['id']}/rotate-secret", json={})).json()
        assert rotated["secret"] != endpoint["secret"] and len(rotated["old_secrets_expire_at"]) == 1
        for body, fragment in [({"url": "ftp://x"}, "absolute http(s) URL"),
                               ({"url": "http://10.1.1.1/"}, "private address"),
                               ({"url": "https://a.example", "secret": "nope"}, "whsec_"),
                               ({"url": "https://a.example", "types": ["a b"]}, "'types'")]:
            bad = await client.post("/v1/webhooks/endpoints", json=body)
            assert bad.status_code == 422 and fragment in bad.json()["error"]["message"], bad.text
        assert (await client.post("/v1/webhooks/endpoints", content=b"{")).status_code == 400
        assert (await client.get("/v1/webhooks/endpoints/ep_nope")).status_code == 404
        assert (await client.get("/v1/webhooks/deliveries", params={"status": "lost"})).status_code == 400
        assert (await client.delete(f"/v1/webhooks/endpoints/{endpoint['id']}")).status_code == 204
        assert (await client.get("/v1/webhooks/endpoints")).json()["data"] == []
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as anonymous:
        assert (await anonymous.get("/v1/webhooks/endpoints")).status_code == 401


async def test_cli_manages_endpoints_and_replays(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory(*ALLOW, "--admin-key", KEY, "--webhook-retry-schedule", "")
    async with receiver(lambda n: Reply(500 if n == 0 else 200)) as server, admin(hub) as client:
        created = cli(hub, "endpoints", "create", "--endpoint-url", server.url, "--channel", "orders",
                      "--header", "X-Team=billing")
        assert created.returncode == 0, created.stderr
        endpoint_id = httpx.Response(200, content=created.stdout).json()["id"]
        assert endpoint_id in cli(hub, "endpoints", "list").stdout
        bad = cli(hub, "endpoints", "create", "--endpoint-url", "ftp://nowhere")
        assert bad.returncode == 1 and bad.stdout == ""
        assert bad.stderr.startswith("pushhub: 422 invalid_endpoint: ") and "http(s) URL" in bad.stderr
        assert len(bad.stderr.splitlines()) == 1
        event = await publish(client, "orders", "payment.created", {"n": 1})
        (first,) = await server.wait_for(1)
        assert first.headers["x-team"] == "billing"
        await eventually(lambda: deliveries(client, endpoint=endpoint_id),
                         lambda found: [d["status"] for d in found] == ["failed"])
        listed = cli(hub, "deliveries", "list", "--endpoint", endpoint_id, "--status", "failed")
        assert listed.returncode == 0 and event["id"] in listed.stdout
        attempts = cli(hub, "attempts", "list", "--event", event["id"])
        assert '"status": 500' in attempts.stdout
        replayed = cli(hub, "deliveries", "replay", "--endpoint", endpoint_id, "--failed")
        assert replayed.returncode == 0 and '"replayed": 1' in replayed.stdout
        (_, second) = await server.wait_for(2)
        assert second.headers["webhook-id"] == first.headers["webhook-id"] == event["id"]
        updated = cli(hub, "endpoints", "update", endpoint_id, "--no-enabled")
        assert '"enabled": false' in updated.stdout
        deleted = cli(hub, "endpoints", "delete", endpoint_id)
        assert deleted.returncode == 0 and orjson.loads(deleted.stdout) == {"deleted": endpoint_id}
        missing = cli(hub, "endpoints", "show", endpoint_id)
        assert missing.returncode == 1 and missing.stderr.startswith("pushhub: 404 not_found: ")


async def test_signatures_verify_with_standardwebhooks(hub_factory: Callable[..., HubProcess], backend: str) -> None:
    hub = hub_factory(*ALLOW, backend=backend)
    async with receiver() as server, httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        endpoint = (await client.post("/v1/webhooks/endpoints", json={"url": server.url})).json()
        sent = await publish(client, "orders", "payment.created", {"amount": 5})
        (request,) = await server.wait_for(1)
        payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert payload["data"] == {"amount": 5} and payload["metadata"]["event_id"] == sent["id"]
        assert request.headers["user-agent"] == "pushhub/0.1.0"
        rotated = (await client.post(f"/v1/webhooks/endpoints/{endpoint['id']}/rotate-secret", json={})).json()
        await publish(client, "orders", "payment.created", {"amount": 6})
        (_, request) = await server.wait_for(2)
        Webhook(endpoint["secret"]).verify(request.body, request.headers)
        Webhook(rotated["secret"]).verify(request.body, request.headers)


async def deliveries(client: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    return list((await client.get("/v1/webhooks/deliveries", params=query)).json()["data"])


async def test_restart_in_the_middle_of_the_retry_schedule(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory(*ALLOW, "--webhook-retry-schedule", "1s,1s,1s")
    healthy = asyncio.Event()
    async with receiver(lambda n: Reply(200 if healthy.is_set() else 503)) as server, \
            httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        endpoint = (await client.post("/v1/webhooks/endpoints", json={"url": server.url})).json()
        sent = await publish(client, "orders")
        await eventually(lambda: deliveries(client), lambda found: found[0]["attempts"] == 1)
        hub.stop(9)  # killed mid-schedule: the retry is due in about a second
        healthy.set()
        hub.start()
        requests = await server.wait_for(2, timeout=4 * TIMEOUT)
        assert requests[-1].headers["webhook-id"] == sent["id"]
        assert requests[-1].json()["metadata"]["attempt"] == 2  # type: ignore[index]
        Webhook(endpoint["secret"]).verify(requests[-1].body, requests[-1].headers)
        async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as fresh:
            await eventually(lambda: deliveries(fresh), lambda found: found[0]["status"] == "succeeded")
            attempts = (await fresh.get("/v1/webhooks/attempts", params={"event": sent["id"]})).json()["data"]
        assert [a["status"] for a in attempts] == [200, 503]


async def test_no_accepted_event_is_lost_when_the_hub_is_killed(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory(*ALLOW)
    async with receiver() as server, httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        await client.post("/v1/webhooks/endpoints", json={"url": server.url})
        sent = [await publish(client, "orders", data=n) for n in range(40)]
        hub.stop(9)
        hub.start()
        expected = {s["id"] for s in sent}
        await server.wait_until(lambda requests: {r.headers["webhook-id"] for r in requests} >= expected,
                                timeout=4 * TIMEOUT)
        first = (await client.get("/v1/webhooks/deliveries", params={"limit": 25})).json()
        rest = (await client.get("/v1/webhooks/deliveries", params={"before": first["next_before"]})).json()
        assert rest["next_before"] is None
        assert {d["event_id"] for d in first["data"] + rest["data"]} == expected


async def test_ssrf_without_an_allowlist(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory()
    async with receiver() as server, httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        literal = await client.post("/v1/webhooks/endpoints", json={"url": server.url})
        assert literal.status_code == 422 and "loopback" in literal.json()["error"]["message"]
        mapped = await client.post("/v1/webhooks/endpoints", json={"url": "http://[::ffff:127.0.0.1]/"})
        assert mapped.status_code == 422 and "IPv4-mapped" in mapped.json()["error"]["message"]
        named = (await client.post("/v1/webhooks/endpoints",
                                   json={"url": f"http://localhost:{server.port}/hook"})).json()
        sent = await publish(client, "orders")

        async def attempts() -> list[dict[str, Any]]:
            response = await client.get("/v1/webhooks/attempts", params={"endpoint": named["id"]})
            return list(response.json()["data"])

        (attempt,) = await eventually(attempts)
        assert attempt["event_id"] == sent["id"] and attempt["status"] is None
        assert "is a loopback address" in attempt["error"]
        assert server.requests == []


async def test_https_only(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory("--webhook-https-only")
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        response = await client.post("/v1/webhooks/endpoints", json={"url": "http://example.com/hook"})
        assert response.status_code == 422 and "only https" in response.json()["error"]["message"]
        assert (await client.post("/v1/webhooks/endpoints", json={"url": "https://example.com/h"})).status_code == 201


def test_bad_webhook_settings_are_refused() -> None:
    result = subprocess.run([sys.executable, "-m", "pushhub", "serve", "--memory", "--webhook-retry-schedule", "soon"],
                            capture_output=True, text=True, timeout=4 * TIMEOUT)
    assert result.returncode == 2 and "invalid retry step 'soon'" in result.stderr


async def test_replay_api(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory(*ALLOW)
    async with receiver() as server, httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        endpoint = (await client.post("/v1/webhooks/endpoints", json={"url": server.url})).json()
        replay = f"/v1/webhooks/endpoints/{endpoint['id']}/replay"
        sent = [await publish(client, "orders", data=n) for n in range(3)]
        await server.wait_for(3)
        after = await client.post(replay, json={"channel": "orders", "after": sent[0]["cursor"]})
        assert after.json() == {"replayed": 2}
        requests = await server.wait_for(5)
        assert [r.headers["webhook-id"] for r in requests[3:]] == [sent[1]["id"], sent[2]["id"]]
        event_time = (await client.get("/v1/channels/orders/events")).json()["events"][0]["time"]
        assert (await client.post(replay, json={"since": event_time})).json() == {"replayed": 3}
        await server.wait_for(8)
        (newest, *_) = (await client.get("/v1/webhooks/deliveries", params={"event": sent[2]["id"]})).json()["data"]
        assert (await client.post(f"/v1/webhooks/deliveries/{newest['id']}/replay")).status_code == 200
        assert (await server.wait_for(9))[-1].headers["webhook-id"] == sent[2]["id"]
        for body, status, fragment in [({}, 400, "replay needs"), ({"after": sent[0]["cursor"]}, 400, "'channel'"),
                                       ({"since": "yesterday"}, 422, "invalid time"),
                                       ({"channel": "orders", "after": "nonsense"}, 400, "cursor")]:
            response = await client.post(replay, json=body)
            assert response.status_code == status and fragment in response.json()["error"]["message"], response.text
        assert (await client.post("/v1/webhooks/deliveries/dl_nope/replay")).status_code == 404
