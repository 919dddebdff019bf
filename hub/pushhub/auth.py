"""Access control: who may subscribe to, publish to and administer what (pure apart from reading
configured key files).

Credentials, each turned into a :class:`Grant`:

- an **admin key** (``--admin-key``): everything, including the admin API;
- a **publisher key** (``--publisher-key``): publish to and read every channel;
- a **JWT** signed with a configured HS256 secret (``--jwt-secret``) or by the private half of a
  configured RS256/ES256 public key (``--jwt-public-key``), with an ``exp`` and the claim::

      "pushhub": {"subscribe": ["orders", "user.42.*"], "publish": ["chat:*"]}

  naming channels exactly or with ``*`` patterns;
- no credential: the channels matching ``--public-channel`` patterns may be read.

When none of these keys is configured the hub is open (development mode): everyone may do
everything. The algorithm of a token selects the keys tried: HS256 tokens are checked against the
secrets only, RS256/ES256 tokens against public keys of that type only, anything else (``none``
included) is refused, so a public key can never be used as an HMAC secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any

import jwt

from .channels import compile_patterns
from .errors import BadRequest, Forbidden, Unauthorized
from .extras import needs

CLAIM = "pushhub"
COOKIE = "pushhub_token"
MIN_SECRET_BYTES = 32
Clock = Callable[[], float]


class TokenExpired(Unauthorized):
    """The token was valid but has expired: get a fresh one and resume."""

    code = "token_expired"


class ChannelSet:
    """Channel names and ``*`` patterns; empty means no channel."""

    __slots__ = ("_match", "patterns")

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._match = compile_patterns(self.patterns, kind="channel") if self.patterns else _NOTHING

    def allows(self, channel: str) -> bool:
        return self._match is None or self._match(channel)

    def __or__(self, other: ChannelSet) -> ChannelSet:
        return ChannelSet(self.patterns + other.patterns)


def _NOTHING(channel: str) -> bool:
    return False


@dataclass(frozen=True)
class Grant:
    subscribe: ChannelSet
    publish: ChannelSet
    admin: bool = False
    expires: float | None = None  # seconds since the epoch; None: never
    anonymous: bool = False
    publisher: str = ""  # who publishes: the scope of its Idempotency-Keys (publisher_identity)


EVERYTHING = ChannelSet(["*"])
NOTHING = ChannelSet([])


class JWTVerifier:
    def __init__(self, secrets: Sequence[str], public_keys: Sequence[bytes], audience: str = "") -> None:
        self.audience = audience
        self.keys: dict[str, list[Any]] = {}
        for secret in secrets:
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise BadRequest(f"a JWT secret needs at least {MIN_SECRET_BYTES} bytes (HS256 key length)")
            self.keys.setdefault("HS256", []).append(secret)
        if public_keys:
            self._add_public_keys(public_keys)

    def _add_public_keys(self, public_keys: Sequence[bytes]) -> None:
        with needs("jwt-rsa", "--jwt-public-key (RS256/ES256 tokens)"):
            from cryptography.hazmat.primitives.asymmetric import ec, rsa
            from cryptography.hazmat.primitives.serialization import load_pem_public_key
        for pem in public_keys:
            try:
                key = load_pem_public_key(pem)
            except ValueError as exc:
                raise BadRequest("a JWT public key is not a PEM public key") from exc
            if isinstance(key, rsa.RSAPublicKey):
                self.keys.setdefault("RS256", []).append(key)
            elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
                self.keys.setdefault("ES256", []).append(key)
            else:
                raise BadRequest("a JWT public key must be RSA (RS256) or EC P-256 (ES256)")

    def claims(self, token: str, now: float) -> dict[str, Any]:
        """The verified claims of ``token``; raises :class:`Unauthorized` on any doubt."""
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("malformed token") from exc
        keys = self.keys.get(alg) if isinstance(alg, str) else None
        if not keys:
            raise Unauthorized(f"token algorithm {alg!r} is not accepted: use {', '.join(sorted(self.keys))}")
        options: Any = {"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                        "verify_aud": bool(self.audience), "require": ["exp"]}
        for key in keys:
            try:
                claims: dict[str, Any] = jwt.decode(token, key, algorithms=[str(alg)], options=options,
                                                    audience=self.audience or None)
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidTokenError as exc:
                raise Unauthorized(f"invalid token: {exc}") from exc
        else:
            raise Unauthorized("token signature does not match any configured key")
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if not isinstance(exp, int | float) or not isinstance(nbf, int | float) \
                or isinstance(exp, bool) or isinstance(nbf, bool):
            raise Unauthorized("token 'exp' and 'nbf' must be numbers")
        if exp <= now:
            raise TokenExpired("token expired: get a fresh token and resume from your cursor")
        if nbf > now:
            raise Unauthorized("token not valid yet")
        return claims


def grant_from_claims(claims: Mapping[str, Any]) -> Grant:
    rights = claims.get(CLAIM, {})
    if not isinstance(rights, dict):
        raise Unauthorized(f"the token's {CLAIM!r} claim must be an object")
    sets = []
    for name in ("subscribe", "publish"):
        patterns = rights.get(name, [])
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise Unauthorized(f"'{CLAIM}.{name}' must be a list of channel names or patterns")
        try:
            sets.append(ChannelSet(patterns))
        except BadRequest as exc:
            raise Unauthorized(f"'{CLAIM}.{name}': {exc.message}") from exc
    return Grant(sets[0], sets[1], expires=float(claims["exp"]))


class Access:
    """Turns presented credentials into grants, and checks grants against actions."""

    def __init__(self, *, publisher_keys: Sequence[str] = (), admin_keys: Sequence[str] = (),
                 jwt_verifier: JWTVerifier | None = None, public: Sequence[str] = (),
                 clock: Clock = time.time) -> None:
        self.publisher_keys = [k.encode() for k in publisher_keys]
        self.admin_keys = [k.encode() for k in admin_keys]
        self.jwt = jwt_verifier if jwt_verifier is not None and jwt_verifier.keys else None
        self.public = ChannelSet(public)
        self.clock = clock
        self.enforced = bool(self.publisher_keys or self.admin_keys or self.jwt)
        self.anonymous = Grant(self.public, NOTHING, anonymous=True)
        self.open = Grant(EVERYTHING, EVERYTHING, admin=True)

    def grant(self, token: str | None) -> Grant:
        if not self.enforced:
            return self.open
        if not token:
            return self.anonymous
        raw = token.encode("utf-8", "replace")
        if _one_of(raw, self.admin_keys):
            return Grant(EVERYTHING, EVERYTHING, admin=True, publisher=publisher_identity(raw, None))
        if _one_of(raw, self.publisher_keys):
            return Grant(EVERYTHING, EVERYTHING, publisher=publisher_identity(raw, None))
        if self.jwt is None or token.count(".") != 2:
            raise Unauthorized("unknown key or token")
        claims = self.jwt.claims(token, self.clock())
        granted = grant_from_claims(claims)
        return Grant(granted.subscribe | self.public, granted.publish, expires=granted.expires,
                     publisher=publisher_identity(None, claims))

    def presented(self, authorization: str | None, query_token: str | None, cookie_header: str | None,
                  origin: str | None, host: str | None, origins: Sequence[str]) -> Grant:
        """The grant of a read or stream request: the ``Authorization: Bearer`` header, else the
        ``token`` query parameter, else the ``pushhub_token`` cookie when :func:`cookie_allowed`.
        A cookie only ever grants reading: a browser sends it whatever the page's intent."""
        token = bearer(authorization) or query_token
        if token:
            return self.grant(token)
        cookie = cookie_token(cookie_header) if cookie_allowed(origin, host, origins) else None
        grant = self.grant(cookie)
        if cookie is None or not self.enforced:
            return grant
        return Grant(grant.subscribe, NOTHING, expires=grant.expires)

    def check_subscribe(self, grant: Grant, channels: Sequence[str]) -> None:
        denied = [c for c in channels if not grant.subscribe.allows(c)]
        if denied:
            _deny(grant, f"reading {denied[0]!r} needs a token whose '{CLAIM}.subscribe' names it")

    def check_publish(self, grant: Grant, channel: str) -> None:
        if not grant.publish.allows(channel):
            _deny(grant, f"publishing to {channel!r} needs a publisher key or a token whose "
                         f"'{CLAIM}.publish' names it")

    def check_admin(self, grant: Grant) -> None:
        if not grant.admin:
            _deny(grant, "this operation needs an admin key" if self.admin_keys else
                  "this operation needs an admin key, and none is configured (--admin-key)")


