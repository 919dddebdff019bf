"""The dashboard (``GET /dashboard``) of a real hub: its admin-only endpoints over HTTP, then the page
in headless Chromium against a real webhook receiver on loopback. A screenshot is kept."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from .browser_utils import WAIT_MS, available, chromium, keep_screenshot
from .utils import TIMEOUT, HubProcess, SSEStream, publish, ws_client
from .webhook_utils import Reply, receiver

ADMIN, PUBLISHER = "admin-secret-key", "publisher-key"
UNAVAILABLE = available()


def admin(hub: HubProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT, headers={"authorization": f"Bearer {ADMIN}"})


@contextlib.asynccontextmanager
async def stream(client: httpx.AsyncClient, path: str) -> AsyncIterator[SSEStream]:
    async with client.stream("GET", path) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        events = SSEStream(response)
        try:
            yield events
        finally:
            events._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events._task


async def test_admin_only_endpoints(hub_factory: Callable[..., HubProcess]) -> None:
    # A long shutdown timeout: stopping the hub below must not wait for the open stats stream.
    hub = hub_factory("--admin-key", ADMIN, "--publisher-key", PUBLISHER, "--shutdown-timeout", "60",
                      backend="memory")
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as anonymous, admin(hub) as client:
        page = await anonymous.get("/dashboard")
        assert page.status_code == 200 and "Admin key" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert (await anonymous.get("/dashboard/dashboard.js")).headers["content-type"].startswith("text/javascript")

        for credential, status in [(None, 401), ("wrong", 401), (PUBLISHER, 403)]:
            headers = {"authorization": f"Bearer {credential}"} if credential else {}
            assert (await anonymous.post("/v1/dashboard/session", headers=headers)).status_code == status
            refused = await anonymous.get("/v1/dashboard/stats", headers=headers)
            assert refused.status_code == status and refused.json()["error"]["code"] in ("unauthorized", "forbidden")
        assert (await anonymous.get("/v1/dashboard/sse", params={"channel": "orders"})).status_code == 401

        opened = await client.post("/v1/dashboard/session")
        assert opened.status_code == 204
        cookie = opened.cookies["pushhub_dashboard"]
        set_cookie = opened.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/v1/dashboard/" in set_cookie
        assert ADMIN not in opened.headers["set-cookie"]

        jar = {"cookie": f"pushhub_dashboard={cookie}"}
        async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT, headers=jar) as browser:
            # The cookie carries the two read-only streams, nothing else, and not from a foreign page.
            assert (await browser.get("/v1/webhooks/endpoints")).status_code == 401
            assert (await browser.get("/v1/dashboard/stats", headers={"origin": "https://evil.example"})).status_code \
                == 401
            tampered = {"cookie": f"pushhub_dashboard={cookie[:-1]}{'0' if cookie[-1] != '0' else '1'}"}
            assert (await anonymous.get("/v1/dashboard/stats", headers=tampered)).status_code == 401
            async with stream(browser, "/v1/dashboard/sse?channel=orders") as events:
                await events.started()
                sent = await publish(client, "orders", "order.created", {"n": 1})
                (event,) = await events.events(1)
                assert event["id"] == sent["id"]
                async with stream(browser, "/v1/dashboard/stats") as stats:
                    first = await stats.next()
                    assert first.event == "stats"
                    snapshot = orjson.loads(first.data)
                    assert snapshot["sse_connections"] == 1 and snapshot["published"] == 1
                    assert {"ws_connections", "delivered", "rates"} <= set(snapshot)
                    seen = {r["time"] for r in snapshot["rates"]}
                    later = orjson.loads((await stats.next(2 * TIMEOUT)).data)
                    assert not seen & {r["time"] for r in later["rates"]}  # only what was not sent yet
                    assert (await client.delete("/v1/dashboard/session")).status_code == 204
                    await asyncio.to_thread(hub.stop)
                    await stats.ended()


async def test_open_hub_needs_no_key(hub_factory: Callable[..., HubProcess]) -> None:
    hub = hub_factory(backend="memory")
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as anonymous:
        opened = await anonymous.post("/v1/dashboard/session")
        assert opened.status_code == 204 and "set-cookie" not in opened.headers
        async with stream(anonymous, "/v1/dashboard/stats") as stats:
            assert orjson.loads((await stats.next()).data)["sse_connections"] == 0


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as browser:
        yield browser


async def text(page: Any, selector: str) -> str:
    return str(await page.locator(selector).first.text_content(timeout=WAIT_MS))


@pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))
async def test_dashboard_in_chromium(browser: Any, hub_factory: Callable[..., HubProcess], tmp_path: Path) -> None:
    hub = hub_factory("--admin-key", ADMIN, "--webhook-allow-network", "127.0.0.0/8",
                      "--webhook-retry-schedule", "", backend="memory")
    async with receiver(lambda n: Reply(500 if n == 0 else 200)) as server, admin(hub) as client:
        created = await client.post("/v1/webhooks/endpoints", json={"url": server.url, "channels": ["orders"]})
        endpoint = created.json()
        # bypass_csp: the page's policy forbids eval, which Playwright's wait_for_function uses.
        page = await browser.new_page(viewport={"width": 1200, "height": 900}, bypass_csp=True)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(f"{hub.url}/dashboard", timeout=WAIT_MS)
        await page.wait_for_function("document.documentElement.dataset.ready === 'true'", timeout=WAIT_MS)

        await page.fill("#key", "not-the-key")
        await page.click("#sign-in button")
        assert "401" in await text(page, "#sign-in-error:not(:empty)")
        assert await page.locator("#main").is_hidden()

        await page.fill("#key", ADMIN)
        await page.click("#sign-in button")
        await page.wait_for_selector("#main", state="visible", timeout=WAIT_MS)
        assert await page.evaluate("sessionStorage.getItem('pushhub:dashboard:key')") == ADMIN
        await page.fill("#channel", "orders, audit")
        await page.click("#watch button")
        await page.wait_for_selector(".channel[data-channel='orders'] .live", timeout=WAIT_MS)
        await page.wait_for_selector(".channel[data-channel='audit'] .live", timeout=WAIT_MS)

        async with ws_client(hub.ws_url, headers={"authorization": f"Bearer {ADMIN}"}):
            await page.wait_for_function("document.querySelector('#ws-connections').textContent === '1'",
                                         timeout=WAIT_MS)
            await publish(client, "orders", "order.created", {"order": 7})
            await publish(client, "audit", "audit.login", {"user": "ada"})
            assert "order.created" in await text(page, ".channel[data-channel='orders'] li .type")
            assert '{"user":"ada"}' in await text(page, ".channel[data-channel='audit'] li pre")
            assert await text(page, "#sse-connections") == "2"
            await page.wait_for_function("document.querySelector('#published').textContent === '2'"
                                         " && document.querySelector('#delivered').textContent === '2'",
                                         timeout=WAIT_MS)
            # Throughput over time: the publishes show in a per-second sample of the chart.
            await page.wait_for_function("Number(document.querySelector('#chart-peak').textContent) >= 1"
                                         " && document.querySelector('#published-line').getAttribute('points')",
                                         timeout=WAIT_MS)

        failed = page.locator(f".endpoint[data-endpoint='{endpoint['id']}'] tr[data-delivery]")
        await failed.first.wait_for(timeout=WAIT_MS)
        assert await failed.count() == 1 and "500" in await failed.first.text_content()
        await page.screenshot(path=str(tmp_path / "dashboard-failed.png"), full_page=True)

        await failed.first.locator("button", has_text="Replay").click()
        requests = await server.wait_for(2)
        assert requests[1].headers["webhook-id"] == requests[0].headers["webhook-id"]
        await failed.first.wait_for(state="detached", timeout=WAIT_MS)
        card = f".endpoint[data-endpoint='{endpoint['id']}']"
        await page.wait_for_selector(f"{card} td.ok", timeout=WAIT_MS)
        await page.wait_for_selector(f"{card} .health.live", timeout=WAIT_MS)  # no longer failing
        # A reload signs in again with the key of this tab and watches the same channels.
        await page.reload(timeout=WAIT_MS)
        await page.wait_for_selector(".channel[data-channel='orders'] .live", timeout=WAIT_MS)
        await publish(client, "orders", "order.paid", {"order": 7})
        assert "order.paid" in await text(page, ".channel[data-channel='orders'] li .type")
        assert errors == []
        shot = tmp_path / "dashboard.png"
        await page.screenshot(path=str(shot), full_page=True)
    keep_screenshot(shot)
