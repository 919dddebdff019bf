"""Ingest webhooks end to end against a real hub process: signed by the providers' libraries,
rejected when anything is off, and never published twice."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook
from stripe import WebhookSignature

from .utils import TIMEOUT, HubProcess

ADMIN = "admin-key-for-ingest-tests"
STRIPE_SECRET = "whsec_stripe_test_secret"
STD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
GITHUB_SECRET = "It's a Secret to Everybody"

CONFIG = f"""
[sources.github]
scheme = "github"
secrets = ["an-old-github-secret", "{GITHUB_SECRET}"]
channel = "gh"

[sources.stripe]
scheme = "stripe"
secret_env = "TEST_STRIPE_SECRET"
channel = "payments"

[sources.slack]
scheme = "slack"
secrets = ["slack-signing-secret"]
channel = "slack"

[sources.shopify]
scheme = "shopify"
secrets = ["shpss_secret"]
channel = "shop"

[sources.svix]
scheme = "standard"
secrets = ["{STD_SECRET}"]
channel = "std"

[sources.plain]
scheme = "hmac"
secrets = ["plain-secret"]
header = "X-Webhook-Signature"
id = "header:X-Request-Id"
channel = "plain"

[sources.trusted]
scheme = "none"
channel = "trusted"
type = ["body:kind", "const:note"]

[sources.fenced]
scheme = "none"
channel = "fenced"
allow = ["10.0.0.0/8", "192.168.0.0/16"]

