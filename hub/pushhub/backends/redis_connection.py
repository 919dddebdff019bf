"""The Redis client that a Redis backend's broker and webhook store share.

One :class:`RedisConnection` per backend. Opening it finds out whether the server is a node of a
Redis Cluster (then the client becomes a cluster client: the broker uses sharded pub/sub) and checks
the format of the data there (:mod:`.redis_format`), before the broker or the store makes a call.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..errors import BadRequest, Unavailable
from . import redis_format

logger = logging.getLogger("pushhub.redis")

TIMEOUT = 5.0  # seconds for one Redis command
UNAVAILABLE = (RedisError, OSError)


class RedisConnection:
    def __init__(self, url: str, *, cluster: bool = False) -> None:
        self.url = url
        self._use(cluster)

    def _use(self, cluster: bool) -> None:
        # No retries: a retried publish could append twice. RESP2: pub/sub replies arrive as plain
        # replies on the pub/sub connection, which reads them itself.
        options: dict[str, Any] = {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT,
                                   "retry": Retry(NoBackoff(), 0), "protocol": 2}
        try:
            self.client: Redis | RedisCluster = (RedisCluster.from_url(self.url, **options) if cluster
                                                 else Redis.from_url(self.url, **options))
        except ValueError as exc:
            raise BadRequest(f"invalid Redis URL {self.url!r}: {exc}") from exc
        self.cluster = cluster
        self.db = 0 if isinstance(self.client, RedisCluster) else int(
            self.client.connection_pool.connection_kwargs.get("db", 0))

    async def open(self) -> None:
        """Settle on the kind of client, then check (and upgrade) the data's format. An unreachable
        server is no error here: the hub starts and answers 503 until Redis is back."""
        if not self.cluster and await self._is_cluster_node():
            logger.info("%s is a Redis Cluster node: using the cluster and sharded pub/sub", self.url)
            await self.client.aclose()
            self._use(True)
        if isinstance(self.client, RedisCluster):
            try:
                await self.client.initialize()
            except UNAVAILABLE as exc:
                raise Unavailable(f"cannot reach the Redis Cluster at {self.url}: {exc}") from exc
        try:
            await redis_format.check(self.client, self.url)
        except UNAVAILABLE as exc:
            logger.warning("cannot check the format of the data in Redis at %s yet: %s", self.url, exc)

    async def _is_cluster_node(self) -> bool:
        """Whether the server answers that it runs in cluster mode (False if it does not answer)."""
        try:
            info = await self.client.info("cluster")
        except UNAVAILABLE:
            return False
        return bool(info.get("cluster_enabled"))

    async def close(self) -> None:
        with contextlib.suppress(*UNAVAILABLE):
            await self.client.aclose()
