"""The browser client (clients/js/pushhub.js, served by the hub) in headless Chromium.

The example pages in clients/js/examples are the test pages: Playwright answers their URL on the
hub's origin from the files, and everything else (the module at /v1/client/pushhub.js, the event
stream, the WebSocket) goes to the real hub process. Screenshots are kept in the test's tmp dir.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from .browser_utils import WAIT_MS, available, chromium, keep_screenshot
from .utils import TIMEOUT, HubProcess, publish

EXAMPLES = Path(__file__).resolve().parent.parent / "clients" / "js" / "examples"

UNAVAILABLE = available()
if UNAVAILABLE:
    pytest.skip(UNAVAILABLE, allow_module_level=True)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as browser:
        yield browser


async def open_example(browser: Any, hub: HubProcess, name: str, query: str) -> tuple[Any, list[str]]:
    """The page, and the uncaught errors it reports."""
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    async def fulfil(route: Any) -> None:
        await route.fulfill(body=(EXAMPLES / name).read_text(), content_type="text/html; charset=utf-8")

    await page.route(f"{hub.url}/{name}*", fulfil)
    await page.goto(f"{hub.url}/{name}?{query}", timeout=WAIT_MS)
    await page.wait_for_function("window.pushhub !== undefined", timeout=WAIT_MS)
    return page, errors


async def received(page: Any, count: int) -> list[Any]:
    await page.wait_for_function(f"window.pushhub.events.length >= {count}", timeout=WAIT_MS)
    data: list[Any] = await page.evaluate("window.pushhub.events.map(e => e.data)")
    return data


async def publish_seq(client: httpx.AsyncClient, numbers: range, channel: str = "feed") -> str:
    """Publish ``{"seq": n}`` for each number; returns the cursor of the last one."""
    cursor = ""
    for n in numbers:
        cursor = (await publish(client, channel, "tick", {"seq": n}))["cursor"]
    return cursor


async def test_event_source_survives_restart_and_reload(browser: Any, hub_factory: Callable[..., HubProcess],
                                                        tmp_path: Path) -> None:
    hub = hub_factory("--sse-retry-ms", "100", backend="sqlite")
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        start = (await client.get("/v1/channels/feed")).json()["cursor"]
        page, errors = await open_example(browser, hub, "events.html", f"channel=feed&cursor={start}")
        await publish_seq(client, range(1, 6))
        assert [d["seq"] for d in await received(page, 5)] == [1, 2, 3, 4, 5]

        await asyncio.to_thread(hub.restart)
        tenth = await publish_seq(client, range(6, 11))
        assert [d["seq"] for d in await received(page, 10)] == list(range(1, 11))

        # Closed page, events published meanwhile, then a reload: the stored cursor resumes exactly
        # (without it, the page would start again from the cursor in its URL, or from now).
        await page.evaluate("window.pushhub.stream.close()")
        stored = await page.evaluate("sessionStorage.getItem(window.pushhub.stream.storageKey)")
        await publish_seq(client, range(11, 14))
        await page.reload(timeout=WAIT_MS)
        await page.wait_for_function("window.pushhub !== undefined", timeout=WAIT_MS)
        await publish_seq(client, range(14, 16))
        assert [d["seq"] for d in await received(page, 5)] == [11, 12, 13, 14, 15]
        assert stored == tenth
        await page.wait_for_function("document.querySelector('#status').textContent === 'live'", timeout=WAIT_MS)
        assert await page.locator("#events li").count() == 5
        assert errors == []
        shot = tmp_path / "events.png"
        await page.screenshot(path=str(shot), full_page=True)
    keep_screenshot(shot)


async def test_socket_subscribes_publishes_and_resumes(browser: Any, hub_factory: Callable[..., HubProcess],
                                                       tmp_path: Path) -> None:
    hub = hub_factory(backend="sqlite")
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
        page, errors = await open_example(browser, hub, "chat.html", "channel=room")
        await asyncio.wait_for(page.evaluate("window.pushhub.subscription.ready.then(() => true)"), 4 * TIMEOUT)
        await page.fill("#text", "hello from the browser")
        await page.click("button")
        await page.wait_for_function("document.querySelector('#status').textContent === 'sent as #1'",
                                     timeout=WAIT_MS)
        await publish(client, "room", "chat.message", {"text": "hello from HTTP"})
        assert [d["text"] for d in await received(page, 2)] == ["hello from the browser", "hello from HTTP"]

        await asyncio.to_thread(hub.restart)
        await publish(client, "room", "chat.message", {"text": "sent while reconnecting"})
        await received(page, 3)
        await page.wait_for_function("window.pushhub.socket.open", timeout=WAIT_MS)
        await page.fill("#text", "back again")
        await page.click("button")
        texts = [d["text"] for d in await received(page, 4)]
        assert texts == ["hello from the browser", "hello from HTTP", "sent while reconnecting", "back again"]
        offsets = await page.evaluate("window.pushhub.events.map(e => e.offset)")
        assert offsets == [1, 2, 3, 4]
        assert await page.evaluate("window.pushhub.socket.reconnects") >= 1
        assert errors == []
        shot = tmp_path / "chat.png"
        await page.screenshot(path=str(shot), full_page=True)
    keep_screenshot(shot)
