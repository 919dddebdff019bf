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
from .utils import TIMEOUT, HubProcess, SSEStream, publish
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


async def signed_in(browser: Any, hub: HubProcess, width: int = 1280, height: int = 900) -> tuple[Any, list[str]]:
    """A page of the dashboard, signed in with the admin key; the list collects the page's errors."""
    # bypass_csp: the page's policy forbids eval, which Playwright's wait_for_function uses.
    page = await browser.new_page(viewport={"width": width, "height": height}, bypass_csp=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{hub.url}/dashboard", timeout=WAIT_MS)
    await page.wait_for_function("document.documentElement.dataset.ready === 'true'", timeout=WAIT_MS)
    await page.fill("#key", ADMIN)
    await page.click("#sign-in button")
    await page.wait_for_selector("#main", state="visible", timeout=WAIT_MS)
    return page, errors


async def view(page: Any, name: str) -> None:
    await page.click(f"#nav button[data-view='{name}']")
    await page.wait_for_selector(f"#view-{name}", state="visible", timeout=WAIT_MS)


async def shoot(page: Any, path: Path) -> None:
    """A screenshot for the README (``$PUSHHUB_TEST_ARTIFACTS``, e.g. docs/screenshots)."""
    await page.screenshot(path=str(path), full_page=True)
    keep_screenshot(path)


async def fits(page: Any) -> bool:
    return bool(await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))
async def test_sign_in_overview_and_channels(browser: Any, hub_factory: Callable[..., HubProcess],
                                             tmp_path: Path) -> None:
    """Item 1: the channel list by pattern, a channel's history newest first and its live events, and
    a search by type and by id; the overview's counters and chart."""
    hub = hub_factory("--admin-key", ADMIN)
    async with admin(hub) as client:
        for n in range(3):
            await publish(client, "orders", "order.created", {"order": n})
        paid = await publish(client, "orders", "order.paid", {"order": 1})
        await publish(client, "audit", "audit.login", {"user": "ada"})
        page = await browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        await page.goto(f"{hub.url}/dashboard", timeout=WAIT_MS)
        await page.wait_for_function("document.documentElement.dataset.ready === 'true'", timeout=WAIT_MS)
        await page.fill("#key", "not-the-key")
        await page.click("#sign-in button")
        assert "401" in await text(page, "#sign-in-error:not(:empty)")
        assert await page.locator("#main").is_hidden()
        await page.close()

        page, errors = await signed_in(browser, hub)
        assert await page.evaluate("sessionStorage.getItem('pushhub:dashboard:key')") == ADMIN
        await page.wait_for_function("document.querySelector('#published').textContent === '5'", timeout=WAIT_MS)
        assert await page.locator("#throughput svg text.label", has_text="events per second").count() == 1
        assert await page.locator("#throughput svg text.label", has_text="seconds ago").count() == 1

        await view(page, "channels")
        rows = page.locator("#channel-list tbody tr")
        await page.wait_for_selector("#channel-list tr[data-channel='audit']", timeout=WAIT_MS)
        await page.fill("#channel-pattern", "ord*")
        await page.click("#channel-filter button")
        await page.wait_for_selector("#channel-list tr[data-channel='audit']", state="detached", timeout=WAIT_MS)
        assert await rows.count() == 1 and "4" in await rows.first.text_content()
        await page.click("#channel-list a[data-open-channel='orders']")
        history = page.locator("#channel-events tbody tr")
        await page.wait_for_selector("#channel-events tr[data-offset='1']", timeout=WAIT_MS)
        assert [await r.get_attribute("data-offset") for r in await history.all()] == ["4", "3", "2", "1"]
        await page.wait_for_selector("#channel-live.live", timeout=WAIT_MS)
        fresh = await publish(client, "orders", "order.shipped", {"order": 1})
        await page.wait_for_selector("#channel-events tr.fresh[data-offset='5']", timeout=WAIT_MS)
        assert fresh["id"] in await text(page, "#channel-events tbody tr")
        await shoot(page, tmp_path / "channels.png")

        await page.fill("#channel-query", "order.paid")
        await page.click("#channel-search button")
        await page.wait_for_selector("#channel-events tr[data-offset='5']", state="detached", timeout=WAIT_MS)
        assert await history.count() == 1 and paid["id"] in await history.first.text_content()
        await page.fill("#channel-query", fresh["id"])
        await page.click("#channel-search button")
        await page.wait_for_selector("#channel-events tr[data-offset='5']", timeout=WAIT_MS)
        assert await history.count() == 1
        await page.fill("#channel-query", f"{fresh['epoch']}.2")  # a cursor: the events after it, oldest first
        await page.click("#channel-search button")
        await page.wait_for_selector("#channel-events tr[data-offset='3']", timeout=WAIT_MS)
        assert [await r.get_attribute("data-offset") for r in await history.all()] == ["3", "4", "5"]

        # The search box of the event view, by type and by id: an event's page with its provenance.
        await view(page, "event")
        await page.fill("#event-query", "type:order.created")
        await page.click("#event-search button")
        await page.wait_for_selector("#event-page h3", timeout=WAIT_MS)
        assert "3 retained events" in await text(page, "#event-page h3")
        await page.click(f"#event-page a[data-event-link='{paid['id']}'], #event-page a >> nth=0")
        await page.wait_for_selector("#event-page article.event", timeout=WAIT_MS)
        assert "publish API by key:" in await text(page, "#event-page article.event")

        # A reload signs in again with the key of this tab.
        await page.reload(timeout=WAIT_MS)
        await page.wait_for_selector("#main", state="visible", timeout=WAIT_MS)
        await page.set_viewport_size({"width": 390, "height": 844})
        await view(page, "channels")
        await page.wait_for_selector("#channel-list tr[data-channel='orders']", timeout=WAIT_MS)
        assert await fits(page)
        await shoot(page, tmp_path / "channels-phone.png")
        assert errors == []


@pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))
async def test_publish_inspect_a_failing_receiver_and_replay(browser: Any, hub_factory: Callable[..., HubProcess],
                                                            tmp_path: Path) -> None:
    """Items 2 and 4: an event published from the form, its failed attempt inspected on its page (request
    headers masked, status, response), a replay from there that succeeds."""
    hub = hub_factory("--admin-key", ADMIN, "--webhook-allow-network", "127.0.0.0/8",
                      "--webhook-retry-schedule", "")
    async with receiver(lambda n: Reply(500 if n == 0 else 200, body=b"try again" if n == 0 else b"ok")) as server, \
            admin(hub) as client:
        created = await client.post("/v1/webhooks/endpoints", json={
            "url": server.url, "channels": ["orders"], "headers": {"authorization": "Bearer sk_live_0123456789"}})
        endpoint = created.json()
        page, errors = await signed_in(browser, hub)
        await view(page, "publish")
        form = "#publish-form"
        await page.fill(f"{form} [name=channel]", "orders")
        await page.fill(f"{form} [name=type]", "order.created")
        await page.fill(f"{form} [name=data]", "{not json")
        await page.click(f"{form} button")
        assert "not valid JSON" in await text(page, "#publish-error:not(:empty)")
        await page.fill(f"{form} [name=data]", '{"order": 7}')
        await page.click(f"{form} button")
        link = page.locator("#publish-result a[data-event-link]")
        await link.wait_for(timeout=WAIT_MS)
        event_id = await link.get_attribute("data-event-link")
        await server.wait_for(1)

        await view(page, "endpoints")
        card = f".endpoint[data-endpoint='{endpoint['id']}']"
        await page.wait_for_selector(f"{card} tr[data-status='failed']", timeout=WAIT_MS)
        await page.wait_for_selector(f"{card} td.failed", timeout=WAIT_MS)
        await page.click(f"{card} tr[data-status='failed'] a[data-event-link]")
        await page.wait_for_selector("#event-page .delivery", timeout=WAIT_MS)
        assert event_id is not None and event_id in await text(page, "#event-page article.event")
        delivery = page.locator("#event-page .delivery").first
        assert "failed" in await delivery.locator(".badge").text_content()
        attempt = delivery.locator("tr[data-attempt]").first
        assert "500" in await attempt.text_content() and "try again" in await attempt.text_content()
        await attempt.locator("summary").click()
        headers = await attempt.locator("details pre").text_content()
        assert '"webhook-signature": "v1,…"' in headers and '"authorization": "Bear…"' in headers
        assert "sk_live" not in await page.content()
        await shoot(page, tmp_path / "event-failed.png")

        await delivery.locator("button[data-replay-delivery]").click()
        requests = await server.wait_for(2)
        assert requests[1].headers["webhook-id"] == requests[0].headers["webhook-id"] == event_id
        await page.wait_for_selector("#event-page button[data-replay-delivery]:has-text('Replayed')", timeout=WAIT_MS)
        await page.reload(timeout=WAIT_MS)
        await page.wait_for_selector("#event-page .delivery .badge.succeeded", timeout=WAIT_MS)
        assert await page.locator("#event-page .delivery tr[data-attempt]").count() == 2
        await shoot(page, tmp_path / "event.png")
        assert errors == []


@pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))
async def test_endpoints_managed_from_the_page(browser: Any, hub_factory: Callable[..., HubProcess],
                                               tmp_path: Path) -> None:
    """Item 3: an endpoint created and edited from the page, disabled and enabled, its secret rotated
    (shown once), a test event sent, its chart and filters, and deleted after a confirmation."""
    hub = hub_factory("--admin-key", ADMIN, "--webhook-allow-network", "127.0.0.0/8",
                      "--webhook-retry-schedule", "")
    async with receiver(lambda n: Reply(200, body=b"thanks")) as server, admin(hub) as client:
        page, errors = await signed_in(browser, hub)
        await view(page, "endpoints")
        await page.click("#endpoint-new")
        form = "#endpoint-form"
        await page.fill(f"{form} [name=url]", server.url)
        await page.fill(f"{form} [name=channels]", "orders, audit.*")
        await page.fill(f"{form} [name=headers]", "[1]")
        await page.click(f"{form} button[type=submit]")
        assert "JSON object" in await text(page, "#endpoint-form-error:not(:empty)")
        await page.fill(f"{form} [name=headers]", '{"x-team": "core"}')
        await page.click(f"{form} button[type=submit]")
        secret = page.locator("#secret-once code.secret")
        await secret.wait_for(timeout=WAIT_MS)
        (endpoint,) = (await client.get("/v1/webhooks/endpoints")).json()["data"]
        first_secret = await secret.text_content()
        assert first_secret == (await client.get(f"/v1/webhooks/endpoints/{endpoint['id']}")).json()["secret"]
        assert endpoint["channels"] == ["orders", "audit.*"] and endpoint["headers"] == {"x-team": "core"}

        card = f".endpoint[data-endpoint='{endpoint['id']}']"
        await page.click(f"{card} button[data-action=edit]")
        await page.wait_for_selector(f"{form}:not([hidden])", timeout=WAIT_MS)
        assert await page.input_value(f"{form} [name=channels]") == "orders, audit.*"
        await page.fill(f"{form} [name=types]", "order.*")
        await page.fill(f"{form} [name=rate_limit]", "5")
        await page.fill(f"{form} [name=max_concurrency]", "2")
        await page.fill(f"{form} [name=retry_schedule]", "5s,1m")
        await page.check(f"{form} [name=ordered]")
        await page.click(f"{form} button[type=submit]")
        await page.wait_for_selector(f"{form}", state="hidden", timeout=WAIT_MS)
        edited = (await client.get(f"/v1/webhooks/endpoints/{endpoint['id']}")).json()
        assert (edited["types"], edited["rate_limit"], edited["max_concurrency"], edited["ordered"],
                edited["retry_schedule"]) == (["order.*"], 5.0, 2, True, "5s,60s")

        await page.click(f"{card} button[data-action=toggle]")
        await page.wait_for_selector(f"{card} .health:has-text('disabled')", timeout=WAIT_MS)
        await page.click(f"{card} button[data-action=toggle]")
        await page.wait_for_selector(f"{card} .health:has-text('enabled')", timeout=WAIT_MS)

        await page.click(f"{card} button[data-action=rotate]")
        await page.wait_for_function(f"document.querySelector('#secret-once code').textContent !== '{first_secret}'",
                                     timeout=WAIT_MS)
        rotated = (await client.get(f"/v1/webhooks/endpoints/{endpoint['id']}")).json()
        assert await secret.text_content() == rotated["secret"] and len(rotated["old_secrets_expire_at"]) == 1

        await page.click(f"{card} button[data-action=test]")
        await page.wait_for_selector(f"{card} .note.ok", timeout=WAIT_MS)
        assert "200" in await text(page, f"{card} .note") and "thanks" in await text(page, f"{card} .note")
        assert (await server.wait_for(1))[0].json()["type"] == "pushhub.test"

        for n in range(3):
            await publish(client, "orders", "order.created", {"n": n})
        await server.wait_for(4)
        await page.wait_for_function(f"document.querySelectorAll(\"{card} tr[data-attempt]\").length === 3",
                                     timeout=WAIT_MS)
        assert await page.locator(f"{card} .line-chart text.label", has_text="% of attempts 2xx").count() == 1
        assert await page.locator(f"{card} .line-chart text.label", has_text="minutes ago").count() == 2
        await page.wait_for_function(f"document.querySelector(\"{card} .line-chart polyline\")"
                                     ".getAttribute('points') !== ''", timeout=WAIT_MS)
        await page.select_option(f"{card} select[data-filter=attempts]", "failed")
        await page.wait_for_selector(f"{card} tr[data-attempt]", state="detached", timeout=WAIT_MS)
        await page.select_option(f"{card} select[data-filter=attempts]", "succeeded")
        await page.wait_for_selector(f"{card} tr[data-attempt]", timeout=WAIT_MS)
        await shoot(page, tmp_path / "endpoints.png")
        await page.set_viewport_size({"width": 390, "height": 844})
        assert await fits(page)
        await page.set_viewport_size({"width": 1280, "height": 900})

        await page.click(f"{card} button[data-action=ask-delete]")
        await page.click(f"{card} button[data-action=keep]")
        await page.wait_for_selector(f"{card} button[data-action=ask-delete]", timeout=WAIT_MS)
        await page.click(f"{card} button[data-action=ask-delete]")
        await page.click(f"{card} button[data-action=delete]")
        await page.wait_for_selector(card, state="detached", timeout=WAIT_MS)
        assert (await client.get("/v1/webhooks/endpoints")).json()["data"] == []
        assert errors == []