[sources.tiny]
scheme = "none"
channel = "tiny"
max_body_bytes = 64
"""


def start_hub(tmp: Path, *args: str) -> HubProcess:
    config = tmp / "ingest.toml"
    config.write_text(CONFIG)
    hub = HubProcess(["--data-dir", str(tmp / "data"), "--ingest-config", str(config), "--admin-key", ADMIN,
                      *args], env={"TEST_STRIPE_SECRET": STRIPE_SECRET}, log_path=str(tmp / "hub.log"))
    return hub.start()


@pytest.fixture(scope="module")
def ingest_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    hub = start_hub(tmp_path_factory.mktemp("ingest"))
    yield hub
    hub.stop()


@pytest.fixture
async def client(ingest_hub: HubProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=ingest_hub.url, timeout=TIMEOUT,
                                 headers={"authorization": f"Bearer {ADMIN}"}) as c:
        yield c


async def history(client: httpx.AsyncClient, channel: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/channels/{channel}/events", params={"limit": 1000})
    assert response.status_code == 200, response.text
    return list(response.json()["events"])


def now() -> int:
    return int(time.time())


def github(body: bytes, delivery: str, secret: str = GITHUB_SECRET) -> dict[str, str]:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-hub-signature-256": signature, "x-github-delivery": delivery, "x-github-event": "push",
            "content-type": "application/json"}


def stripe(body: bytes, ts: int | None = None, secret: str = STRIPE_SECRET) -> dict[str, str]:
    header = WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=ts or now())
    return {"stripe-signature": header, "content-type": "application/json"}


def slack(body: bytes, ts: int | None = None, secret: str = "slack-signing-secret") -> dict[str, str]:
    stamp = str(ts or now())
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    return {"x-slack-request-timestamp": stamp, "x-slack-signature": signature, "content-type": "application/json"}


def shopify(body: bytes, event_id: str, secret: str = "shpss_secret") -> dict[str, str]:
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"x-shopify-hmac-sha256": signature, "x-shopify-event-id": event_id,
            "x-shopify-topic": "orders/create", "content-type": "application/json"}


def standard(body: bytes, msg_id: str, ts: int | None = None, secret: str = STD_SECRET) -> dict[str, str]:
    stamp = ts or now()
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(stamp, UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature,
            "content-type": "application/json"}


def plain(body: bytes, request_id: str, secret: str = "plain-secret") -> dict[str, str]:
    return {"x-webhook-signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "x-request-id": request_id}


STRIPE_BODY = b'{"id":"evt_1A","object":"event","type":"payment_intent.succeeded","data":{"object":{"amount":5}}}'
SLACK_BODY = b'{"type":"event_callback","event_id":"Ev01","event":{"type":"app_mention","text":"hi"}}'

# source, channel, body, headers factory, expected event type, expected delivery id
CASES: list[tuple[str, str, bytes, Callable[[], dict[str, str]], str, str]] = [
    ("github", "gh", b'{"ref":"refs/heads/main"}', lambda: github(b'{"ref":"refs/heads/main"}', "d-1"),
     "push", "d-1"),
    ("stripe", "payments", STRIPE_BODY, lambda: stripe(STRIPE_BODY), "payment_intent.succeeded", "evt_1A"),
    ("slack", "slack", SLACK_BODY, lambda: slack(SLACK_BODY), "app_mention", "Ev01"),
    ("shopify", "shop", b'{"id":7}', lambda: shopify(b'{"id":7}', "shop-ev-1"), "orders/create", "shop-ev-1"),
    ("svix", "std", b'{"type":"invoice.paid","n":1}', lambda: standard(b'{"type":"invoice.paid","n":1}', "msg_1"),
     "invoice.paid", "msg_1"),
    ("plain", "plain", b'{"type":"build.done"}', lambda: plain(b'{"type":"build.done"}', "req-1"),
     "build.done", "req-1"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_signed_delivery_published_once(client: httpx.AsyncClient, case: tuple[Any, ...]) -> None:
    source, channel, body, make_headers, type_, delivery = case
    first = await client.post(f"/v1/ingest/{source}", content=body, headers=make_headers())
    assert first.status_code == 202, first.text
    assert first.json()["duplicate"] is False
    again = await client.post(f"/v1/ingest/{source}", content=body, headers=make_headers())
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert again.json()["offset"] == first.json()["offset"]
    (event,) = [e for e in await history(client, channel) if e["meta"].get("delivery_id") == delivery]
    assert event["type"] == type_
    assert event["data"] == orjson.loads(body)
    assert event["meta"] == {"source": source, "delivery_id": delivery}


REJECTED: list[tuple[str, str, bytes, Callable[[], dict[str, str]], int]] = [
    ("github", "tampered body", b'{"ref":"x"}', lambda: github(b'{"ref":"y"}', "r-1"), 401),
    ("github", "wrong secret", b"{}", lambda: github(b"{}", "r-2", "not the secret"), 401),
    ("github", "missing header", b"{}", lambda: {"x-github-delivery": "r-3"}, 401),
    ("stripe", "stale", STRIPE_BODY, lambda: stripe(STRIPE_BODY, now() - 400), 401),
    ("stripe", "future", STRIPE_BODY, lambda: stripe(STRIPE_BODY, now() + 400), 401),
    ("stripe", "tampered header", STRIPE_BODY,
     lambda: {"stripe-signature": stripe(STRIPE_BODY)["stripe-signature"].replace("t=", "t=1")}, 401),
    ("stripe", "wrong secret", STRIPE_BODY, lambda: stripe(STRIPE_BODY, secret="whsec_other"), 401),
    ("slack", "stale", SLACK_BODY, lambda: slack(SLACK_BODY, now() - 301), 401),
    ("slack", "tampered body", SLACK_BODY + b" ", lambda: slack(SLACK_BODY), 401),
    ("shopify", "wrong secret", b"{}", lambda: shopify(b"{}", "x", "nope"), 401),
    ("svix", "future", b"{}", lambda: standard(b"{}", "msg_f", now() + 400), 401),
    ("svix", "tampered id", b"{}", lambda: {**standard(b"{}", "msg_a"), "webhook-id": "msg_b"}, 401),
    ("plain", "tampered body", b'{"a":1}', lambda: plain(b'{"a":2}', "p-1"), 401),
    ("plain", "missing header", b"{}", lambda: {"x-request-id": "p-2"}, 401),
    ("fenced", "address outside allowlist", b"{}", dict, 403),
    ("tiny", "oversize body", b"x" * 65, dict, 413),
    ("nosuch", "unknown source", b"{}", dict, 404),
]


async def top(client: httpx.AsyncClient, channel: str) -> int:
    response = await client.get(f"/v1/channels/{channel}")
    assert response.status_code == 200, response.text
    return int(response.json()["top"])


@pytest.mark.parametrize("case", REJECTED, ids=[f"{c[0]}-{c[1]}" for c in REJECTED])
async def test_rejected_and_nothing_published(client: httpx.AsyncClient, case: tuple[Any, ...]) -> None:
    source, _, body, make_headers, status = case
    sources = (await client.get("/v1/admin/ingest/sources")).json()["sources"]
    channel = next((s["channel"] for s in sources if s["name"] == source), "unused")
    before = await top(client, channel)
    response = await client.post(f"/v1/ingest/{source}", content=body, headers=make_headers())
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
    assert await top(client, channel) == before


async def test_oversize_streamed_body_without_length(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 10

    response = await client.post("/v1/ingest/tiny", content=chunks())
    assert response.status_code == 413
    assert await history(client, "tiny") == []


async def test_type_derivation_and_non_json_body(client: httpx.AsyncClient) -> None:
    one = await client.post("/v1/ingest/trusted", content=b'{"kind":"deploy finished!"}')
    two = await client.post("/v1/ingest/trusted", content=b"\xff not json")
    assert one.status_code == two.status_code == 202
    first, second = await history(client, "trusted")
    assert first["type"] == "deploy_finished_"
    assert second["type"] == "note"
    assert second["data"] == "\ufffd not json"
    assert "delivery_id" not in second["meta"]


async def test_slack_url_verification_answers_challenge(client: httpx.AsyncClient) -> None:
    body = b'{"type":"url_verification","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}'
    response = await client.post("/v1/ingest/slack", content=body, headers=slack(body))
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    assert all(e["type"] != "url_verification" for e in await history(client, "slack"))


async def test_admin_lists_sources_without_secrets(ingest_hub: HubProcess, client: httpx.AsyncClient) -> None:
    listing = await client.get("/v1/admin/ingest/sources")
    assert listing.status_code == 200
    by_name = {s["name"]: s for s in listing.json()["sources"]}
    assert by_name["github"]["secrets"] == 2
    assert by_name["stripe"]["tolerance"] == 300
    assert by_name["plain"]["header"] == "x-webhook-signature"
    assert listing.json()["dedupe_window"] == 72 * 3600
    assert GITHUB_SECRET not in listing.text and STRIPE_SECRET not in listing.text
    async with httpx.AsyncClient(base_url=ingest_hub.url, timeout=TIMEOUT) as anonymous:
        assert (await anonymous.get("/v1/admin/ingest/sources")).status_code == 401
        wrong = await anonymous.get("/v1/admin/ingest/sources", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401


async def test_concurrent_duplicates_publish_once(client: httpx.AsyncClient) -> None:
    body = b'{"type":"race"}'
    responses = await asyncio.gather(*(client.post("/v1/ingest/svix", content=body,
                                                   headers=standard(body, "msg_race")) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [200] * 7 + [202]
    assert len([e for e in await history(client, "std") if e["type"] == "race"]) == 1


async def test_dedupe_survives_restart(tmp_path: Path) -> None:
    hub = start_hub(tmp_path)
    try:
        body = b'{"ref":"restart"}'
        async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT,
                                     headers={"authorization": f"Bearer {ADMIN}"}) as c:
            assert (await c.post("/v1/ingest/github", content=body, headers=github(body, "d-r"))).status_code == 202
        hub.restart()
        async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT,
                                     headers={"authorization": f"Bearer {ADMIN}"}) as c:
            again = await c.post("/v1/ingest/github", content=body, headers=github(body, "d-r"))
            assert again.status_code == 200 and again.json()["duplicate"] is True
            assert len(await history(c, "gh")) == 1
    finally:
        hub.stop()


def test_bad_config_refused_at_startup(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[sources.x]\nscheme = "rot13"\nchannel = "x"\nsecrets = ["s"]\n')
    hub = HubProcess(["--memory", "--ingest-config", str(config)], log_path=str(tmp_path / "log"))
    with pytest.raises(RuntimeError, match="unknown signature scheme"):
        hub.start()


def svix(body: bytes, msg_id: str) -> dict[str, str]:
    """A Standard Webhooks request signed with Svix's older ``svix-*`` header names."""
    return {k.replace("webhook-", "svix-"): v for k, v in standard(body, msg_id).items()}


