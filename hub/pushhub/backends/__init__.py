"""Storage and cross-process fan-out backends, chosen by URL scheme.

``memory://``            everything in this process, lost on exit (development)
``sqlite:///path/to.db`` the embedded default: a durable log on local disk, fan-out in this process
``redis://host:port/db`` Redis Streams for the log, Redis pub/sub for fan-out between processes
``rediss://…``           the same over TLS; ``cluster=True`` for a Redis Cluster (sharded pub/sub)
"""

from __future__ import annotations

from ..errors import BadRequest
from ..extras import needs
from ..retention import RetentionPolicy
from .base import Broker, HistoryPage, StreamState


def create_broker(url: str, retention: RetentionPolicy, *, fsync: bool = False, cluster: bool = False) -> Broker:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise BadRequest(f"invalid backend URL {url!r}: expected memory://, sqlite:///PATH or redis://")
    if scheme == "memory":
        from .embedded import EmbeddedBroker, MemoryStore

        return EmbeddedBroker(MemoryStore(retention))
    if scheme == "sqlite":
        from .embedded import EmbeddedBroker
        from .sqlite import SqliteStore

        return EmbeddedBroker(SqliteStore(rest, retention, fsync=fsync))
    if scheme in ("redis", "rediss"):
        with needs("redis", "--redis"):
            from .redis import RedisBroker

        return RedisBroker(url, retention, cluster=cluster)
    raise BadRequest(f"unsupported backend {scheme!r}: expected memory, sqlite or redis")


__all__ = ["Broker", "HistoryPage", "StreamState", "create_broker"]
