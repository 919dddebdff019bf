"""The pure parts of outgoing webhooks, on plain values: signing, retry policy, rate limit, SSRF
address checks, endpoint validation and the request body."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
from datetime import UTC, datetime

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from pushhub.errors import BadRequest
from pushhub.webhooks import attempt, endpoints, masking, message, signing
from pushhub.webhooks.errors import Blocked, InvalidEndpoint
from pushhub.webhooks.ratelimit import TokenBucket
from pushhub.webhooks.retry import (
    MAX_RETRY_AFTER,
    SVIX_SCHEDULE,
    Breaker,
    BreakerState,
    Outcome,
    classify,
    next_delay,
    parse_retry_after,
    parse_schedule,
    should_disable,
)
from pushhub.webhooks.ssrf import check_address, check_url, forbidden_reason, ipv4_shorthand, parse_networks
from pushhub.webhooks.store import Delivery

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


# Signing ---------------------------------------------------------------------------------------

def test_standard_webhooks_vector() -> None:
    assert signing.sign_standard(VECTOR_SECRET, VECTOR_ID, 1614265330, VECTOR_BODY) == VECTOR_SIGNATURE


def test_peer_implementation_agrees() -> None:
    secret = signing.generate_secret()
    peer = Webhook(secret).sign(VECTOR_ID, datetime.fromtimestamp(1614265330, UTC), VECTOR_BODY.decode())
    assert signing.sign_standard(secret, VECTOR_ID, 1614265330, VECTOR_BODY) == peer


def test_rotation_signs_with_every_live_secret() -> None:
    old, new = signing.generate_secret(), signing.generate_secret()
    headers = signing.headers(signing.STANDARD, [new, old], VECTOR_ID, 1614265330, VECTOR_BODY)
    assert headers["webhook-id"] == VECTOR_ID
    assert headers["webhook-timestamp"] == "1614265330"
    assert headers["webhook-signature"].split(" ") == [
        signing.sign_standard(new, VECTOR_ID, 1614265330, VECTOR_BODY),
        signing.sign_standard(old, VECTOR_ID, 1614265330, VECTOR_BODY),
    ]


def test_simple_scheme_is_hex_hmac_of_body_keyed_by_the_whole_secret() -> None:
    headers = signing.headers(signing.SIMPLE, [VECTOR_SECRET], VECTOR_ID, 1614265330, VECTOR_BODY)
    expected = hmac.new(VECTOR_SECRET.encode(), VECTOR_BODY, hashlib.sha256).hexdigest()
    assert headers == {"x-webhook-id": VECTOR_ID, "x-webhook-timestamp": "1614265330",
                       "x-webhook-signature": expected}


def test_generated_secret_has_32_random_bytes() -> None:
    secret = signing.generate_secret(lambda n: bytes(range(n)))
    assert secret == "whsec_" + base64.b64encode(bytes(range(32))).decode()
    assert len(signing.secret_key(signing.generate_secret())) == 32


@pytest.mark.parametrize(("secret", "fragment"), [
    ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
    ("whsec_not base64!", "not valid base64"),
    ("whsec_" + base64.b64encode(b"short").decode(), "24-64 bytes"),
])
def test_bad_secrets_say_what_is_wrong(secret: str, fragment: str) -> None:
    with pytest.raises(InvalidEndpoint) as info:
        signing.secret_key(secret)
    assert fragment in info.value.message
    assert info.value.status == 422


# Retry policy ----------------------------------------------------------------------------------

def test_default_schedule_is_svix() -> None:
    assert parse_schedule("5s,5m,30m,2h,5h,10h,10h") == SVIX_SCHEDULE
    assert sum(SVIX_SCHEDULE) / 3600 > 27


def test_schedule_units_and_errors() -> None:
    assert parse_schedule("250ms, 1.5s,2d") == (0.25, 1.5, 172800.0)
    assert parse_schedule("") == ()
    with pytest.raises(BadRequest, match="invalid retry step '5 minutes'"):
        parse_schedule("5s,5 minutes")


@pytest.mark.parametrize(("status", "outcome"), [
    (200, Outcome.SUCCESS), (204, Outcome.SUCCESS), (299, Outcome.SUCCESS),
    (301, Outcome.FAILURE), (302, Outcome.FAILURE), (400, Outcome.FAILURE), (429, Outcome.FAILURE),
    (500, Outcome.FAILURE), (410, Outcome.GONE), (None, Outcome.FAILURE),
])
def test_classify(status: int | None, outcome: Outcome) -> None:
    assert classify(status) is outcome


def test_next_delay_follows_schedule_with_jitter_bounds() -> None:
    schedule = (5.0, 300.0)
    assert next_delay(1, schedule, 0.2, lambda: 0.5) == 5.0
    assert next_delay(1, schedule, 0.2, lambda: 0.0) == pytest.approx(4.0)
    assert next_delay(2, schedule, 0.2, lambda: 0.999999) == pytest.approx(360.0, rel=1e-5)
    assert next_delay(3, schedule, 0.2, lambda: 0.5) is None
    assert next_delay(1, (), 0.2, lambda: 0.5) is None


def test_retry_after_lengthens_but_never_shortens_and_is_capped() -> None:
    assert next_delay(1, (5.0,), 0.0, lambda: 0.5, retry_after=60.0) == 60.0
    assert next_delay(1, (5.0,), 0.0, lambda: 0.5, retry_after=1.0) == 5.0
    assert next_delay(1, (5.0,), 0.0, lambda: 0.5, retry_after=10 * 86400.0) == 86400.0


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:01:00 GMT", now) == 60.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_retry_after_of_any_length_is_capped() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after("9" * 5000, now) == MAX_RETRY_AFTER  # beyond int()'s 4300 digits
    assert parse_retry_after("86401", now) == MAX_RETRY_AFTER
    assert parse_retry_after("0" * 5000 + "7", now) == 7.0
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == MAX_RETRY_AFTER


def test_disable_after_continuous_failure() -> None:
    assert not should_disable(None, 1e9, 5 * 86400)
    assert not should_disable(1000.0, 1000.0 + 5 * 86400 - 1, 5 * 86400)
    assert should_disable(1000.0, 1000.0 + 5 * 86400, 5 * 86400)


def test_breaker_opens_probes_and_closes() -> None:
    breaker = Breaker(threshold=3, cooldown=10.0, max_cooldown=25.0)
    for now in (1.0, 2.0):
        breaker.record(False, now)
        assert breaker.allows(now)
    breaker.record(False, 3.0)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allows(12.9)
    assert breaker.allows(13.0)  # the probe
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allows(13.0)  # only one probe at a time
    breaker.record(False, 14.0)
    assert breaker.state is BreakerState.OPEN and breaker.reopen_at == 34.0
    assert breaker.allows(34.0)
    breaker.record(False, 35.0)
    assert breaker.reopen_at == 60.0  # doubling capped at max_cooldown
    assert breaker.allows(60.0)
    breaker.record(True, 61.0)
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 0
    assert breaker.allows(61.0)


def test_success_resets_the_failure_count() -> None:
    breaker = Breaker(threshold=2, cooldown=10.0, max_cooldown=10.0)
    breaker.record(False, 1.0)
    breaker.record(True, 2.0)
    breaker.record(False, 3.0)
    assert breaker.state is BreakerState.CLOSED


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0, now=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.25) == pytest.approx(0.25)
    assert bucket.take(0.5) == 0.0


# SSRF ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "224.0.0.1",
    "240.0.0.1", "0.0.0.0", "255.255.255.255", "::1", "fe80::1", "fc00::1", "ff02::1", "::ffff:8.8.8.8",
    "::ffff:127.0.0.1", "64:ff9b::808:808", "2002:7f00:1::", "192.0.2.1", "198.18.0.1",
])
def test_forbidden_addresses(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_reasons_name_the_kind() -> None:
    assert forbidden_reason(ipaddress.ip_address("100.64.0.1")) == "a CGNAT address"
    assert forbidden_reason(ipaddress.ip_address("::ffff:8.8.8.8")) == "an IPv4-mapped address"
    assert forbidden_reason(ipaddress.ip_address("127.0.0.1")) == "a loopback address"


def test_allowlist_opens_chosen_networks_only() -> None:
    allow = parse_networks(["127.0.0.0/8", "10.0.0.0/24"])
    check_address(ipaddress.ip_address("127.0.0.5"), allow)
    check_address(ipaddress.ip_address("10.0.0.9"), allow)
    with pytest.raises(Blocked, match=r"10\.0\.1\.1 is a private address"):
        check_address(ipaddress.ip_address("10.0.1.1"), allow)
    with pytest.raises(InvalidEndpoint, match="invalid network"):
        parse_networks(["10.0.0.0/33"])


def test_check_url() -> None:
    check_url("https://example.com/hook", https_only=True, allow=[])
    check_url("http://example.com/hook", https_only=False, allow=[])
    with pytest.raises(Blocked, match="only https"):
        check_url("http://example.com/hook", https_only=True, allow=[])
    with pytest.raises(Blocked, match="private"):
        check_url("http://192.168.0.10/hook", https_only=False, allow=[])
    with pytest.raises(Blocked, match="IPv4-mapped"):
        check_url("http://[::ffff:10.0.0.1]/hook", https_only=False, allow=[])


@pytest.mark.parametrize("host, address", [
    ("10.1", "10.0.0.1"), ("0x0a000001", "10.0.0.1"), ("167772161", "10.0.0.1"), ("127.1", "127.0.0.1"),
    ("0", "0.0.0.0"), ("0x7f.0.0.01", "127.0.0.1"), ("1.256", "1.0.1.0"), ("8.8.8.8.", "8.8.8.8"),
    ("4294967295", "255.255.255.255"), ("4294967296", None), ("1.2.3.4.5", None), ("08", None),
    ("example.com", None), ("1.2.3.4x", None), ("", None),
])
def test_ipv4_shorthand_as_inet_aton_reads_it(host: str, address: str | None) -> None:
    assert ipv4_shorthand(host) == (None if address is None else ipaddress.IPv4Address(address))


@pytest.mark.parametrize("host", ["10.1", "0x0a000001", "167772161", "127.1", "0", "0x7f.1", "192.168.1"])
def test_shorthand_forbidden_addresses_refused_at_registration(host: str) -> None:
    with pytest.raises(InvalidEndpoint, match="address"):
        create({"url": f"http://{host}/hook"})
    with pytest.raises(Blocked):
        check_url(f"http://{host}/hook", https_only=False, allow=[])


def test_shorthand_address_stored_as_the_dotted_quad() -> None:
    allowed = endpoints.create({"url": "http://10.1:8080/hook?x=1"}, https_only=False,
                               allow=parse_networks(["10.0.0.0/8"]), now=100.0)
    assert allowed.url == "http://10.0.0.1:8080/hook?x=1"
    assert create({"url": "https://134744072/hook"}).url == "https://8.8.8.8/hook"
    assert create({"url": "https://example.com/hook"}).url == "https://example.com/hook"


# Endpoints -------------------------------------------------------------------------------------

def create(body: object, **kw: object) -> endpoints.Endpoint:
    return endpoints.create(body, https_only=bool(kw.get("https_only", False)), allow=[], now=100.0)


def test_create_fills_defaults_and_generates_a_secret() -> None:
    ep = create({"url": "https://example.com/hook", "types": ["payment.*"], "channels": ["orders", "shop.*"]})
    assert ep.id.startswith("ep_")
    assert ep.secret.startswith("whsec_") and len(signing.secret_key(ep.secret)) == 32
    assert ep.enabled and ep.signature == "standard" and ep.retry_schedule is None
    assert ep.matches("orders", "payment.created")
    assert ep.matches("shop.eu", "payment.failed")
    assert not ep.matches("orders", "refund.created")
    assert not ep.matches("other", "payment.created")
    assert ep.matches_channel("shop.us")


def test_create_takes_every_field() -> None:
    ep = create({"url": "https://example.com/hook", "description": "billing", "secret": VECTOR_SECRET,
                 "enabled": False, "rate_limit": 5, "max_concurrency": 2, "ordered": True,
                 "headers": {"X-Team": "billing"}, "signature": "simple", "retry_schedule": "1s,1m"})
    assert ep.secret == VECTOR_SECRET
    assert not ep.enabled and ep.disabled_reason
    assert ep.rate_limit == 5.0 and ep.max_concurrency == 2 and ep.ordered
    assert ep.headers == (("x-team", "billing"),)
    assert ep.retry_schedule == (1.0, 60.0)
    assert orjson.loads(orjson.dumps(ep.as_dict()))["retry_schedule"] == "1s,60s"


@pytest.mark.parametrize(("body", "fragment"), [
    ({}, "needs a 'url'"),
    ({"url": "ftp://example.com"}, "absolute http(s) URL"),
    ({"url": "not a url"}, "absolute http(s) URL"),
    ({"url": "https://user:pw@example.com"}, "credentials"),
    ({"url": "http://10.0.0.1/hook"}, "private address"),
    ({"url": "https://example.com", "channels": ["bad channel"]}, "'channels'"),
    ({"url": "https://example.com", "channels": []}, "at least one"),
    ({"url": "https://example.com", "types": ["payment.[x]"]}, "'types'"),
    ({"url": "https://example.com", "types": "payment.*"}, "list of strings"),
    ({"url": "https://example.com", "secret": "hunter2"}, "whsec_"),
    ({"url": "https://example.com", "rate_limit": 0}, "'rate_limit'"),
    ({"url": "https://example.com", "max_concurrency": 1.5}, "'max_concurrency'"),
    ({"url": "https://example.com", "headers": {"Webhook-Signature": "x"}}, "set by the hub"),
    ({"url": "https://example.com", "headers": {"X-A": "a\r\nb"}}, "control character"),
    ({"url": "https://example.com", "signature": "v2"}, "'signature'"),
    ({"url": "https://example.com", "retry_schedule": "soon"}, "'retry_schedule'"),
    ({"url": "https://example.com", "colour": "red"}, "unknown field(s): colour"),
    ({"url": "https://example.com", "enabled": "yes"}, "true or false"),
])
def test_invalid_definitions_say_what_is_wrong(body: object, fragment: str) -> None:
    with pytest.raises(InvalidEndpoint) as info:
        create(body)
    assert fragment in info.value.message
    assert info.value.status == 422


def test_https_only() -> None:
    with pytest.raises(InvalidEndpoint, match="only https"):
        create({"url": "http://example.com/hook"}, https_only=True)


def test_update_keeps_what_is_not_given() -> None:
    ep = create({"url": "https://example.com/hook", "description": "a"})
    updated = endpoints.apply({"enabled": False}, ep, https_only=False, allow=[], now=200.0)
    assert updated.description == "a" and updated.id == ep.id and not updated.enabled
    assert updated.updated_at == 200.0
    again = endpoints.apply({"enabled": True}, updated, https_only=False, allow=[], now=300.0)
    assert again.enabled and again.disabled_reason is None


def test_rotation_keeps_old_secret_for_the_overlap() -> None:
    ep = create({"url": "https://example.com/hook"})
    new = signing.generate_secret()
    rotated = endpoints.rotate(ep, new, overlap=86400.0, now=1000.0)
    assert rotated.live_secrets(1000.0) == [new, ep.secret]
    assert rotated.live_secrets(1000.0 + 86400.0) == [new]
    assert endpoints.rotate(ep, new, overlap=0.0, now=1000.0).live_secrets(1000.0) == [new]


# The request body ------------------------------------------------------------------------------

def test_message_body() -> None:
    stored = orjson.dumps({"id": "evt_1", "type": "payment.created", "time": "2026-01-01T00:00:00.000Z",
                           "data": {"amount": 5}, "meta": {"source": "test"}})
    body = json.loads(message.render(stored, channel="orders", cursor="abc.7", delivery_id="dl_1",
                                     endpoint_id="ep_1", attempt=3))
    assert body == {"type": "payment.created", "timestamp": "2026-01-01T00:00:00.000Z", "data": {"amount": 5},
                    "meta": {"source": "test"},
                    "metadata": {"event_id": "evt_1", "channel": "orders", "cursor": "abc.7", "delivery_id": "dl_1",
                                 "endpoint_id": "ep_1", "attempt": 3}}


def test_request_headers_are_kept_with_secrets_masked() -> None:
    own = (("authorization", "Bearer sk_live_abcdefgh"), ("x-api-key", "short"), ("x-team", "core"))
    sent = {"authorization": "Bearer sk_live_abcdefgh", "x-api-key": "short", "x-team": "core",
            "content-type": "application/json", "webhook-id": "evt_1", "webhook-timestamp": "1614265330",
            "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,abc="}
    shown = masking.masked(own, sent)
    assert shown == {"authorization": "Bear…", "x-api-key": "…", "x-team": "core",
                     "content-type": "application/json", "webhook-id": "evt_1", "webhook-timestamp": "1614265330",
                     "webhook-signature": "v1,… v1,…"}
    assert masking.masked((), {"x-webhook-signature": "deadbeef cafe"})["x-webhook-signature"] == "… …"
    assert masking.endpoint_headers(own) is masking.endpoint_headers(own)  # computed once per configuration


@pytest.mark.parametrize("scheme", signing.SCHEMES)
@pytest.mark.parametrize("key_bytes", [signing.MIN_KEY_BYTES, signing.KEY_BYTES, signing.MAX_KEY_BYTES])
def test_signer_macs_are_hmac_sha256_of_each_key(scheme: str, key_bytes: int) -> None:
    """The signer's keyed states give what hmac gives, for keys shorter and longer than SHA-256's
    block once encoded (the simple scheme keys with the whole secret string, 80+ bytes here)."""
    secrets_ = [signing.generate_secret(lambda n: bytes(range(7, 7 + key_bytes))), signing.generate_secret()]
    signed = signing.Signer(scheme).headers(secrets_, VECTOR_ID, 1614265330, VECTOR_BODY)
    if scheme == signing.SIMPLE:
        expected = " ".join(hmac.new(s.encode(), VECTOR_BODY, hashlib.sha256).hexdigest() for s in secrets_)
        assert signed["x-webhook-signature"] == expected
    else:
        content = f"{VECTOR_ID}.1614265330.".encode() + VECTOR_BODY
        expected = " ".join("v1," + base64.b64encode(hmac.new(signing.secret_key(s), content, hashlib.sha256)
                                                     .digest()).decode() for s in secrets_)
        assert signed["webhook-signature"] == expected


def test_requests_record_the_headers_they_send_masked() -> None:
    ep = endpoints.create({"url": "https://example.com/hook", "channels": ["orders"],
                           "headers": {"authorization": "Bearer abcdefgh", "x-tenant": "acme"}},
                          https_only=False, allow=[], now=1.0)
    delivery = Delivery("dl_1", ep.id, "orders", "e", 1, "evt_1", "t", b'{"id":"evt_1","type":"t","time":"x",'
                        b'"data":null,"meta":{}}', 1.0, 1.0)
    for endpoint in (ep, endpoints.rotate(ep, signing.generate_secret(), 60.0, 2.0)):
        _, headers, shown = attempt.Requests(endpoint).make(delivery, 1, 3.0)
        assert shown == masking.masked(endpoint.headers, headers)
        assert list(shown) == list(headers)