async def test_svix_signed_request_deduped_by_the_signed_id(client: httpx.AsyncClient) -> None:
    """An unsigned ``webhook-id`` added to a ``svix-*`` signed replay does not make it new."""
    body = b'{"type":"svix.replayed"}'
    headers = svix(body, "msg_signed")
    answers = [await client.post("/v1/ingest/svix", content=body, headers={**headers, **extra})
               for extra in ({}, {"webhook-id": "a"}, {"webhook-id": "b"})]
    assert [a.status_code for a in answers] == [202, 200, 200], [a.text for a in answers]
    assert {a.json()["delivery_id"] for a in answers} == {"msg_signed"}
    (event,) = [e for e in await history(client, "std") if e["type"] == "svix.replayed"]
    assert event["meta"]["delivery_id"] == "msg_signed"


SLASH_COMMAND = b"command=%2Fdeploy&text=prod&user_id=U1&trigger_id=13345224609.738474920.8088930838d88f008e0"


@pytest.mark.parametrize("source, channel, body, sign", [
    ("slack", "slack", SLASH_COMMAND,
     lambda body, ts: {**slack(body, ts), "content-type": "application/x-www-form-urlencoded"}),
    ("stripe", "payments", b'{"object":"event","type":"no.id.here"}', lambda body, ts: stripe(body, ts)),
], ids=["slack-slash-command", "stripe-without-id"])
async def test_request_without_id_deduped_by_its_signature(client: httpx.AsyncClient, source: str, channel: str,
                                                          body: bytes, sign: Callable[[bytes, int], dict[str, str]]
                                                          ) -> None:
    """The same signed request twice is one delivery; the provider signing the body anew (another
    timestamp) is another."""
    before = await top(client, channel)
    signed = sign(body, now())
    first = await client.post(f"/v1/ingest/{source}", content=body, headers=signed)
    again = await client.post(f"/v1/ingest/{source}", content=body, headers=signed)
    assert (first.status_code, again.status_code) == (202, 200), (first.text, again.text)
    assert again.json()["duplicate"] is True and again.json()["offset"] == first.json()["offset"]
    assert first.json()["delivery_id"] is None
    resent = await client.post(f"/v1/ingest/{source}", content=body, headers=sign(body, now() - 10))
    assert resent.status_code == 202, resent.text
    assert await top(client, channel) == before + 2


