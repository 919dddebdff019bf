"""Webhook signature verification on plain values: published vectors and signatures made by the
providers' own libraries."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from slack_sdk.signature import SignatureVerifier
from standardwebhooks.webhooks import Webhook
from stripe import WebhookSignature

from pushhub.errors import BadRequest
from pushhub.ingest.verify import Signature, SignatureError, StaleTimestamp, verify

NOW = 1_700_000_000
STRIPE_SECRET = "whsec_test_secret_for_stripe"
STD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = b'{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{}}}'


def test_github_published_vector() -> None:
    spec = Signature("github", ("It's a Secret to Everybody",))
    good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    verify(spec, {"x-hub-signature-256": good}, b"Hello, World!", NOW)
    with pytest.raises(SignatureError):
        verify(spec, {"x-hub-signature-256": good}, b"Hello, World?", NOW)


def test_standard_webhooks_published_vector() -> None:
    spec = Signature("standard", (STD_SECRET,), tolerance=300)
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    verify(spec, headers, b'{"test": 2432232314}', 1614265330 + 10)
    with pytest.raises(StaleTimestamp):
        verify(spec, headers, b'{"test": 2432232314}', 1614265330 + 301)


def standard_headers(secret: str, msg_id: str, ts: int, body: bytes) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_standard_webhooks_library_rotation_and_tamper() -> None:
    old, new = STD_SECRET, "whsec_" + base64.b64encode(b"another key of some length!").decode()
    headers = standard_headers(new, "msg_1", NOW, BODY)
    verify(Signature("standard", (old, new)), headers, BODY, NOW)
    with pytest.raises(SignatureError):
        verify(Signature("standard", (old,)), headers, BODY, NOW)
    with pytest.raises(SignatureError):
        verify(Signature("standard", (new,)), {**headers, "webhook-id": "msg_2"}, BODY, NOW)
    with pytest.raises(SignatureError):
        verify(Signature("standard", (new,)), headers, BODY + b" ", NOW)
    both = {**headers, "webhook-signature": "v1,AAAA " + headers["webhook-signature"]}
    verify(Signature("standard", (new,)), both, BODY, NOW)
    svix = {"svix-" + k.removeprefix("webhook-"): v for k, v in headers.items()}
    verify(Signature("standard", (new,)), svix, BODY, NOW)


def test_stripe_library_header() -> None:
    spec = Signature("stripe", ("whsec_old", STRIPE_SECRET))
    header = WebhookSignature.generate_signature_header(BODY.decode(), STRIPE_SECRET, timestamp=NOW)
    verify(spec, {"stripe-signature": header}, BODY, NOW + 299)
    with pytest.raises(StaleTimestamp):
        verify(spec, {"stripe-signature": header}, BODY, NOW + 301)
    with pytest.raises(StaleTimestamp):
        verify(spec, {"stripe-signature": header}, BODY, NOW - 301)
    with pytest.raises(SignatureError):
        verify(Signature("stripe", ("whsec_other",)), {"stripe-signature": header}, BODY, NOW)
    forged_t = header.replace(f"t={NOW}", f"t={NOW + 1}")
    with pytest.raises(SignatureError):
        verify(spec, {"stripe-signature": forged_t}, BODY, NOW)
    # Stripe may send several v1 signatures (and a v0 we ignore) while secrets roll.
    multi = f"{header},v1={'0' * 64},v0=abc"
    verify(spec, {"stripe-signature": multi}, BODY, NOW)


def test_slack_library_signature() -> None:
    body = b"token=x&team_id=T1&command=%2Fdeploy"
    signature = SignatureVerifier("slack-signing-secret").generate_signature(timestamp=str(NOW), body=body)
    assert signature is not None
    spec = Signature("slack", ("slack-signing-secret",))
    headers = {"x-slack-request-timestamp": str(NOW), "x-slack-signature": signature}
    verify(spec, headers, body, NOW)
    with pytest.raises(StaleTimestamp):
        verify(spec, headers, body, NOW + 301)
    with pytest.raises(SignatureError):
        verify(spec, {**headers, "x-slack-request-timestamp": str(NOW + 1)}, body, NOW)


def test_shopify_base64() -> None:
    signature = base64.b64encode(hmac.new(b"shpss_x", BODY, hashlib.sha256).digest()).decode()
    spec = Signature("shopify", ("shpss_x",))
    verify(spec, {"x-shopify-hmac-sha256": signature}, BODY, NOW)
    with pytest.raises(SignatureError):
        verify(spec, {"x-shopify-hmac-sha256": signature.lower()}, BODY, NOW)


@pytest.mark.parametrize(("algorithm", "encoding", "prefix"), [
    ("sha256", "hex", ""), ("sha1", "hex", "sha1="), ("sha512", "base64", ""), ("sha256", "base64", "v1=")])
def test_generic_hmac(algorithm: str, encoding: str, prefix: str) -> None:
    digest = hmac.new(b"s3cret", BODY, algorithm).digest()
    value = prefix + (digest.hex() if encoding == "hex" else base64.b64encode(digest).decode())
    spec = Signature("hmac", ("s3cret",), header="x-sig", algorithm=algorithm, encoding=encoding, prefix=prefix)
    verify(spec, {"x-sig": value}, BODY, NOW)
    with pytest.raises(SignatureError):
        verify(spec, {"x-sig": value}, BODY[:-1], NOW)
    with pytest.raises(SignatureError):
        verify(spec, {"x-other": value}, BODY, NOW)


def test_plain_x_webhook_signature_hex_default() -> None:
    value = hmac.new(b"k", BODY, hashlib.sha256).hexdigest()
    verify(Signature("hmac", ("k",)), {"x-webhook-signature": value.upper()}, BODY, NOW)


@pytest.mark.parametrize("headers", [
    {}, {"stripe-signature": ""}, {"stripe-signature": "t=abc,v1=00"}, {"stripe-signature": "v1=00"},
    {"stripe-signature": "t=1700000000"}, {"stripe-signature": "garbage"},
    {"stripe-signature": "t=99999999999999999999,v1=00"}, {"stripe-signature": "t=-1,v1=00"},
])
def test_missing_or_malformed_header_fails_closed(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        verify(Signature("stripe", (STRIPE_SECRET,)), headers, BODY, NOW)


def test_unknown_scheme_and_missing_secret_refused_at_config() -> None:
    with pytest.raises(BadRequest, match="unknown signature scheme"):
        Signature("rot13", ("x",))
    with pytest.raises(BadRequest, match="at least one secret"):
        Signature("github")
    with pytest.raises(BadRequest, match="base64"):
        Signature("standard", ("whsec_not*base64",))
    verify(Signature("none"), {}, BODY, NOW)


def test_verified_headers_are_those_of_the_checked_variant() -> None:
    own = standard_headers(STD_SECRET, "msg_1", NOW, BODY)
    svix = {"svix-" + k.removeprefix("webhook-"): v for k, v in own.items()}
    verified = verify(Signature("standard", (STD_SECRET,)), {**svix, "webhook-id": "forged"}, BODY, NOW)
    assert verified.headers == svix
    assert verify(Signature("standard", (STD_SECRET,)), {**own, "svix-id": "forged"}, BODY, NOW).headers == own


def test_fingerprint_of_timestamped_signatures_only() -> None:
    spec = Signature("stripe", (STRIPE_SECRET,))
    header = WebhookSignature.generate_signature_header(BODY.decode(), STRIPE_SECRET, timestamp=NOW)
    first = verify(spec, {"stripe-signature": header}, BODY, NOW).fingerprint
    padded = verify(spec, {"stripe-signature": header + ",v1=00ff"}, BODY, NOW).fingerprint
    later = WebhookSignature.generate_signature_header(BODY.decode(), STRIPE_SECRET, timestamp=NOW + 1)
    assert first is not None and first == padded  # an extra signature does not make the request new
    assert verify(spec, {"stripe-signature": later}, BODY, NOW).fingerprint not in (None, first)
    github = "sha256=" + hmac.new(b"k", BODY, hashlib.sha256).hexdigest()
    assert verify(Signature("github", ("k",)), {"x-hub-signature-256": github}, BODY, NOW).fingerprint is None
    assert verify(Signature("none"), {}, BODY, NOW).fingerprint is None
