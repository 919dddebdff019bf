"""Backends, chosen once by the URL scheme: each provides the broker (log + live fan-out, with the
idempotency records of its publishes) and the webhook delivery store, over one connection.

``memory://``            everything in this process, lost on exit (development)
``sqlite:///path/to.db`` the embedded default: one SQLite file written by one connection, fan-out
                         in this process
``redis://host:port/db`` Redis Streams for the log, Redis pub/sub for fan-out between processes,
                         the webhook state in Redis
``rediss://…``           the same over TLS; ``cluster=True`` for a Redis Cluster (sharded pub/sub)
"""

from __future__ import annotations

from ..errors import BadRequest
from ..extras import needs
from ..retention import RetentionPolicy
from .base import Backend, Broker, HistoryPage, Once, Published, Recorded, StreamState


def create_backend(url: str, retention: RetentionPolicy, *, fsync: bool = False, cluster: bool = False,
                   attempt_timeout: float = 15.0) -> Backend:
    """``attempt_timeout`` is the webhook sender's; with Redis a process holds a delivery it sends
    that long and a margin more (if it dies meanwhile, others retry the delivery after that)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise BadRequest(f"invalid backend URL {url!r}: expected memory://, sqlite:///PATH or redis://")
    if scheme == "memory":
        from ..webhooks.store import MemoryDeliveryStore
        from .embedded import EmbeddedBroker, MemoryStore

        return Backend(EmbeddedBroker(MemoryStore(retention)), MemoryDeliveryStore())
    if scheme == "sqlite":
        from ..webhooks.store import SqliteDeliveryStore
        from .embedded import EmbeddedBroker
        from .sqlite import Database, SqliteStore

        database = Database(rest, fsync=fsync)

        async def open_database() -> None:
            database.open()

        async def close_database() -> None:
            database.close()

        return Backend(EmbeddedBroker(SqliteStore(database, retention)), SqliteDeliveryStore(database),
                       opened=open_database, closed=close_database)
    if scheme in ("redis", "rediss"):
        with needs("redis", "--redis"):
            from ..webhooks.redis_store import LEASE_MARGIN, RedisDeliveryStore
            from .redis import RedisBroker
            from .redis_connection import RedisConnection

        connection = RedisConnection(url, cluster=cluster)
        return Backend(RedisBroker(connection, retention),
                       RedisDeliveryStore(lambda: connection.client, lease=attempt_timeout + LEASE_MARGIN),
                       opened=connection.open, closed=connection.close)
    raise BadRequest(f"unsupported backend {scheme!r}: expected memory, sqlite or redis")


__all__ = ["Backend", "Broker", "HistoryPage", "Once", "Published", "Recorded", "StreamState", "create_backend"]
