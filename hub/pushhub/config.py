"""Settings: every option has a default, a ``--flag``, a ``PUSHHUB_*`` environment variable and a
key of the ``--config`` TOML file (the flag's name); flags > environment > file > defaults. Every
duration setting takes the one grammar of :mod:`pushhub.durations` (``72h``; a bare number is
seconds)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import durations
from .errors import BadRequest
from .forwarded import Proxies
from .limits import HttpLimits
from .retention import DEFAULT, RetentionPolicy, parse_retention


@dataclass
class Settings:
    config: str = field(default="", metadata={
        "help": "TOML file of settings, keyed by flag name (flags and environment win over it)"})
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8000, metadata={"help": "port to listen on"})
    data_dir: str = field(default="./pushhub-data", metadata={
        "help": "where the embedded backend keeps its one SQLite file, pushhub.db (a hub on --redis: its pid file)"})
    memory: bool = field(default=False, metadata={"help": "keep logs in memory only (development)"})
    redis: str = field(default="", metadata={"help": "redis://HOST:PORT/DB: log and fan-out in Redis"})
    redis_cluster: bool = field(default=False, metadata={
        "help": "--redis names a node of a Redis Cluster (sharded pub/sub)"})
    workers: int = field(default=1, metadata={"help": "hub processes sharing the port (needs --redis)"})
    fsync: bool = field(default=False, metadata={
        "help": "fsync the log after every commit, off the event loop for publishes (survives power loss)"})
    publisher_keys: list[str] = field(default_factory=list, metadata={
        "help": "API key accepted for publishing (repeat, or comma-separate in the env var)"})
    insecure: bool = field(default=False, metadata={
        "help": "allow a non-loopback host without a publisher key"})
    retention: str = field(default=f"{DEFAULT.max_events}/{int(DEFAULT.max_age // 3600)}h", metadata={
        "help": "default history kept per channel, COUNT/AGE"})
    retention_rules: list[str] = field(default_factory=list, metadata={
        "help": "per-channel retention PATTERN=COUNT/AGE (repeat)"})
    max_body_bytes: int = field(default=1 << 20, metadata={"help": "largest accepted request body"})
    max_queue_bytes: int = field(default=1 << 20, metadata={
        "help": "bytes queued for one slow connection before it is disconnected"})
    max_backlog: int = field(default=10_000, metadata={
        "help": "live events buffered for one resuming subscription before it is disconnected"})
    heartbeat: float = field(default=15.0, metadata={"help": "time between SSE heartbeat comments", "duration": True})
    sse_retry_ms: int = field(default=2000, metadata={"help": "EventSource reconnect delay sent to clients"})
    takeover: bool = field(default=False, metadata={
        "help": "start beside the hub running on this port (and data dir), then stop it (restart without a window)"})
    shutdown_timeout: float = field(default=5.0, metadata={
        "help": "time to wait for connections on exit", "duration": True})
    max_header_bytes: int = field(default=HttpLimits.max_header_bytes, metadata={
        "help": "largest request head (request line and headers); larger ones get 431"})
    max_headers: int = field(default=HttpLimits.max_headers, metadata={
        "help": "most header fields in one request; more get 431"})
    head_timeout: float = field(default=HttpLimits.head_timeout, metadata={
        "help": "time to receive a request head (and an idle keep-alive connection's lifetime)", "duration": True})
    body_timeout: float = field(default=HttpLimits.body_timeout, metadata={
        "help": "time a request body may stall before the request is dropped with 408", "duration": True})
    close_timeout: float = field(default=HttpLimits.close_timeout, metadata={
        "help": "time to wait for a WebSocket client's close frame after the hub's", "duration": True})
    forwarded_allow_ips: list[str] = field(default_factory=list, metadata={
        "help": "proxy address or CIDR whose X-Forwarded-For/-Proto are believed, or '*' (repeat)"})
    access_log: bool = field(default=False, metadata={"help": "log every HTTP request"})
    log_format: str = field(default="text", metadata={"help": "text, or json: one JSON object per line"})
    admin_keys: list[str] = field(default_factory=list, metadata={
        "help": "API key for admin operations (repeat, or comma-separate in the env var)"})
    jwt_secrets: list[str] = field(default_factory=list, metadata={
        "help": "HS256 secret that signs access tokens, at least 32 bytes (repeat for rotation)"})
    jwt_public_keys: list[str] = field(default_factory=list, metadata={
        "help": "PEM file of an RS256 or ES256 public key that verifies access tokens (repeat)"})
    jwt_audience: str = field(default="", metadata={"help": "required 'aud' of access tokens (unset: not checked)"})
    public_channels: list[str] = field(default_factory=list, metadata={
        "help": "channel pattern anyone may read without a token, e.g. 'public:*' (repeat)"})
    cors_origins: list[str] = field(default_factory=list, metadata={
        "help": "browser origin allowed to call the hub, e.g. https://app.example.com (repeat)"})
    metrics_keys: list[str] = field(default_factory=list, metadata={
        "help": "key that /metrics requires as a bearer token (repeat); unset: only loopback peers may read it"})
    ingest_config: str = field(default="", metadata={"help": "TOML or JSON file that defines ingest sources"})
    dedupe_window: float = field(default=72 * 3600.0, metadata={
        "help": "how long a webhook delivery id or Idempotency-Key is remembered", "duration": True})
    webhook_retry_schedule: str = field(default="5s,5m,30m,2h,5h,10h,10h", metadata={
        "help": "outgoing webhooks: waits before each retry (units ms, s, m, h, d)"})
    webhook_jitter: float = field(default=0.2, metadata={"help": "outgoing webhooks: retry jitter, a fraction"})
    webhook_timeout: float = field(default=15.0, metadata={
        "help": "outgoing webhooks: time allowed per attempt", "duration": True})
    webhook_max_concurrency: int = field(default=4, metadata={
        "help": "outgoing webhooks: requests in flight per endpoint (an endpoint may set its own)"})
    webhook_allow_networks: list[str] = field(default_factory=list, metadata={
        "help": "outgoing webhooks: a private network (CIDR) deliveries may reach (repeat)"})
    webhook_https_only: bool = field(default=False, metadata={"help": "outgoing webhooks: refuse http:// URLs"})
    webhook_sender: str = field(default="inline", metadata={
        "help": "outgoing webhooks: 'process' makes the HTTP requests in a child process beside the hub's "
                "event loop, 'inline' on it"})
    webhook_disable_after: str = field(default="5d", metadata={
        "help": "outgoing webhooks: disable an endpoint failing without a success this long", "duration": True})
    webhook_breaker_threshold: int = field(default=10, metadata={
        "help": "outgoing webhooks: consecutive failures that pause an endpoint"})
    webhook_breaker_cooldown: str = field(default="30s", metadata={
        "help": "outgoing webhooks: pause before probing a paused endpoint (doubles up to 10m)", "duration": True})
    webhook_retention: str = field(default="30d", metadata={
        "help": "outgoing webhooks: how long attempts and finished deliveries are kept", "duration": True})
    webhook_secret_overlap: str = field(default="24h", metadata={
        "help": "outgoing webhooks: how long a rotated-out secret keeps signing", "duration": True})

    @property
    def uses_sqlite(self) -> bool:
        """Whether this hub keeps its data in its SQLite file in ``data_dir`` (one writer at a time)."""
        return not (self.redis or self.memory)

    @property
    def backend_url(self) -> str:
        """The one URL that chooses the backend (:func:`pushhub.backends.create_backend`)."""
        if self.redis:
            return self.redis
        if self.memory:
            return "memory://"
        return "sqlite://" + os.path.join(self.data_dir, "pushhub.db")

    def retention_policy(self) -> RetentionPolicy:
        return RetentionPolicy(self.retention_rules, parse_retention(self.retention))

    def http_limits(self) -> HttpLimits:
        return HttpLimits(max_header_bytes=self.max_header_bytes, max_headers=self.max_headers,
                          head_timeout=self.head_timeout, body_timeout=self.body_timeout,
                          close_timeout=self.close_timeout)

    def validate(self) -> None:
        self.retention_policy()
        Proxies(self.forwarded_allow_ips)
        for name in ("max_header_bytes", "max_headers", "head_timeout", "body_timeout", "close_timeout"):
            if getattr(self, name) <= 0:
                raise BadRequest(f"--{name.replace('_', '-')} must be positive")
        if self.memory and self.redis:
            raise BadRequest("--memory and --redis exclude each other")
        if self.workers < 1:
            raise BadRequest("--workers must be at least 1")
        if self.workers > 1 and not self.redis:
            raise BadRequest(
                f"--workers {self.workers} needs --redis: processes share their channels only through Redis "
                "(the embedded log and fan-out live inside one process)")
        if self.redis_cluster and not self.redis:
            raise BadRequest("--redis-cluster needs --redis URL (a node of the cluster)")
        loopback = self.host in ("127.0.0.1", "::1", "localhost")
        if not loopback and not self.insecure and not (
                self.publisher_keys or self.admin_keys or self.jwt_secrets or self.jwt_public_keys):
            raise BadRequest(
                f"refusing to listen on {self.host} with no publisher key: set --publisher-key "
                "(PUSHHUB_PUBLISHER_KEYS) or --jwt-secret, or --insecure to let anyone who reaches it publish"
            )
        if self.log_format not in ("text", "json"):
            raise BadRequest(f"--log-format must be text or json, not {self.log_format!r}")
        if self.takeover and self.memory:
            raise BadRequest("--takeover replaces a hub on the same --data-dir (SQLite) or port (--redis): a "
                             "--memory hub has nothing to hand over")
        if self.dedupe_window <= 0:
            raise BadRequest("--dedupe-window must be a positive duration, e.g. 72h")


def _flag(name: str) -> str:
    """``publisher_keys`` → ``--publisher-key``: a repeatable flag is named in the singular."""
    flag = "--" + name.replace("_", "-")
    return flag.removesuffix("s") if name in _REPEATABLE else flag


_REPEATABLE = ("publisher_keys", "retention_rules", "admin_keys", "jwt_secrets", "jwt_public_keys",
               "public_channels", "cors_origins", "webhook_allow_networks", "metrics_keys")


GROUPS = [
    ("server and storage", ("config", "host", "port", "data_dir", "memory", "fsync", "redis", "redis_cluster",
                            "workers")),
    ("history and limits", ("retention", "retention_rules", "max_body_bytes", "max_queue_bytes", "max_backlog",
                            "heartbeat", "sse_retry_ms")),
    ("access control", ("publisher_keys", "admin_keys", "insecure", "jwt_secrets", "jwt_public_keys",
                        "jwt_audience", "public_channels", "cors_origins")),
    ("HTTP and WebSocket transport", ("max_header_bytes", "max_headers", "head_timeout", "body_timeout",
                                      "close_timeout", "forwarded_allow_ips")),
    ("ingesting webhooks", ("ingest_config", "dedupe_window")),
    ("operations", ("log_format", "access_log", "shutdown_timeout", "takeover", "metrics_keys")),
]
SECRETS = ("publisher_keys", "admin_keys", "jwt_secrets", "metrics_keys")


def _group(name: str) -> str:
    if name.startswith("webhook_"):
        return "outgoing webhooks"
    return next(title for title, names in GROUPS if name in names)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every setting as a flag, grouped by concern, each help with its default and variable."""
    groups = {title: parser.add_argument_group(title) for title in [t for t, _ in GROUPS] + ["outgoing webhooks"]}
    defaults = Settings()
    for f in dataclasses.fields(Settings):
        default = getattr(defaults, f.name)
        shown = "" if default in ("", [], False) else f"default {default:g}s; " if f.metadata.get("duration") \
            and isinstance(default, float) else f"default {default}; "
        help_text = f"{f.metadata['help']} ({shown}env PUSHHUB_{f.name.upper()})".replace("%", "%%")
        group = groups[_group(f.name)]
        if f.type == "bool":
            group.add_argument(_flag(f.name), dest=f.name, action="store_true", default=None, help=help_text)
            continue
        metavar = "DURATION" if f.metadata.get("duration") else "N" if f.type == "int" else "VALUE"
        action = "append" if f.type == "list[str]" else "store"
        group.add_argument(_flag(f.name), dest=f.name, action=action, default=None, metavar=metavar, help=help_text)


