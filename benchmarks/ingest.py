"""Costs of ingest and access control: signature verification and token checks per call, and
signed webhooks per second through a real hub (SQLite, durable append + dedupe record).

Run from the repository root: ``python -m benchmarks.ingest [--requests N] [--concurrency C]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import statistics
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from pushhub.auth import Access, JWTVerifier
from pushhub.ingest.verify import Signature, verify
from tests.utils import HubProcess

BODY = b'{"id":"evt_1","type":"payment_intent.succeeded","data":' + b'"' + b"x" * 1000 + b'"}'
NOW = int(time.time())
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def per_call(fn: object, number: int = 20_000) -> float:
    return timeit.timeit(fn, number=number) / number * 1e6  # type: ignore[arg-type]


def verification() -> None:
    mac = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    std = base64.b64encode(hmac.new(key, f"m.{NOW}.".encode() + BODY, hashlib.sha256).digest()).decode()
    cases = {
        "github": (Signature("github", (SECRET,)),
                   {"x-hub-signature-256": "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()}),
        "stripe": (Signature("stripe", (SECRET,)), {"stripe-signature": f"t={NOW},v1={mac}"}),
        "standard": (Signature("standard", (SECRET,)),
                     {"webhook-id": "m", "webhook-timestamp": str(NOW), "webhook-signature": "v1," + std}),
        "stripe, 3 secrets": (Signature("stripe", ("whsec_a", "whsec_b", SECRET)),
                              {"stripe-signature": f"t={NOW},v1={mac}"}),
    }
    for name, (spec, headers) in cases.items():
        cost = per_call(lambda spec=spec, headers=headers: verify(spec, headers, BODY, NOW))
        print(f"verify {name:<18} {cost:6.1f} µs  (1 KB body)")


def tokens() -> None:
    secret = "a-jwt-secret-that-is-32-bytes-long!"
    es_key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import serialization

    pem = es_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    access = Access(jwt_verifier=JWTVerifier([secret], [pem]), publisher_keys=["k" * 32])
    claims = {"exp": time.time() + 3600, "pushhub": {"subscribe": ["orders", "user.42.*"], "publish": []}}
    hs = jwt.encode(claims, secret, algorithm="HS256")
    es = jwt.encode(claims, es_key, algorithm="ES256")
    print(f"grant HS256 token        {per_call(lambda: access.grant(hs), 5000):6.1f} µs")
    print(f"grant ES256 token        {per_call(lambda: access.grant(es), 2000):6.1f} µs")
    print(f"grant publisher key      {per_call(lambda: access.grant('k' * 32)):6.1f} µs")


async def load(hub: HubProcess, label: str, requests: int, concurrency: int,
               request: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]) -> None:
    latencies: list[float] = []
    queue = iter(range(requests))

    async def worker(client: httpx.AsyncClient) -> None:
        for n in queue:
            start = time.perf_counter()
            response = await request(client, n)
            latencies.append(time.perf_counter() - start)
            assert response.status_code in (200, 202), response.text

    async with httpx.AsyncClient(base_url=hub.url, limits=httpx.Limits(max_connections=concurrency)) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    p50, p99 = statistics.median(latencies) * 1000, latencies[int(len(latencies) * 0.99)] * 1000
    print(f"{label}: {requests} requests, {concurrency} concurrent: {requests / elapsed:.0f} req/s, "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")


async def end_to_end(requests: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "ingest.toml"
        config.write_text(f'[sources.gh]\nscheme = "github"\nsecrets = ["{SECRET}"]\nchannel = "gh"\n')
        hub = HubProcess(["--data-dir", tmp, "--ingest-config", str(config)]).start()
        signature = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()

        def ingest(client: httpx.AsyncClient, n: int) -> Awaitable[httpx.Response]:
            headers = {"x-hub-signature-256": signature, "x-github-delivery": f"d-{n % (requests // 2)}",
                       "x-github-event": "push"}
            return client.post("/v1/ingest/gh", content=BODY, headers=headers)

        def publish(client: httpx.AsyncClient, n: int) -> Awaitable[httpx.Response]:
            return client.post("/v1/channels/plain/events", content=b'{"type":"push","data":%s}' % BODY)

        def idempotent(client: httpx.AsyncClient, n: int) -> Awaitable[httpx.Response]:
            return client.post("/v1/channels/idem/events", content=b'{"type":"push","data":%s}' % BODY,
                               headers={"idempotency-key": f"k-{n}"})

        try:
            await load(hub, "publish, no key (baseline)", requests, concurrency, publish)
            await load(hub, "publish with Idempotency-Key", requests, concurrency, idempotent)
            await load(hub, "ingest, signed GitHub webhook, half repeats", requests, concurrency, ingest)
        finally:
            hub.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    verification()
    tokens()
    asyncio.run(end_to_end(args.requests, args.concurrency))


if __name__ == "__main__":
    main()
