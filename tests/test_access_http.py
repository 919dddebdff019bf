"""Access control end to end: JWT scopes, keys, public channels, cookie and query tokens, token
expiry, CORS and idempotent publishing, against a real hub process."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from websockets.exceptions import ConnectionClosed

from pushhub import cli

from .utils import TIMEOUT, HubProcess, SSEStream, ws_client

SECRET = "hs256-secret-for-the-access-tests!!"
PUBLISHER = "publisher-key-for-access-tests"
ADMIN = "admin-key-for-access-tests"
APP = "https://app.example"
EC_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    tmp = tmp_path_factory.mktemp("secured")
    pem = tmp / "es256.pem"
    pem.write_bytes(EC_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    hub = HubProcess(["--data-dir", str(tmp / "data"), "--jwt-secret", SECRET, "--jwt-public-key", str(pem),
                      "--publisher-key", PUBLISHER, "--admin-key", ADMIN, "--public-channel", "public:*",
                      "--cors-origin", APP], log_path=str(tmp / "hub.log")).start()
    yield hub
    hub.stop()


@pytest.fixture
async def admin(secured: HubProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=secured.url, timeout=TIMEOUT,
                                 headers={"authorization": f"Bearer {ADMIN}"}) as c:
        yield c


def token(subscribe: list[str] = (), publish: list[str] = (), ttl: float = 60, **claims: Any) -> str:  # type: ignore[assignment]
    payload = {"sub": "user-42", "exp": time.time() + ttl,
               "pushhub": {"subscribe": list(subscribe), "publish": list(publish)}, **claims}
    return jwt.encode(payload, SECRET, algorithm="HS256")


def alg_none(subscribe: list[str]) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()
    claims = {"exp": time.time() + 60, "pushhub": {"subscribe": subscribe, "publish": subscribe}}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


BAD_TOKENS = {
    "expired": lambda: token(["orders"], ["orders"], ttl=-5),
    "forged": lambda: jwt.encode({"exp": time.time() + 60, "pushhub": {"subscribe": ["orders"], "publish": ["orders"]}},
                                 "a-different-secret-of-32-bytes-or-more", algorithm="HS256"),
    "alg-none": lambda: alg_none(["orders"]),
    "other-channel": lambda: token(["other"], ["other"]),
}
STATUS = {"expired": 401, "forged": 401, "alg-none": 401, "other-channel": 403}


@contextlib.asynccontextmanager
async def sse(hub: HubProcess, channels: list[str], *, params: dict[str, str] | None = None,
              headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None,
              status: int = 200) -> AsyncIterator[SSEStream]:
    query = [("channel", c) for c in channels] + list((params or {}).items())
    async with httpx.AsyncClient(base_url=hub.url, timeout=httpx.Timeout(TIMEOUT, read=None),
                                 cookies=cookies) as client, \
            client.stream("GET", "/v1/sse", params=query, headers=headers) as response:
        assert response.status_code == status, (await response.aread()).decode()
        stream = SSEStream(response)
        try:
            if status == 200:
                await stream.started()
            yield stream
        finally:
            stream._task.cancel()
            with contextlib.suppress(BaseException):
                await stream._task


async def top(admin: httpx.AsyncClient, channel: str) -> int:
    return int((await admin.get(f"/v1/channels/{channel}")).json()["top"])


async def test_sse_needs_read_rights(secured: HubProcess, admin: httpx.AsyncClient) -> None:
    async with sse(secured, ["orders"], status=401):
        pass
    for name, make in BAD_TOKENS.items():
        async with sse(secured, ["orders"], params={"token": make()}, status=STATUS[name]):
            pass
    async with sse(secured, ["orders", "public:news"], params={"token": token(["orders"])}) as stream:
        assert (await admin.post("/v1/channels/orders/events", json={"type": "t", "data": 1})).status_code == 202
        (event,) = await stream.events(1)
        assert event["data"] == 1
    async with sse(secured, ["public:news"]):
        pass


async def test_sse_cookie_and_cors(secured: HubProcess) -> None:
    cookie = {"pushhub_token": token(["orders"])}
    async with sse(secured, ["orders"], cookies=cookie, headers={"origin": APP}) as stream:
        assert stream.response.headers["access-control-allow-origin"] == APP
        assert stream.response.headers["access-control-allow-credentials"] == "true"
    async with sse(secured, ["orders"], cookies=cookie):
        pass
    async with sse(secured, ["orders"], cookies=cookie, headers={"origin": "https://evil.example"}, status=401):
        pass
    async with sse(secured, ["public:x"], headers={"origin": "https://evil.example"}) as stream:
        assert "access-control-allow-origin" not in stream.response.headers


async def test_history_needs_read_rights(secured: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=secured.url, timeout=TIMEOUT) as c:
        assert (await c.get("/v1/channels/orders/events")).status_code == 401
        assert (await c.get("/v1/channels/public:a/events")).status_code == 200
        for name, make in BAD_TOKENS.items():
            response = await c.get("/v1/channels/orders/events", headers={"authorization": f"Bearer {make()}"})
            assert response.status_code == STATUS[name], (name, response.text)
        ok = await c.get("/v1/channels/orders/events", params={"token": token(["ord*"])})
        assert ok.status_code == 200
        c.cookies.set("pushhub_token", token(["orders"]))
        assert (await c.get("/v1/channels/orders/events")).status_code == 200


async def test_http_publish_rights(secured: HubProcess, admin: httpx.AsyncClient) -> None:
    event = {"type": "t", "data": "x"}
    before = await top(admin, "orders")
    async with httpx.AsyncClient(base_url=secured.url, timeout=TIMEOUT) as c:
        assert (await c.post("/v1/channels/orders/events", json=event)).status_code == 401
        for name, make in BAD_TOKENS.items():
            response = await c.post("/v1/channels/orders/events", json=event,
                                    headers={"authorization": f"Bearer {make()}"})
            assert response.status_code == STATUS[name], (name, response.text)
        reader = {"authorization": f"Bearer {token(['orders'])}"}
        assert (await c.post("/v1/channels/orders/events", json=event, headers=reader)).status_code == 403
        c.cookies.set("pushhub_token", token(["orders"], ["orders"]))
        assert (await c.post("/v1/channels/orders/events", json=event)).status_code == 401
        assert await top(admin, "orders") == before
        writer = {"authorization": f"Bearer {token([], ['chat:*'])}"}
        assert (await c.post("/v1/channels/chat:lobby/events", json=event, headers=writer)).status_code == 202
        publisher = {"authorization": f"Bearer {PUBLISHER}"}
        assert (await c.post("/v1/channels/orders/events", json=event, headers=publisher)).status_code == 202
        es256 = jwt.encode({"exp": time.time() + 60, "pushhub": {"publish": ["orders"]}}, EC_KEY, algorithm="ES256")
        es = {"authorization": f"Bearer {es256}"}
        assert (await c.post("/v1/channels/orders/events", json=event, headers=es)).status_code == 202
        assert (await c.get("/v1/admin/ingest/sources", headers=publisher)).status_code == 403
    assert await top(admin, "orders") == before + 2


async def test_websocket_rights(secured: HubProcess, admin: httpx.AsyncClient) -> None:
    before = await top(admin, "orders")
    rights = token(["orders"], ["chat:*"])
    async with ws_client(secured.ws_url, headers={"authorization": f"Bearer {rights}"}) as ws:
        await ws.subscribe("orders")
        denied = await ws.request(op="subscribe", channel="secret")
        assert denied["op"] == "error" and denied["code"] == "forbidden"
        refused = await ws.request(op="publish", channel="orders", event={"type": "t"})
        assert refused["op"] == "error" and refused["code"] == "forbidden"
        allowed = await ws.request(op="publish", channel="chat:1", event={"type": "t"})
        assert allowed["op"] == "published"
    async with ws_client(secured.ws_url + "?token=" + token(["orders"])) as ws:
        await ws.subscribe("orders")
    async with ws_client(secured.ws_url) as ws:
        await ws.subscribe("public:feed")
        anonymous = await ws.request(op="subscribe", channel="orders")
        assert anonymous["op"] == "error" and anonymous["code"] == "unauthorized"
        publish = await ws.request(op="publish", channel="public:feed", event={"type": "t"})
        assert publish["op"] == "error"
    assert await top(admin, "orders") == before
    for name in ("forged", "alg-none"):
        async with ws_client(secured.ws_url, headers={"authorization": f"Bearer {BAD_TOKENS[name]()}"}) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4501


async def test_token_expiry_closes_streams(secured: HubProcess) -> None:
    short = token(["orders"], ttl=1.0)
    async with ws_client(secured.ws_url, headers={"authorization": f"Bearer {short}"}) as ws, \
            sse(secured, ["orders"], params={"token": short}) as stream:
        await ws.subscribe("orders")
        message = await stream.next(timeout=4 * TIMEOUT)
        assert message.event == "disconnect"
        assert orjson.loads(message.data) == {"code": 4002, "reason": "token_expired", "reconnect": True}
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv(timeout=4 * TIMEOUT)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4002


async def test_cors_preflight(secured: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=secured.url, timeout=TIMEOUT) as c:
        for path in ("/v1/channels/orders/events", "/v1/sse"):
            ok = await c.options(path, headers={"origin": APP, "access-control-request-method": "POST",
                                                "access-control-request-headers": "authorization, idempotency-key"})
            assert ok.status_code == 200, ok.text
            assert ok.headers["access-control-allow-origin"] == APP
            assert "idempotency-key" in ok.headers["access-control-allow-headers"].lower()
            evil = await c.options(path, headers={"origin": "https://evil.example",
                                                  "access-control-request-method": "POST"})
            assert "access-control-allow-origin" not in evil.headers
        simple = await c.get("/v1/channels/public:a/events", headers={"origin": APP})
        assert simple.headers["access-control-allow-origin"] == APP


async def test_publishing_answers_alike_with_an_origin_and_without(secured: HubProcess) -> None:
    """A publish without an Origin takes the hub's short path past the middleware; its answers,
    accepted or refused, carry what the CORS middleware gives a request with an Origin."""
    async with httpx.AsyncClient(base_url=secured.url, timeout=TIMEOUT) as c:
        for origin in ({}, {"origin": APP}):
            allowed = {"access-control-allow-origin": APP} if origin else {}
            answers = [
                await c.post("/v1/channels/orders/events", json={"type": "t"},
                             headers={"authorization": f"Bearer {PUBLISHER}", **origin}),
                await c.post("/v1/channels/orders/events", json={"type": "t"}, headers=origin),
                await c.post("/v1/channels/bad channel/events", json={"type": "t"},
                             headers={"authorization": f"Bearer {PUBLISHER}", **origin}),
            ]
            assert [a.status_code for a in answers] == [202, 401, 400]
            assert answers[0].json()["channel"] == "orders"
            assert [a.json()["error"]["code"] for a in answers[1:]] == ["unauthorized", "bad_channel"]
            for answer in answers:
                assert answer.headers["content-type"] == "application/json"
                assert answer.headers["vary"] == "Origin"
                assert {k: answer.headers[k] for k in allowed if k in answer.headers} == allowed


async def test_idempotent_publish(admin: httpx.AsyncClient) -> None:
    event = {"type": "order.created", "data": {"n": 1}}
    first = await admin.post("/v1/channels/idem/events", json=event, headers={"idempotency-key": "k-1"})
    again = await admin.post("/v1/channels/idem/events", json=event, headers={"idempotency-key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert first.headers["idempotent-replayed"] == "false" and again.headers["idempotent-replayed"] == "true"
    other = await admin.post("/v1/channels/idem/events", json={**event, "data": {"n": 2}},
                             headers={"idempotency-key": "k-1"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    elsewhere = await admin.post("/v1/channels/idem2/events", json=event, headers={"idempotency-key": "k-1"})
    assert elsewhere.status_code == 202  # keys are scoped per channel: another channel, another request
    assert elsewhere.headers["idempotent-replayed"] == "false" and elsewhere.json()["id"] != first.json()["id"]
    bad = await admin.post("/v1/channels/idem/events", json=event, headers={"idempotency-key": "x" * 300})
    assert bad.status_code == 400
    assert len((await admin.get("/v1/channels/idem/events")).json()["events"]) == 1


async def test_idempotency_survives_restart(hub_factory: Any, tmp_path: Path) -> None:
    hub = hub_factory()
    event = {"type": "t"}
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as c:
        first = await c.post("/v1/channels/c/events", json=event, headers={"idempotency-key": "restart"})
    hub.restart()
    async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as c:
        again = await c.post("/v1/channels/c/events", json=event, headers={"idempotency-key": "restart"})
        assert again.json() == first.json()
        assert (await c.get("/v1/channels/c")).json()["top"] == 1


async def test_session_cookie_for_eventsource(secured: HubProcess) -> None:
    async with httpx.AsyncClient(base_url=secured.url, timeout=TIMEOUT) as c:
        assert (await c.post("/v1/session")).status_code == 401
        assert (await c.post("/v1/session", headers={"authorization": f"Bearer {PUBLISHER}"})).status_code == 400
        assert (await c.post("/v1/session", headers={"authorization": f"Bearer {alg_none(['x'])}"})).status_code == 401
        opened = await c.post("/v1/session", headers={"authorization": f"Bearer {token(['orders'])}"})
        assert opened.status_code == 204
        set_cookie = opened.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=lax" in set_cookie and "max-age=" in set_cookie
        assert (await c.get("/v1/channels/orders/events")).status_code == 200
        async with sse(secured, ["orders"], cookies=dict(c.cookies)):
            pass
        assert (await c.delete("/v1/session")).status_code == 204
        assert (await c.get("/v1/channels/orders/events")).status_code == 401


async def test_websocket_cookie_reads_but_never_publishes(secured: HubProcess, admin: httpx.AsyncClient) -> None:
    cookie = {"cookie": f"pushhub_token={token(['orders'], ['orders'])}"}
    before = await top(admin, "orders")
    async with ws_client(secured.ws_url, headers=cookie) as ws:
        await ws.subscribe("orders")
        refused = await ws.request(op="publish", channel="orders", event={"type": "t"})
        assert refused["op"] == "error" and refused["code"] == "forbidden"
    async with ws_client(secured.ws_url, headers={**cookie, "origin": "https://evil.example"}) as ws:
        foreign = await ws.request(op="subscribe", channel="orders")
        assert foreign["op"] == "error" and foreign["code"] == "unauthorized"
    async with ws_client(secured.ws_url, headers={**cookie, "origin": APP}) as ws:
        await ws.subscribe("orders")
    assert await top(admin, "orders") == before


async def test_cli_listen_presents_its_key(secured: HubProcess, admin: httpx.AsyncClient) -> None:
    class Lines(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.arrived = asyncio.Event()

        def flush(self) -> None:
            self.arrived.set()

    before = (await admin.get("/v1/channels/cli")).json()["cursor"]
    await admin.post("/v1/channels/cli/events", json={"type": "t", "data": "via cli"})
    out = Lines()
    args = argparse.Namespace(url=secured.url, key=token(["cli"]), channels=["cli"], type=[], cursor=before)
    task = asyncio.ensure_future(cli.Listener(args, out).run())
    try:
        await asyncio.wait_for(out.arrived.wait(), TIMEOUT)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert orjson.loads(out.getvalue())["event"]["data"] == "via cli"