async def test_forwarded_for_is_not_believed_from_an_unnamed_proxy(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/ingest/fenced", content=b"{}", headers={"x-forwarded-for": "10.9.9.9"})
    assert response.status_code == 403, response.text
    assert "127.0.0.1" in response.json()["error"]["message"]


async def test_forwarded_for_is_believed_from_a_named_proxy(tmp_path: Path) -> None:
    hub = start_hub(tmp_path, "--forwarded-allow-ips", "127.0.0.1")
    try:
        async with httpx.AsyncClient(base_url=hub.url, timeout=TIMEOUT) as client:
            spoofed = {"x-forwarded-for": "10.9.9.9, 127.0.0.1"}  # the proxy itself appended another hop
            assert (await client.post("/v1/ingest/fenced", content=b"{}", headers=spoofed)).status_code == 202
            outside = await client.post("/v1/ingest/fenced", content=b"{}", headers={"x-forwarded-for": "8.8.8.8"})
            assert outside.status_code == 403
            assert "8.8.8.8" in outside.json()["error"]["message"]
    finally:
        hub.stop()


async def test_ingest_answers_alike_with_an_origin_and_without(client: httpx.AsyncClient) -> None:
    """An ingest request without an Origin takes the hub's short path past the middleware; with one,
    the whole stack: the answers are the same, accepted, repeated or refused."""
    body = b'{"type":"order.paid","data":{"n":1}}'
    for origin in ({}, {"origin": "https://elsewhere.example"}):
        msg = f"msg_alike_{bool(origin)}"
        forged = standard(body, msg, secret="whsec_" + base64.b64encode(b"x" * 24).decode())
        answers = [await client.post("/v1/ingest/svix", content=body, headers={**standard(body, msg), **origin}),
                   await client.post("/v1/ingest/svix", content=body, headers={**standard(body, msg), **origin}),
                   await client.post("/v1/ingest/svix", content=body, headers={**forged, **origin}),
                   await client.post("/v1/ingest/nowhere", content=body, headers=origin)]
        assert [a.status_code for a in answers] == [202, 200, 401, 404]
        assert [a.json().get("duplicate") for a in answers[:2]] == [False, True]
        assert answers[0].json()["delivery_id"] == msg
        assert [a.json()["error"]["code"] for a in answers[2:]] == ["bad_signature", "unknown_source"]
        for answer in answers:
            assert answer.headers["content-type"] == "application/json" and answer.headers["vary"] == "Origin"
