"""Settings: every option has a default, a ``--flag`` and a ``PUSHHUB_*`` environment variable."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequest
from .retention import DEFAULT, RetentionPolicy, parse_retention


@dataclass
class Settings:
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8000, metadata={"help": "port to listen on"})
    data_dir: str = field(default="./pushhub-data", metadata={
        "help": "where the embedded backend keeps its one SQLite file, pushhub.db"})
    memory: bool = field(default=False, metadata={"help": "keep logs in memory only (development)"})
    redis: str = field(default="", metadata={"help": "redis://HOST:PORT/DB: log and fan-out in Redis"})
    redis_cluster: bool = field(default=False, metadata={
        "help": "--redis names a node of a Redis Cluster (sharded pub/sub)"})
    workers: int = field(default=1, metadata={"help": "hub processes sharing the port (needs --redis)"})
    fsync: bool = field(default=False, metadata={"help": "fsync every commit (survives power loss)"})
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
    heartbeat: float = field(default=15.0, metadata={"help": "seconds between SSE heartbeat comments"})
    sse_retry_ms: int = field(default=2000, metadata={"help": "EventSource reconnect delay sent to clients"})
    takeover: bool = field(default=False, metadata={
        "help": "start beside the hub running on this port and data dir, then stop it (restart without a window)"})
    shutdown_timeout: float = field(default=5.0, metadata={"help": "seconds to wait for connections on exit"})
    access_log: bool = field(default=False, metadata={"help": "log every HTTP request"})
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
        "help": "seconds a webhook delivery id or Idempotency-Key is remembered"})
    webhook_retry_schedule: str = field(default="5s,5m,30m,2h,5h,10h,10h", metadata={
        "help": "outgoing webhooks: waits before each retry (units ms, s, m, h, d)"})
    webhook_jitter: float = field(default=0.2, metadata={"help": "outgoing webhooks: retry jitter, a fraction"})
    webhook_timeout: float = field(default=15.0, metadata={"help": "outgoing webhooks: seconds per attempt"})
    webhook_max_concurrency: int = field(default=4, metadata={
        "help": "outgoing webhooks: requests in flight per endpoint (an endpoint may set its own)"})
    webhook_allow_networks: list[str] = field(default_factory=list, metadata={
        "help": "outgoing webhooks: a private network (CIDR) deliveries may reach (repeat)"})
    webhook_https_only: bool = field(default=False, metadata={"help": "outgoing webhooks: refuse http:// URLs"})
    webhook_sender: str = field(default="inline", metadata={
        "help": "outgoing webhooks: 'process' makes the HTTP requests in a child process beside the hub's "
                "event loop, 'inline' on it"})
    webhook_disable_after: str = field(default="5d", metadata={
        "help": "outgoing webhooks: disable an endpoint failing without a success this long"})
    webhook_breaker_threshold: int = field(default=10, metadata={
        "help": "outgoing webhooks: consecutive failures that pause an endpoint"})
    webhook_breaker_cooldown: str = field(default="30s", metadata={
        "help": "outgoing webhooks: pause before probing a paused endpoint (doubles up to 10m)"})
    webhook_retention: str = field(default="30d", metadata={
        "help": "outgoing webhooks: how long attempts and finished deliveries are kept"})
    webhook_secret_overlap: str = field(default="24h", metadata={
        "help": "outgoing webhooks: how long a rotated-out secret keeps signing"})

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

    def validate(self) -> None:
        self.retention_policy()
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
        if self.takeover and not self.uses_sqlite:
            raise BadRequest("--takeover replaces a hub on the same --data-dir (SQLite): a --memory hub has "
                             "nothing to hand over, and hubs on --redis cannot take over yet")
        if self.dedupe_window <= 0:
            raise BadRequest("--dedupe-window must be a positive number of seconds")


def _flag(name: str) -> str:
    """``publisher_keys`` → ``--publisher-key``: a repeatable flag is named in the singular."""
    flag = "--" + name.replace("_", "-")
    return flag.removesuffix("s") if name in _REPEATABLE else flag


_REPEATABLE = ("publisher_keys", "retention_rules", "admin_keys", "jwt_secrets", "jwt_public_keys",
               "public_channels", "cors_origins", "webhook_allow_networks", "metrics_keys")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(Settings):
        help_text = f"{f.metadata['help']} (env PUSHHUB_{f.name.upper()})"
        if f.type == "bool":
            parser.add_argument(_flag(f.name), dest=f.name, action="store_true", default=None, help=help_text)
        elif f.type == "list[str]":
            parser.add_argument(_flag(f.name), dest=f.name, action="append", default=None, help=help_text)
        else:
            parser.add_argument(_flag(f.name), dest=f.name, default=None, help=help_text)


def _convert(kind: str, value: Any, name: str) -> Any:
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
            return float(value)
        if kind == "list[str]":
            items = value if isinstance(value, list) else str(value).split(",")
            return [item.strip() for item in items if item.strip()]
        return str(value)
    except ValueError as exc:
        raise BadRequest(f"invalid value {value!r} for {name}") from exc


def load(args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Flags win over environment variables, which win over defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        raw = getattr(args, f.name, None) if args is not None else None
        if raw is None:
            raw = environ.get(f"PUSHHUB_{f.name.upper()}")
        if raw is not None:
            values[f.name] = _convert(str(f.type), raw, f.name)
    settings = Settings(**values)
    settings.validate()
    return settings