def publisher_identity(key: bytes | None, claims: Mapping[str, Any] | None) -> str:
    """Who a credential publishes as: a key by its SHA-256 (the key itself is never stored), a token
    by its ``sub`` (tokens without one share the identity ``token:``)."""
    if key is not None:
        return "key:" + hashlib.sha256(key).hexdigest()
    subject = claims.get("sub") if claims is not None else None
    return "token:" + (subject if isinstance(subject, str) else "")


def _deny(grant: Grant, message: str) -> None:
    raise (Unauthorized if grant.anonymous else Forbidden)(message)


def _one_of(token: bytes, keys: list[bytes]) -> bool:
    found = False
    for key in keys:
        found |= hmac.compare_digest(token, key)
    return found


def bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def cookie_token(cookie_header: str | None, name: str = COOKIE) -> str | None:
    if not cookie_header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None and morsel.value else None


def cookie_allowed(origin: str | None, host: str | None, origins: Sequence[str]) -> bool:
    """Whether a request may be authenticated by its cookie: not from a foreign page.

    Browsers send cookies with cross-site WebSocket handshakes (which CORS does not cover), so a
    cookie counts only when the request has no ``Origin`` (not a browser script), comes from the
    hub's own origin, or from an origin listed by ``--cors-origin`` (a ``*`` there does not count).
    """
    if origin is None:
        return True
    if host is not None and origin.split("://", 1)[-1] == host:
        return True
    return origin in origins
