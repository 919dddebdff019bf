"""The webhook receiver toolkit (pushhub_client): Standard Webhooks verification checked against the
published vector and against signatures made by the `standardwebhooks` package, deduplication
stores (in memory, and in a real redis-server), and the ASGI middleware under a real uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
import uvicorn
from pushhub_client import (
    DedupeStore,
    DuplicateDelivery,
    InvalidSignature,
    MemoryDedupeStore,
    MissingHeaders,
    RedisDedupeStore,
    StaleTimestamp,
    Webhook,
    WebhookMiddleware,
    WebhookReceiver,
    sign,
    verify_webhook,
)
from standardwebhooks import Webhook as ReferenceWebhook
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .utils import POLL, TIMEOUT, free_port

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_" + "c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24="


def headers(msg_id: str = MSG_ID, timestamp: int = TIMESTAMP, signature: str = EXPECTED) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def reference_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signature: str = ReferenceWebhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, UTC), body.decode())
    return signature


# Signatures (pure) -------------------------------------------------------------------------------

def test_known_vector() -> None:
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == EXPECTED
    webhook = verify_webhook(SECRET, headers(), BODY, now=TIMESTAMP)
    assert webhook == Webhook(MSG_ID, TIMESTAMP, BODY)
    assert webhook.json() == {"test": 2432232314}


@pytest.mark.parametrize("body", [b"{}", BODY, '{"emoji": "\u2603", "n": [1, 2]}'.encode(), b"x" * 70_000])
def test_accepts_what_standardwebhooks_signs_and_vice_versa(body: bytes) -> None:
    now = int(time.time())
    signature = reference_signature(SECRET, "msg_1", now, body)
    assert verify_webhook(SECRET, headers("msg_1", now, signature), body).body == body
    ours = sign(SECRET, "msg_1", now, body)
    assert ours == signature
    ReferenceWebhook(SECRET).verify(body, headers("msg_1", now, ours), json_parse=False)


def test_several_signatures_and_secrets_during_rotation() -> None:
    old = sign(OTHER_SECRET, MSG_ID, TIMESTAMP, BODY)
    rotating = f"v1a,bm90IHN1cHBvcnRlZA== v2,{EXPECTED[3:]} {old} {EXPECTED}"
    assert verify_webhook(SECRET, headers(signature=rotating), BODY, now=TIMESTAMP)
    assert verify_webhook([OTHER_SECRET, SECRET], headers(signature=old), BODY, now=TIMESTAMP)
    assert verify_webhook(SECRET.removeprefix("whsec_"), headers(), BODY, now=TIMESTAMP)
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, headers(signature=old), BODY, now=TIMESTAMP)


@pytest.mark.parametrize(("hdrs", "body"), [
    (headers(), b'{"test": 2432232315}'),
    (headers(msg_id="msg_other"), BODY),
    (headers(timestamp=TIMESTAMP + 1), BODY),
    (headers(signature=EXPECTED.replace("g0h", "g1h")), BODY),
    (headers(signature="v2," + EXPECTED[3:]), BODY),
    (headers(signature="v1,not-base64!"), BODY),
    (headers(signature="v1"), BODY),
], ids=["body", "id", "timestamp", "signature", "version", "garbage", "no-value"])
def test_rejects_tampered_deliveries(hdrs: dict[str, str], body: bytes) -> None:
    with pytest.raises(InvalidSignature):
        verify_webhook(SECRET, hdrs, body, now=TIMESTAMP)


def test_rejects_stale_and_future_timestamps() -> None:
    assert verify_webhook(SECRET, headers(), BODY, now=TIMESTAMP + 300)
    assert verify_webhook(SECRET, headers(), BODY, now=TIMESTAMP - 300)
    for now in (TIMESTAMP + 301, TIMESTAMP - 301):
        with pytest.raises(StaleTimestamp):
            verify_webhook(SECRET, headers(), BODY, now=now)
    with pytest.raises(StaleTimestamp):
        verify_webhook(SECRET, headers(), BODY, now=TIMESTAMP + 11, tolerance=10)
    with pytest.raises(StaleTimestamp):  # the real clock: 2021 is long gone
        verify_webhook(SECRET, headers(), BODY)


@pytest.mark.parametrize("broken", [
    {"webhook-id": None}, {"webhook-timestamp": None}, {"webhook-signature": None},
    {"webhook-timestamp": "1614265330.5"}, {"webhook-timestamp": "-1"}, {"webhook-id": "x" * 300},
])
def test_missing_or_malformed_headers(broken: dict[str, str | None]) -> None:
    hdrs = {k: v for k, v in {**headers(), **broken}.items() if v is not None}
    with pytest.raises(MissingHeaders):
        verify_webhook(SECRET, hdrs, BODY, now=TIMESTAMP)


def test_header_names_are_case_insensitive() -> None:
    hdrs = {k.title(): v for k, v in headers().items()}
    assert verify_webhook(SECRET, hdrs, BODY, now=TIMESTAMP).id == MSG_ID


@pytest.mark.parametrize("secret", ["whsec_!!!", "whsec_", b""])
def test_bad_secrets_fail_loudly(secret: str | bytes) -> None:
    with pytest.raises(ValueError):
        verify_webhook(secret, headers(), BODY, now=TIMESTAMP)


# Deduplication stores ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway redis-server on a free port."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 4 * TIMEOUT
        client = redis.Redis(port=port, socket_timeout=TIMEOUT)
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(POLL)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(4 * TIMEOUT)


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, socket_timeout=TIMEOUT)
    await client.flushdb()
    yield client
    await client.aclose()


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def make_store(request: pytest.FixtureRequest) -> Callable[[float], DedupeStore]:
    if request.param == "memory":
        return lambda ttl: MemoryDedupeStore(ttl)
    client = request.getfixturevalue("redis_client")
    return lambda ttl: RedisDedupeStore(client, ttl)


async def test_store_claims_once_until_released(make_store: Callable[[float], DedupeStore]) -> None:
    store = make_store(60)
    assert await store.claim("msg_a")
    assert not await store.claim("msg_a")
    assert await store.claim("msg_b")
    await store.release("msg_a")
    assert await store.claim("msg_a")
    assert not await store.claim("msg_a")


async def test_memory_store_expires_and_stays_bounded() -> None:
    clock = FakeClock()
    store = MemoryDedupeStore(10, max_entries=3, clock=clock)
    assert await store.claim("a")
    clock.now += 10
    assert await store.claim("a"), "an id is forgotten once its TTL has passed"
    for key in "bcd":
        assert await store.claim(key)
    assert len(store) == 3
    assert await store.claim("a"), "the oldest id was dropped to stay within max_entries"


async def test_redis_store_sets_ttl_and_is_shared(redis_client: aioredis.Redis) -> None:
    one = WebhookReceiver(SECRET, store=RedisDedupeStore(redis_client, 120), clock=lambda: TIMESTAMP)
    two = WebhookReceiver(SECRET, store=RedisDedupeStore(redis_client, 120), clock=lambda: TIMESTAMP)
    await one.verify(headers(), BODY)
    with pytest.raises(DuplicateDelivery):
        await two.verify(headers(), BODY)
    ttl = await redis_client.pttl("pushhub:webhook-id:" + MSG_ID)
    assert 0 < ttl <= 120_000


async def test_receiver_dedupes_and_releases_on_failure() -> None:
    receiver = WebhookReceiver(SECRET, clock=lambda: TIMESTAMP)
    with pytest.raises(RuntimeError):
        async with receiver.receive(headers(), BODY):
            raise RuntimeError("processing failed")
    async with receiver.receive(headers(), BODY) as webhook:
        assert webhook.id == MSG_ID
    with pytest.raises(DuplicateDelivery):
        await receiver.verify(headers(), BODY)
    with pytest.raises(InvalidSignature):
        await receiver.verify(headers(), BODY + b" ")


# ASGI middleware, behind a real uvicorn ------------------------------------------------------------

@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.get_running_loop().create_task(server.serve())
    async with asyncio.timeout(4 * TIMEOUT):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(POLL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 4 * TIMEOUT)


def receiver_app(receiver: WebhookReceiver, processed: list[tuple[str, Any]], fail_once: set[str]) -> Starlette:
    async def hooks(request: Request) -> JSONResponse:
        webhook: Webhook = request.state.webhook
        payload = await request.json()
        if webhook.id in fail_once:
            fail_once.remove(webhook.id)
            return JSONResponse({"error": "try again"}, status_code=503)
        processed.append((webhook.id, payload))
        return JSONResponse({"ok": True})

    async def other(request: Request) -> JSONResponse:
        return JSONResponse({"unverified": (await request.body()).decode()})

    return Starlette(routes=[Route("/hooks", hooks, methods=["POST"]), Route("/other", other, methods=["POST"])],
                     middleware=[Middleware(WebhookMiddleware, receiver=receiver, paths=["/hooks"],
                                            max_body_bytes=1000)])


async def test_middleware_over_real_http() -> None:
    clock = FakeClock(TIMESTAMP)
    processed: list[tuple[str, Any]] = []
    app = receiver_app(WebhookReceiver(SECRET, clock=clock), processed, fail_once={"msg_5"})

    def delivery(msg_id: str, body: bytes, timestamp: int = TIMESTAMP) -> dict[str, Any]:
        return {"content": body, "headers": headers(msg_id, timestamp,
                                                    reference_signature(SECRET, msg_id, timestamp, body))}

    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
        accepted = await http.post("/hooks", **delivery("msg_1", b'{"n": 1}'))
        assert accepted.status_code == 200 and accepted.json() == {"ok": True}
        duplicate = await http.post("/hooks", **delivery("msg_1", b'{"n": 1}'))
        assert (duplicate.status_code, duplicate.json()) == (200, {"status": "duplicate"})

        tampered = await http.post("/hooks", content=b'{"n": 2}', headers=delivery("msg_2", b'{"n": 1}')["headers"])
        assert tampered.status_code == 401 and tampered.json()["error"]["code"] == "invalid_signature"
        stale = await http.post("/hooks", **delivery("msg_3", b'{"n": 3}', timestamp=TIMESTAMP - 3600))
        assert stale.status_code == 400 and stale.json()["error"]["code"] == "stale_timestamp"
        unsigned = await http.post("/hooks", content=b"{}")
        assert unsigned.status_code == 400 and unsigned.json()["error"]["code"] == "missing_headers"
        too_big = await http.post("/hooks", **delivery("msg_4", b'{"pad": "' + b"x" * 2000 + b'"}'))
        assert too_big.status_code == 413

        failed = await http.post("/hooks", **delivery("msg_5", b'{"n": 5}'))
        assert failed.status_code == 503
        retried = await http.post("/hooks", **delivery("msg_5", b'{"n": 5}'))
        assert retried.status_code == 200, "a delivery the app failed must be accepted when retried"

        passthrough = await http.post("/other", content=b"plain")
        assert passthrough.json() == {"unverified": "plain"}
    assert processed == [("msg_1", {"n": 1}), ("msg_5", {"n": 5})]
