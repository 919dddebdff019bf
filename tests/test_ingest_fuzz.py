"""Hypothesis-generated requests against the hub's ASGI app, in process: never a 5xx."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pushhub.ingest.verify import SCHEMES, Signature, SignatureError, verify

from .fuzz_utils import ADMIN, HEADER_NAMES, InProcess, bodies, header_lists, values

CONFIG = """
[sources.github]
scheme = "github"
secrets = ["gh-secret"]
channel = "gh"
[sources.stripe]
scheme = "stripe"
secrets = ["whsec_s"]
channel = "st"
[sources.slack]
scheme = "slack"
secrets = ["sl"]
channel = "sl"
[sources.shopify]
scheme = "shopify"
secrets = ["sh"]
channel = "sh"
[sources.std]
scheme = "standard"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
channel = "std"
[sources.plain]
scheme = "hmac"
secrets = ["p"]
encoding = "base64"
prefix = "sha256="
id = ["header:x-id", "body:id"]
channel = "plain"
[sources.open]
scheme = "none"
channel = "open"
type = ["body:kind", "body:a.b", "header:x-kind"]
id = ["body:id"]
max_body_bytes = 4096
"""
SOURCES = ["github", "stripe", "slack", "shopify", "std", "plain", "open", "nosuch"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    hub = InProcess(tmp_path_factory.mktemp("fuzz"), CONFIG)
    yield hub
    hub.close()


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(source=st.sampled_from(SOURCES), headers=header_lists, body=bodies)
def test_ingest_never_5xx(hub: InProcess, source: str, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    response = hub.request("POST", f"/v1/ingest/{source}", headers=headers, content=body)
    assert response.status_code < 500, response.text


@FUZZ
@given(body=bodies, delivery=values, event=values, content_type=st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]))
def test_signed_garbage_never_5xx(hub: InProcess, body: bytes, delivery: bytes, event: bytes,
                                  content_type: str) -> None:
    """Correctly signed requests reach type and id extraction with arbitrary bodies and headers."""
    signature = "sha256=" + hmac.new(b"gh-secret", body, hashlib.sha256).hexdigest()
    headers = [(b"x-hub-signature-256", signature.encode()), (b"x-github-delivery", delivery),
               (b"x-github-event", event), (b"content-type", content_type.encode())]
    response = hub.request("POST", "/v1/ingest/github", headers=headers, content=body)
    assert response.status_code in (200, 202), response.text
    response = hub.request("POST", "/v1/ingest/open", headers=[(b"x-kind", event)], content=body)
    assert response.status_code in (200, 202), response.text


@FUZZ
@given(channel=st.sampled_from(["orders", "public:x", "bad name", "x" * 200]), headers=header_lists, body=bodies,
       token=st.one_of(st.none(), st.text(max_size=60), st.sampled_from(["a.b.c", "eyJhbGciOiJub25lIn0.e30.", ADMIN])))
def test_publish_and_history_never_5xx(hub: InProcess, channel: str, headers: list[tuple[bytes, bytes]],
                                       body: bytes, token: str | None) -> None:
    params = {"token": token} if token is not None else {}
    published = hub.request("POST", f"/v1/channels/{channel}/events", headers=headers, content=body)
    assert published.status_code < 500, published.text
    read = hub.request("GET", f"/v1/channels/{channel}/events", headers=headers, params=params)
    assert read.status_code < 500, read.text


@settings(max_examples=200, deadline=None)
@given(scheme=st.sampled_from(SCHEMES), headers=st.dictionaries(st.sampled_from(HEADER_NAMES), st.text(max_size=80)),
       body=st.binary(max_size=200))
def test_verify_only_raises_signature_errors(scheme: str, headers: dict[str, str], body: bytes) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    spec = Signature(scheme, () if scheme == "none" else (secret,))
    with contextlib.suppress(SignatureError):
        verify(spec, headers, body, time.time())
