"""The Redis broker: each channel's log in a Redis Stream, live fan-out through Redis pub/sub.

Publishing is one Lua script (:mod:`.redis_scripts`) that checks the request's idempotency record,
assigns offsets, appends, trims, stores the record and publishes atomically, so live messages and
history always agree and a request is appended once however often it is retried; without a
cluster, the scripts of one loop turn's publishes go in one pipeline (:mod:`.redis_batch`). Every
process subscribes to the channels its clients follow, through one pub/sub connection per Redis
node (:mod:`.redis_pubsub`).

Pub/sub may lose messages; the hub notices a gap by offset continuity and fills it from the log.
After a pub/sub reconnect nothing new may arrive to reveal a gap, so the broker hands the hub each
resubscribed channel's newest event: if the hub had missed anything before it, that is a gap too.

With Redis Cluster (``cluster=True``) the keys of a channel share a hash tag and live fan-out uses
sharded pub/sub (``SPUBLISH``/``SSUBSCRIBE``), so both spread over the shards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection

from ..channels import compile_patterns
from ..cursor import new_epoch
from ..errors import Unavailable
from ..events import Event, EventDraft
from ..provenance import Origin
from ..retention import RetentionPolicy
from . import redis_keys as keys
from . import redis_scripts as scripts
from .base import (
    LEGACY_SCOPE,
    Broker,
    ChannelPage,
    Found,
    HistoryPage,
    OnBatch,
    Once,
    OnEvents,
    Published,
    Recorded,
    StreamState,
)
from .redis_batch import ScriptBatch
from .redis_connection import TIMEOUT, UNAVAILABLE, RedisConnection
from .redis_pubsub import RETRY_MAX, RETRY_MIN, LiveLink, Refused
from .redis_wire import decode_found, decode_live, decode_page

logger = logging.getLogger("pushhub.redis")

HEALTH_INTERVAL = 1.0  # seconds between PINGs on a pub/sub connection


class RedisBroker(Broker):
    """Makes its calls through ``connection``, which its backend opens before :meth:`start`."""

    def __init__(self, connection: RedisConnection, retention: RetentionPolicy, *,
                 clock: Callable[[], float] = time.time, health_interval: float = HEALTH_INTERVAL) -> None:
        self.connection = connection
        self.retention = retention
        self.clock = clock
        self.health_interval = health_interval
        self._on_events: OnEvents | None = None
        self._links: dict[tuple[str, int], LiveLink] = {}
        self._link_of: dict[str, LiveLink] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._publishes: ScriptBatch | None = None

    @property
    def client(self) -> Redis | RedisCluster:
        return self.connection.client

    @property
    def cluster(self) -> bool:
        return self.connection.cluster

    @property
    def db(self) -> int:
        return self.connection.db

    # Lifecycle ------------------------------------------------------------------------------------

    async def start(self, on_events: OnEvents, on_batch: OnBatch | None = None) -> None:
        """The subscription's messages arrive one channel's at a time: each goes to ``on_events``."""
        self._on_events = on_events
        self._publish = self.client.register_script(scripts.PUBLISH)
        # Without a cluster, the publishes of a loop turn share one round trip.
        self._publishes = None if isinstance(self.client, RedisCluster) else ScriptBatch(self.client, scripts.PUBLISH)
        self._read = self.client.register_script(scripts.READ)
        self._find = self.client.register_script(scripts.FIND)
        self._recent = self.client.register_script(scripts.RECENT)
        if not isinstance(self.client, RedisCluster):
            self._link(("", 0), self.client.connection_pool.make_connection)

    async def close(self) -> None:
        if self._publishes is not None:
            self._publishes.close()
        for task in list(self._tasks):
            task.cancel()
        for link in self._links.values():
            await link.close()

    async def healthy(self) -> bool:
        try:
            return bool(await self.client.ping())
        except UNAVAILABLE:
            return False

    # The log ------------------------------------------------------------------------------------

    async def publish(self, channel: str, drafts: Sequence[EventDraft], once: Once | None = None,
                      origin: Origin | None = None) -> Published:
        retention = self.retention.for_channel(channel)
        names = [keys.meta_key(channel), keys.log_key(channel), keys.ids_key(channel), keys.repeats_key(channel)]
        if once is not None:
            names += [keys.once_key(channel, once.scope, once.key), keys.once_key(channel, LEGACY_SCOPE, once.key)]
        args: list[bytes | str | int] = [
            new_epoch(), keys.live_channel(self.db, channel), int(self.cluster), int(self.clock() * 1000),
            retention.max_events, int(retention.max_age * 1000), b"" if once is None else once.value,
            0 if once is None else max(1, int(once.ttl * 1000)), "" if origin is None else origin.key(),
            (origin.delivery if origin is not None else None) or ""]
        for draft in drafts:
            args += [draft.stored(), draft.id, draft.type]
        try:
            batch = self._publishes
            reply = await (self._publish(keys=names, args=args) if batch is None else batch(names, args))
        except UNAVAILABLE as exc:
            raise Unavailable(f"Redis did not store the events: {exc}") from exc
        epoch, first = reply[0].decode(), int(reply[1])
        if len(reply) == 3:
            return Published([], Recorded(bytes(reply[2]), epoch, first))
        return Published([Event(channel, epoch, first + index, draft) for index, draft in enumerate(drafts)])

    async def history(self, channel: str, after: int, limit: int) -> HistoryPage:
        max_age = int(self.retention.for_channel(channel).max_age * 1000)
        args: list[str | int] = [new_epoch(), after, limit, int(self.clock() * 1000), max_age]
        try:
            reply = await self._read(keys=[keys.meta_key(channel), keys.log_key(channel), keys.ids_key(channel),
                                           keys.repeats_key(channel)], args=args)
        except UNAVAILABLE as exc:
            raise Unavailable(f"cannot read the log from Redis: {exc}") from exc
        return decode_page(channel, reply)

    async def state(self, channel: str) -> StreamState:
        return (await self.history(channel, 0, 0)).state

    # The event index and the channel list ---------------------------------------------------------

    async def channels(self, pattern: str, after: str, limit: int) -> ChannelPage:
        """SCAN over every master (the client's ``scan_iter`` visits each node of a cluster): the
        whole matching list is read for each page, sorted by name."""
        match = compile_patterns([pattern], kind="channel")
        try:
            found = {keys.channel_of_key(name.decode() if isinstance(name, bytes) else str(name))
                     async for name in self.client.scan_iter(match=keys.meta_pattern(pattern), count=1000)}
        except UNAVAILABLE as exc:
            raise Unavailable(f"cannot list the channels in Redis: {exc}") from exc
        names = sorted(name for name in found if name > after and (match is None or match(name)))
        return ChannelPage(names[:limit], names[limit - 1] if len(names) > limit else None)

    async def _found(self, channel: str, args: list[str | int]) -> list[Found]:
        try:
            reply = await self._find(keys=[keys.meta_key(channel), keys.log_key(channel), keys.repeats_key(channel)],
                                     args=args)
        except UNAVAILABLE as exc:
            raise Unavailable(f"cannot read the event index from Redis: {exc}") from exc
        return decode_found(channel, reply)

    async def find(self, event_id: str, limit: int) -> list[Found]:
        found: list[Found] = []
        for channel in await self._all_channels():
            try:
                offset = await self.client.hget(keys.ids_key(channel), event_id)
            except UNAVAILABLE as exc:
                raise Unavailable(f"cannot read the event index from Redis: {exc}") from exc
            if offset is not None:
                found += await self._found(channel, ["id", int(offset)])
            if len(found) >= limit:
                break
        return found[:limit]

    async def find_type(self, event_type: str, limit: int) -> list[Found]:
        found: list[Found] = []
        for channel in await self._all_channels():
            found += await self._found(channel, ["type", event_type, limit])
        found.sort(key=lambda hit: (hit.event.time, hit.event.offset), reverse=True)
        return found[:limit]

    async def _all_channels(self) -> list[str]:
        return (await self.channels("*", "", 1 << 62)).names

    async def recent(self, channel: str, since: float) -> int:
        try:
            return int(await self._recent(keys=[keys.log_key(channel)], args=[int(since * 1000)]))
        except UNAVAILABLE as exc:
            raise Unavailable(f"cannot read the log from Redis: {exc}") from exc

    # Live fan-out -------------------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        name = keys.live_channel(self.db, channel)
        try:
            await self._subscribe_on_owner(channel, name)
        except Refused:  # the slot moved since the cluster's slot map was read: read it again, once
            await self._refresh_slots()
            await self._subscribe_on_owner(channel, name)

    async def _subscribe_on_owner(self, channel: str, name: bytes) -> None:
        link = self._link_for(name)
        self._link_of[channel] = link
        await link.subscribe(name)

    async def unsubscribe(self, channel: str) -> None:
        link = self._link_of.pop(channel, None)
        if link is not None:
            await link.unsubscribe(keys.live_channel(self.db, channel))

    def _link_for(self, name: bytes) -> LiveLink:
        """The pub/sub link that carries ``name``: the only one, or the one to its shard's master."""
        if not isinstance(self.client, RedisCluster):
            return self._links[("", 0)]
        try:
            node = self.client.get_node_from_key(name.decode())
        except UNAVAILABLE as exc:
            raise Unavailable(f"no Redis Cluster node serves {name!r}: {exc}") from exc
        if node is None:
            raise Unavailable(f"no Redis Cluster node serves {name!r}")
        address = (str(node.host), int(node.port))
        link = self._links.get(address)
        if link is None:
            link = self._link(address, lambda: node.connection_class(**node.connection_kwargs))
        return link

    def _link(self, address: tuple[str, int], connect: Callable[[], AbstractConnection]) -> LiveLink:
        link = self._links[address] = LiveLink(
            connect, sharded=self.cluster, on_message=self._on_message, on_resubscribed=self._on_resubscribed,
            on_dropped=self._on_dropped, interval=self.health_interval, timeout=TIMEOUT)
        link.start()
        return link

    def _on_message(self, name: bytes, payload: bytes) -> None:
        channel = keys.channel_of(name)
        if self._on_events is None or channel not in self._link_of:
            return
        try:
            events = decode_live(channel, payload)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring a malformed message on %r (the next event fills the gap)", name)
            return
        self._on_events(channel, events)

    def _on_resubscribed(self, name: bytes) -> None:
        self._spawn(self._recover(keys.channel_of(name)))

    def _on_dropped(self, name: bytes) -> None:
        """The server unsubscribed us or refused a resubscription (the slot moved to another
        shard): follow the slot."""
        self._spawn(self._retry(keys.channel_of(name), self._follow_again))

    async def _follow_again(self, channel: str) -> None:
        await self._refresh_slots()
        await self.subscribe(channel)
        await self._deliver_newest(channel)

    async def _refresh_slots(self) -> None:
        if isinstance(self.client, RedisCluster):
            try:
                await self.client.nodes_manager.initialize()
            except UNAVAILABLE as exc:
                raise Unavailable(f"cannot refresh the Redis Cluster's slots: {exc}") from exc

    async def _recover(self, channel: str) -> None:
        """Hand the hub the channel's newest event; it fills any gap before it from the log."""
        await self._retry(channel, self._deliver_newest)

    async def _deliver_newest(self, channel: str) -> None:
        state = await self.state(channel)
        if state.top and self._on_events is not None and channel in self._link_of:
            page = await self.history(channel, state.top - 1, 1)
            self._on_events(channel, page.events)

    async def _retry(self, channel: str, action: Callable[[str], Any]) -> None:
        delay = RETRY_MIN
        while channel in self._link_of:
            try:
                await action(channel)
                return
            except Unavailable as exc:
                logger.warning("cannot recover channel %s yet (%s); retrying in %.2fs", channel, exc.message, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