def _convert(kind: str, value: Any, name: str, *, duration: bool = False, where: str = "") -> Any:
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if kind == "int":
            return int(value)
        if kind == "float":
            return durations.parse_seconds(value) if duration else float(value)
        if kind == "list[str]":
            items = value if isinstance(value, list) else str(value).split(",")
            return [str(item).strip() for item in items if str(item).strip()]
        if duration:
            durations.parse(str(value))
        return str(value)
    except (ValueError, BadRequest) as exc:
        hint = f": use {durations.GRAMMAR}" if duration else ""
        where = where or f"PUSHHUB_{name.upper()}"
        raise BadRequest(f"invalid value {value!r} for {_flag(name)} ({where}){hint}") from exc


def read_file(path: str) -> dict[str, Any]:
    """A configuration file: top-level keys are flag names (``data-dir = "/srv"``); a ``[sources]``
    table defines ingest sources as ``--ingest-config`` does."""
    try:
        with open(path, "rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise BadRequest(f"--config {path}: cannot read it ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise BadRequest(f"--config {path}: not valid TOML ({exc})") from exc
    by_flag = {_flag(f.name).removeprefix("--"): f.name for f in dataclasses.fields(Settings) if f.name != "config"}
    values: dict[str, Any] = {}
    for key, value in document.items():
        if key == "sources":
            continue
        if key not in by_flag:
            raise BadRequest(f"--config {path}: unknown setting {key!r} (keys are flag names, e.g. 'data-dir')")
        values[by_flag[key]] = value
    if "sources" in document and "ingest_config" not in values:
        values["ingest_config"] = path
    return values


def effective(args: argparse.Namespace | None = None,
              environ: Mapping[str, str] | None = None) -> tuple[Settings, dict[str, str]]:
    """The settings, and where each came from (``flag``, ``env``, ``file`` or ``default``):
    flags win over environment variables, which win over the file, which wins over defaults."""
    environ = os.environ if environ is None else environ
    path = (getattr(args, "config", None) if args is not None else None) or environ.get("PUSHHUB_CONFIG")
    from_file = read_file(path) if path else {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for f in dataclasses.fields(Settings):
        raw, source = getattr(args, f.name, None) if args is not None else None, "flag"
        if raw is None:
            raw, source = environ.get(f"PUSHHUB_{f.name.upper()}"), "env"
        if raw is None:
            raw, source = from_file.get(f.name), "file"
        if raw is None:
            sources[f.name] = "default"
            continue
        values[f.name] = _convert(str(f.type), raw, f.name, duration=bool(f.metadata.get("duration")),
                                  where=f"in {path}" if source == "file" else "")
        sources[f.name] = source
    settings = Settings(**values)
    settings.validate()
    return settings, sources


def load(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    return effective(args, environ)[0]


def mask_url(url: str) -> str:
    """``redis://user:secret@host`` → ``redis://user:***@host``."""
    scheme, sep, rest = url.partition("://")
    credentials, at, place = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.partition(':')[0]}:***@{place}"


def describe(settings: Settings, sources: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """What ``pushhub config`` prints: each flag's value (secrets masked) and where it came from."""
    out = {}
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        if f.name in SECRETS:
            value = ["***"] * len(value)
        elif f.name == "redis":
            value = mask_url(value)
        out[_flag(f.name).removeprefix("--")] = {"value": value, "from": sources[f.name]}
    return out
