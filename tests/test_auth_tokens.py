"""Access control on plain values: JWT verification, grants, key precedence, cookies."""

from __future__ import annotations

import base64
import hashlib
import hmac

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pushhub.auth import Access, JWTVerifier, cookie_allowed, cookie_token
from pushhub.errors import BadRequest, Forbidden, Unauthorized

NOW = 1_700_000_000.0
SECRET = "a-hs256-secret-of-at-least-32-bytes!"


def pem(private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def access(**extra: object) -> Access:
    verifier = JWTVerifier([SECRET], [pem(RSA_KEY), pem(EC_KEY)])
    return Access(jwt_verifier=verifier, public=["public:*"], clock=lambda: NOW, **extra)  # type: ignore[arg-type]


def token(claims: dict[str, object], key: object = SECRET, alg: str = "HS256") -> str:
    return jwt.encode({"exp": NOW + 60, **claims}, key, algorithm=alg)  # type: ignore[arg-type]


RIGHTS = {"pushhub": {"subscribe": ["orders", "user.42.*"], "publish": ["chat:*"]}}


@pytest.mark.parametrize(("key", "alg"), [(SECRET, "HS256"), (RSA_KEY, "RS256"), (EC_KEY, "ES256")])
def test_token_rights(key: object, alg: str) -> None:
    a = access()
    grant = a.grant(token(RIGHTS, key, alg))
    assert grant.expires == NOW + 60
    a.check_subscribe(grant, ["orders", "user.42.inbox", "public:news"])
    a.check_publish(grant, "chat:lobby")
    with pytest.raises(Forbidden):
        a.check_subscribe(grant, ["orders", "user.43.inbox"])
    with pytest.raises(Forbidden):
        a.check_publish(grant, "orders")
    with pytest.raises(Forbidden):
        a.check_admin(grant)


def test_anonymous_reads_public_only() -> None:
    a = access()
    grant = a.grant(None)
    a.check_subscribe(grant, ["public:news"])
    with pytest.raises(Unauthorized):
        a.check_subscribe(grant, ["orders"])
    with pytest.raises(Unauthorized):
        a.check_publish(grant, "public:news")


def test_open_when_nothing_configured() -> None:
    a = Access()
    grant = a.grant("anything")
    a.check_subscribe(grant, ["x"])
    a.check_publish(grant, "x")
    a.check_admin(grant)


def test_keys() -> None:
    a = access(publisher_keys=["pub-key"], admin_keys=["admin-key"])
    publisher = a.grant("pub-key")
    a.check_publish(publisher, "anything")
    with pytest.raises(Forbidden):
        a.check_admin(publisher)
    a.check_admin(a.grant("admin-key"))
    with pytest.raises(Unauthorized):
        a.grant("pub-key2")


def forge_none(claims: dict[str, object]) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'exp': NOW + 60, **claims})}."


@pytest.mark.parametrize("bad", [
    pytest.param(lambda: forge_none(RIGHTS), id="alg-none"),
    pytest.param(lambda: token(RIGHTS, "another-secret-of-at-least-32-bytes!!"), id="wrong-secret"),
    pytest.param(lambda: token({**RIGHTS, "exp": NOW - 1}), id="expired"),
    pytest.param(lambda: jwt.encode(RIGHTS, SECRET, algorithm="HS256"), id="no-exp"),
    pytest.param(lambda: token({**RIGHTS, "nbf": NOW + 30}), id="not-yet"),
    pytest.param(lambda: token(RIGHTS, SECRET * 2, "HS512"), id="other-alg"),
    pytest.param(lambda: token({"pushhub": {"subscribe": "orders"}}), id="claim-not-list"),
    pytest.param(lambda: token({"pushhub": {"subscribe": ["bad name!"]}}), id="bad-pattern"),
    pytest.param(lambda: token(RIGHTS)[:-3] + "abc", id="tampered"),
    pytest.param(lambda: "not.a.token", id="garbage"),
])
def test_rejected_tokens(bad: object) -> None:
    with pytest.raises(Unauthorized):
        access().grant(bad())  # type: ignore[operator]


def test_algorithm_confusion_public_key_as_hmac_secret() -> None:
    """An attacker who signs HS256 with the RSA public key's PEM as the secret gets nowhere."""
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(orjson.dumps({"exp": NOW + 60, **RIGHTS})).rstrip(b"=")
    mac = hmac.new(pem(RSA_KEY), header + b"." + body, hashlib.sha256).digest()
    forged = (header + b"." + body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    with pytest.raises(Unauthorized):
        access().grant(forged)
    rs_only = Access(jwt_verifier=JWTVerifier([], [pem(RSA_KEY)]), clock=lambda: NOW)
    with pytest.raises(Unauthorized, match="not accepted"):
        rs_only.grant(forged)


def test_config_errors() -> None:
    with pytest.raises(BadRequest, match="32 bytes"):
        JWTVerifier(["short"], [])
    with pytest.raises(BadRequest, match="PEM"):
        JWTVerifier([], [b"nope"])


def test_cookie_helpers() -> None:
    assert cookie_token("a=1; pushhub_token=abc.def.ghi") == "abc.def.ghi"
    assert cookie_token("a=1") is None
    assert cookie_token('bad"cookie') is None
    assert cookie_allowed(None, "hub:1", [])
    assert cookie_allowed("http://hub:1", "hub:1", [])
    assert cookie_allowed("https://app.example", "hub:1", ["https://app.example"])
    assert not cookie_allowed("https://evil.example", "hub:1", ["https://app.example", "*"])
