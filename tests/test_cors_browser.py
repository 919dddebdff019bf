"""``--cors-origin '*'`` in headless Chromium: any page may read what needs no credential, no
foreign page can read what its visitor's cookie authenticates."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from .browser_utils import WAIT_MS, available, chromium
from .utils import TIMEOUT, HubProcess, free_port

UNAVAILABLE = available()
if UNAVAILABLE:
    pytest.skip(UNAVAILABLE, allow_module_level=True)

SECRET = "hs256-secret-for-the-cors-browser-test"
PUBLISHER = "publisher-key-for-the-cors-browser-test"

# From a page: what reading a URL gives ("read:" and the text) or "blocked" when CORS withholds it.
FETCH = """([url, credentials]) => fetch(url, {credentials}).then(r => r.text()).then(t => "read:" + t,
                                                                                  () => "blocked")"""
SOCKET = """(url) => new Promise(resolve => {
    const socket = new WebSocket(url);
    socket.onopen = () => socket.send(JSON.stringify({op: "subscribe", channel: "private", id: 1}));
    socket.onmessage = event => { socket.close(); resolve(JSON.parse(event.data)); };
    socket.onerror = () => resolve({op: "socket error"});
})"""
EVENT_SOURCE = """(url) => new Promise(resolve => {
    const source = new EventSource(url, {withCredentials: true});
    source.onmessage = event => { source.close(); resolve("read:" + event.data); };
    source.onerror = () => { source.close(); resolve("blocked"); };
})"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    tmp = tmp_path_factory.mktemp("cors-star")
    process = HubProcess(["--data-dir", str(tmp / "data"), "--jwt-secret", SECRET, "--publisher-key", PUBLISHER,
                          "--public-channel", "public:*", "--cors-origin", "*"],
                         log_path=str(tmp / "hub.log")).start()
    yield process
    process.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as browser:
        yield browser


async def page_at(context: Any, origin: str) -> Any:
    """A blank page whose origin is ``origin`` (Playwright answers it; no server runs there)."""
    page = await context.new_page()

    async def fulfil(route: Any) -> None:
        await route.fulfill(body="<!doctype html><title>page</title>", content_type="text/html")

    await page.route(f"{origin}/page.html", fulfil)
    await page.goto(f"{origin}/page.html", timeout=WAIT_MS)
    return page


async def test_foreign_origin_cannot_read_a_cookie_authenticated_stream(browser: Any, hub: HubProcess,
                                                                       tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT,
                                 headers={"authorization": f"Bearer {PUBLISHER}"}) as client:
        published = [await client.post(f"/v1/channels/{channel}/events", json={"type": "t", "data": channel})
                     for channel in ("private", "public:news")]
        assert [p.status_code for p in published] == [202, 202], [p.text for p in published]
    before_private = f"{published[0].json()['epoch']}.0"
    reader = jwt.encode({"exp": time.time() + 60, "pushhub": {"subscribe": ["private"]}}, SECRET)
    context = await browser.new_context()
    own = await page_at(context, hub.url)
    opened = await own.evaluate("""(token) => fetch("/v1/session", {method: "POST", credentials: "include",
                                       headers: {authorization: "Bearer " + token}}).then(r => r.status)""", reader)
    assert opened == 204
    history = f"{hub.url}/v1/channels/private/events"
    stream = f"{hub.url}/v1/sse?channel=private&lastEventId={before_private}"
    # The hub's own page reads with the cookie, so what follows is withheld by CORS, not by a missing cookie.
    assert "private" in await own.evaluate(FETCH, [history, "include"])
    assert await own.evaluate(EVENT_SOURCE, stream) != "blocked"
    socket_url = hub.ws_url
    assert (await own.evaluate(SOCKET, socket_url))["op"] == "subscribed"

    # Another origin of the same site (another port): the browser sends the cookie along.
    foreign = await page_at(context, f"http://127.0.0.1:{free_port()}")
    assert await foreign.evaluate(FETCH, [history, "include"]) == "blocked"
    assert await foreign.evaluate(EVENT_SOURCE, stream) == "blocked"
    refused = await foreign.evaluate(SOCKET, socket_url)  # WebSockets know no CORS: the hub ignores the cookie
    assert refused["op"] == "error" and refused["code"] == "unauthorized", refused
    public = await foreign.evaluate(FETCH, [f"{hub.url}/v1/channels/public:news/events", "omit"])
    assert public.startswith("read:") and "public:news" in public
    await context.close()
