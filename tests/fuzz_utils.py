"""What the fuzz tests share: Hypothesis strategies for hostile HTTP input, and the hub's ASGI app
run in process (every request goes through the whole app, at thousands per second)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import orjson
from hypothesis import strategies as st

from pushhub.app import PushHub
from pushhub.config import Settings

ADMIN = "admin-key-for-fuzzing"
HEADER_NAMES = ["x-hub-signature-256", "x-github-delivery", "x-github-event", "stripe-signature", "x-slack-signature",
                "x-slack-request-timestamp", "x-shopify-hmac-sha256", "x-shopify-event-id", "webhook-id",
                "webhook-timestamp", "webhook-signature", "svix-signature", "x-webhook-signature", "x-id", "x-kind",
                "content-type", "content-length", "authorization", "cookie", "origin", "idempotency-key"]

values = st.binary(max_size=80).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F))
header_lists = st.lists(st.tuples(st.one_of(st.sampled_from(HEADER_NAMES),
                                            st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)).map(str.encode),
                                  values), max_size=8)
scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
           | st.text(max_size=20))
json_values = st.recursive(scalars,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                               st.sampled_from(["id", "type", "kind", "a", "b", "event", "event_id", "challenge"])
                               | st.text(max_size=5), inner, max_size=4), max_leaves=10)
bodies = st.one_of(st.binary(max_size=300), json_values.map(orjson.dumps))


class InProcess:
    """The hub's ASGI app with its lifespan, on an in-memory backend, called through httpx from a
    loopback address; ``request`` runs one request to completion (streams are not for this)."""

    def __init__(self, tmp: Path, ingest_config: str) -> None:
        config = tmp / "ingest.toml"
        config.write_text(ingest_config)
        self.app = PushHub(Settings(memory=True, ingest_config=str(config), admin_keys=[ADMIN],
                                    jwt_secrets=["a-jwt-secret-that-is-32-bytes-long!"], public_channels=["public:*"],
                                    cors_origins=["https://app.example"]))
        self.runner = asyncio.Runner()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app, client=("127.0.0.1", 5000)),
                                        base_url="http://hub")
        self.lifespan = self.app.api.router.lifespan_context(self.app.api)
        self.runner.run(self.lifespan.__aenter__())

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.runner.run(self.client.request(method, path, **kwargs))

    def close(self) -> None:
        self.runner.run(self.lifespan.__aexit__(None, None, None))
        self.runner.run(self.client.aclose())
        self.runner.close()
