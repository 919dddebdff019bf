"""The endpoint model and the validation of what an administrator sends (pure).

Every rule broken raises :class:`InvalidEndpoint` (HTTP 422) with a message naming the field.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from ..channels import compile_patterns
from ..errors import BadRequest
from . import signing
from .errors import Blocked, InvalidEndpoint
from .retry import format_schedule, parse_schedule
from .ssrf import IPNetwork, check_url, normalise_host

MAX_URL_LENGTH = 2048
MAX_DESCRIPTION = 1024
MAX_PATTERNS = 100
MAX_HEADERS = 20
MAX_CONCURRENCY = 64
# Headers the hub sets itself: an endpoint may not override them.
RESERVED_HEADERS = frozenset({
    "host", "content-type", "content-length", "user-agent", "connection", "transfer-encoding",
    "webhook-id", "webhook-timestamp", "webhook-signature",
    "x-webhook-id", "x-webhook-timestamp", "x-webhook-signature",
})
FIELDS = frozenset({"url", "description", "channels", "types", "secret", "enabled", "rate_limit",
                    "max_concurrency", "ordered", "headers", "signature", "retry_schedule"})


def new_endpoint_id() -> str:
    return "ep_" + secrets.token_urlsafe(12)


@dataclass(frozen=True)
class OldSecret:
    secret: str
    expires_at: float


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    secret: str
    created_at: float
    description: str = ""
    channels: tuple[str, ...] = ("*",)
    types: tuple[str, ...] = ()
    enabled: bool = True
    disabled_reason: str | None = None
    rate_limit: float | None = None  # requests per second
    max_concurrency: int | None = None  # None: the hub's default
    ordered: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    signature: str = signing.STANDARD
    retry_schedule: tuple[float, ...] | None = None  # None: the hub's default
    old_secrets: tuple[OldSecret, ...] = ()
    failing_since: float | None = None
    updated_at: float = 0.0
    _matchers: tuple[Callable[[str], bool] | None, Callable[[str], bool] | None] = field(
        default=(None, None), init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_matchers", (compile_patterns(self.channels, kind="channel"),
                                               compile_patterns(self.types)))

    def matches_channel(self, channel: str) -> bool:
        match = self._matchers[0]
        return match is None or match(channel)

    def matches(self, channel: str, event_type: str) -> bool:
        match_type = self._matchers[1]
        return self.matches_channel(channel) and (match_type is None or match_type(event_type))

    def live_secrets(self, now: float) -> list[str]:
        """The current secret first, then rotated-out secrets still inside their overlap."""
        return [self.secret] + [old.secret for old in self.old_secrets if old.expires_at > now]

    def as_dict(self, *, with_secret: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "url": self.url, "description": self.description, "channels": list(self.channels),
            "types": list(self.types), "enabled": self.enabled, "disabled_reason": self.disabled_reason,
            "rate_limit": self.rate_limit, "max_concurrency": self.max_concurrency, "ordered": self.ordered,
            "headers": dict(self.headers), "signature": self.signature,
            "retry_schedule": None if self.retry_schedule is None else format_schedule(self.retry_schedule),
            "failing_since": self.failing_since, "created_at": self.created_at, "updated_at": self.updated_at,
            "old_secrets_expire_at": [old.expires_at for old in self.old_secrets],
        }
        if with_secret:
            body["secret"] = self.secret
        return body


def _patterns(value: Any, name: str, kind: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise InvalidEndpoint(f"'{name}' must be a list of strings")
    if len(value) > MAX_PATTERNS:
        raise InvalidEndpoint(f"'{name}' has at most {MAX_PATTERNS} patterns")
    try:
        compile_patterns(value, kind=kind)
    except BadRequest as exc:
        raise InvalidEndpoint(f"'{name}': {exc.message} (letters, digits, _ - . : and * as a wildcard)") from exc
    return tuple(value)


def _url(value: Any, https_only: bool, allow: Sequence[IPNetwork]) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH:
        raise InvalidEndpoint(f"'url' must be an http(s) URL of at most {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise InvalidEndpoint(f"'url' is malformed: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidEndpoint(f"'url' must be an absolute http(s) URL with a host, not {value!r}")
    if parsed.userinfo:
        raise InvalidEndpoint("'url' may not carry credentials: use 'headers'")
    if parsed.fragment:
        raise InvalidEndpoint("'url' may not have a #fragment")
    url = normalise_host(value)
    try:
        check_url(url, https_only=https_only, allow=allow)
    except Blocked as exc:
        raise InvalidEndpoint(f"'url': {exc.message}") from exc
    return url


def _headers(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidEndpoint("'headers' must be an object of string values")
    if len(value) > MAX_HEADERS:
        raise InvalidEndpoint(f"'headers' has at most {MAX_HEADERS} entries")
    result = []
    for name, header_value in value.items():
        lower = name.lower()
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise InvalidEndpoint(f"header name {name!r} is not a valid token")
        if lower in RESERVED_HEADERS:
            raise InvalidEndpoint(f"header {name!r} is set by the hub and cannot be overridden")
        if any(c in header_value for c in "\r\n\0"):
            raise InvalidEndpoint(f"header {name!r} has a control character in its value")
        result.append((lower, header_value))
    return tuple(result)


def _optional_number(value: Any, name: str, *, integer: bool, high: float) -> Any:
    if value is None:
        return None
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not 0 < value <= high:
        raise InvalidEndpoint(f"'{name}' must be {'an integer' if integer else 'a number'} above 0 and at most "
                              f"{high:g}, or null")
    return value if integer else float(value)


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidEndpoint(f"'{name}' must be true or false")
    return value


def apply(body: Any, base: Endpoint, *, https_only: bool, allow: Sequence[IPNetwork], now: float) -> Endpoint:
    """The endpoint ``base`` with the fields of ``body`` (a create or update request) applied."""
    if not isinstance(body, Mapping):
        raise InvalidEndpoint("the body must be a JSON object")
    unknown = set(body) - FIELDS
    if unknown:
        raise InvalidEndpoint(f"unknown field(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(FIELDS))}")
    changes: dict[str, Any] = {}
    if "url" in body:
        changes["url"] = _url(body["url"], https_only, allow)
    if "description" in body:
        if not isinstance(body["description"], str) or len(body["description"]) > MAX_DESCRIPTION:
            raise InvalidEndpoint(f"'description' must be a string of at most {MAX_DESCRIPTION} characters")
        changes["description"] = body["description"]
    if "channels" in body:
        changes["channels"] = _patterns(body["channels"], "channels", "channel")
        if not changes["channels"]:
            raise InvalidEndpoint("'channels' needs at least one channel or pattern ('*' for all)")
    if "types" in body:
        changes["types"] = _patterns(body["types"], "types", "type")
    if "secret" in body:
        signing.secret_key(body["secret"])
        changes["secret"] = body["secret"]
    if "enabled" in body:
        changes["enabled"] = _bool(body["enabled"], "enabled")
        changes["disabled_reason"] = None if changes["enabled"] else "disabled by an administrator"
        if changes["enabled"]:
            changes["failing_since"] = None
    if "rate_limit" in body:
        changes["rate_limit"] = _optional_number(body["rate_limit"], "rate_limit", integer=False, high=100_000)
    if "max_concurrency" in body:
        changes["max_concurrency"] = _optional_number(body["max_concurrency"], "max_concurrency", integer=True,
                                                      high=MAX_CONCURRENCY)
    if "ordered" in body:
        changes["ordered"] = _bool(body["ordered"], "ordered")
    if "headers" in body:
        changes["headers"] = _headers(body["headers"])
    if "signature" in body:
        if body["signature"] not in signing.SCHEMES:
            raise InvalidEndpoint(f"'signature' must be one of {', '.join(signing.SCHEMES)}")
        changes["signature"] = body["signature"]
    if "retry_schedule" in body:
        raw = body["retry_schedule"]
        if raw is None:
            changes["retry_schedule"] = None
        elif not isinstance(raw, str):
            raise InvalidEndpoint("'retry_schedule' must be a string like '5s,5m,30m,2h', or null")
        else:
            try:
                changes["retry_schedule"] = parse_schedule(raw)
            except BadRequest as exc:
                raise InvalidEndpoint(f"'retry_schedule': {exc.message}") from exc
    return replace(base, **changes, updated_at=now)


def create(body: Any, *, https_only: bool, allow: Sequence[IPNetwork], now: float,
           new_secret: Callable[[], str] = signing.generate_secret) -> Endpoint:
    if not isinstance(body, Mapping) or "url" not in body:
        raise InvalidEndpoint("an endpoint needs a 'url'")
    base = Endpoint(id=new_endpoint_id(), url="http://placeholder.invalid", secret=new_secret(), created_at=now)
    return apply(body, base, https_only=https_only, allow=allow, now=now)


def rotate(endpoint: Endpoint, new_secret: str, overlap: float, now: float) -> Endpoint:
    """Make ``new_secret`` current; the old one keeps signing beside it for ``overlap`` seconds."""
    signing.secret_key(new_secret)
    kept = tuple(old for old in endpoint.old_secrets if old.expires_at > now)
    if overlap > 0:
        kept = (*kept, OldSecret(endpoint.secret, now + overlap))
    return replace(endpoint, secret=new_secret, old_secrets=kept, updated_at=now)
