"""The webhook store in Redis, shared by every hub process of a deployment.

Each method the :class:`DeliveryStore` interface calls *atomic* is one Lua script
(:mod:`.redis_scripts`); the key layout is in :mod:`.redis_keys`. What makes several processes
agree:

- endpoints carry a version that every change bumps: a dispatcher reloads when it moved, and
  :meth:`enqueue` refuses to write deliveries made from an outdated endpoint list;
- the cursor moves by compare-and-set inside the same script that adds the deliveries, and a
  delivery is unique per (endpoint, channel, epoch, offset), so an event becomes one delivery per
  endpoint however many processes read it;
- :meth:`claim` leases a due delivery to one process for ``lease`` seconds by moving its place in
  the endpoint's due set to the end of the lease; the attempt's outcome sets the real next time. A
  process that dies mid-attempt leaves a lease that runs out, after which any process retries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from redis.exceptions import RedisError

from ..cursor import Position
from ..errors import Unavailable
from . import redis_keys as keys
from . import redis_scripts as scripts
from .endpoints import Endpoint
from .store import (
    MINUTE,
    PENDING,
    Attempt,
    Delivery,
    DeliveryStore,
    Minute,
    _endpoint_from_record,
    _endpoint_record,
    outcome_matches,
)

BATCH = 500  # items per prune step and per listing read
HOUR = 3600
LEASE_MARGIN = 5.0  # seconds beyond the attempt timeout a process may hold a delivery it sends


def _number(value: float) -> str:
    return repr(float(value))


def _position(text: bytes) -> Position:
    epoch, _, offset = text.decode().rpartition(".")
    return Position(epoch, int(offset))


def _text(position: Position | None) -> str:
    return "" if position is None else f"{position.epoch}.{position.offset}"


def _fields(deliveries: Sequence[Delivery]) -> list[str | bytes]:
    args: list[str | bytes] = []
    for d in deliveries:
        args += [d.id, d.endpoint_id, d.channel, d.epoch, str(d.offset), d.event_id, d.event_type, d.payload,
                 _number(d.next_at), _number(d.created_at)]
    return args


def _delivery(record: dict[bytes, bytes]) -> Delivery:
    text = {k.decode(): v for k, v in record.items()}

    def s(name: str) -> str:
        return text[name].decode()
    return Delivery(s("id"), s("endpoint_id"), s("channel"), s("epoch"), int(text["offset"]), s("event_id"),
                    s("event_type"), bytes(text["payload"]), float(text["next_at"]), float(text["created_at"]),
                    s("status"), int(text["attempts"]), int(text["tries"]), float(text["updated_at"]),
                    orjson.loads(text["last_status"]), orjson.loads(text["last_error"]), int(text["seq"]),
                    int(text["version"]))


def _attempt(attempt_id: bytes, record: bytes) -> Attempt:
    return Attempt(**orjson.loads(record), id=int(attempt_id))


class RedisDeliveryStore(DeliveryStore):
    shared = True

    def __init__(self, client: Callable[[], Any], *, lease: float = 60.0) -> None:
        self._client = client  # called each time: the broker may switch to a cluster client at start
        self.lease = lease
        self._scripts: dict[str, Any] = {}
        self._scripts_of: object = None

    # Plumbing -----------------------------------------------------------------------------------

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await getattr(self._client(), method)(*args, **kwargs)
        except (RedisError, OSError) as exc:
            raise Unavailable(f"webhook store: {exc}") from exc

    async def _run(self, script: str, *args: str | bytes) -> Any:
        client = self._client()
        if self._scripts_of is not client:
            self._scripts, self._scripts_of = {}, client
        registered = self._scripts.get(script)
        if registered is None:
            registered = self._scripts[script] = client.register_script(script)
        try:
            return await registered(keys=[keys.name(keys.VERSION)], args=[keys.PREFIX, *args])
        except (RedisError, OSError) as exc:
            raise Unavailable(f"webhook store: {exc}") from exc

    async def _records(self, ids: Sequence[bytes]) -> list[dict[bytes, bytes]]:
        if not ids:
            return []
        try:
            async with self._client().pipeline(transaction=False) as pipe:
                for delivery_id in ids:
                    pipe.hgetall(keys.name(keys.DELIVERY, delivery_id.decode()))
                found = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise Unavailable(f"webhook store: {exc}") from exc
        return [record for record in found if record]  # one deleted meanwhile is left out

    async def _deliveries(self, ids: Sequence[bytes]) -> list[Delivery]:
        return [_delivery(record) for record in await self._records(ids)]

    # Endpoints ----------------------------------------------------------------------------------

    async def save_endpoint(self, endpoint: Endpoint) -> None:
        await self._run(scripts.SAVE_ENDPOINT, endpoint.id, _endpoint_record(endpoint))

    async def endpoints(self) -> list[Endpoint]:
        records = await self._call("hvals", keys.name(keys.ENDPOINTS))
        return sorted((_endpoint_from_record(r) for r in records), key=lambda e: (e.created_at, e.id))

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        record = await self._call("hget", keys.name(keys.ENDPOINTS), endpoint_id)
        return None if record is None else _endpoint_from_record(record)

    async def endpoints_version(self) -> int | None:
        return int(await self._call("get", keys.name(keys.VERSION)) or 0)

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        return bool(await self._run(scripts.DELETE_ENDPOINT, endpoint_id))

    # Cursors ------------------------------------------------------------------------------------

    async def cursors(self) -> dict[str, Position]:
        found = await self._call("hgetall", keys.name(keys.CURSORS))
        return {channel.decode(): _position(text) for channel, text in found.items()}

    async def cursor(self, channel: str) -> Position | None:
        text = await self._call("hget", keys.name(keys.CURSORS), channel)
        return None if text is None else _position(text)

    async def track(self, channel: str, position: Position) -> None:
        await self._call("hsetnx", keys.name(keys.CURSORS), channel, _text(position))

    async def enqueue(self, channel: str, position: Position, deliveries: Sequence[Delivery], *,
                      after: Position | None = None, version: int | None = None) -> bool:
        return bool(await self._run(scripts.ENQUEUE, channel, _text(after), "" if version is None else str(version),
                                    _text(position), *_fields(deliveries)))

    async def resend(self, deliveries: Sequence[Delivery], now: float) -> int:
        if not deliveries:
            return 0
        return int(await self._run(scripts.RESEND, _number(now), *_fields(deliveries)))

    # Sending ------------------------------------------------------------------------------------

    async def due(self, endpoint_id: str, now: float, limit: int, *, ordered: bool = False) -> list[Delivery]:
        due_key = keys.name(keys.DUE, endpoint_id)
        if ordered:
            first = await self._call("zrange", keys.name(keys.PENDING, endpoint_id), 0, 0)
            if not first:
                return []
            score = await self._call("zscore", due_key, first[0])
            found = await self._deliveries(first)
            if score is not None:  # leased to a process: not before its lease ends
                for delivery in found:
                    delivery.next_at = max(delivery.next_at, float(score))
            return found
        ids = await self._call("zrangebyscore", due_key, "-inf", _number(now), start=0, num=limit)
        found = [d for d in await self._deliveries(ids) if d.status == PENDING]
        return sorted(found, key=lambda d: (d.next_at, d.seq))

    async def next_due(self, endpoint_id: str) -> float | None:
        first = await self._call("zrange", keys.name(keys.DUE, endpoint_id), 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def claim(self, delivery: Delivery, now: float) -> bool:
        return bool(await self._run(scripts.CLAIM, delivery.id, str(delivery.version), _number(now),
                                    _number(now + self.lease)))

    async def finish_attempts(self, finished: Sequence[tuple[Delivery, Attempt]]) -> None:
        if not finished:
            return
        args: list[str | bytes] = []
        for d, attempt in finished:
            record = attempt.as_dict()
            del record["id"]
            args += [d.id, str(d.version), d.status, str(d.attempts), str(d.tries), _number(d.next_at),
                     _number(d.updated_at), orjson.dumps(d.last_status), orjson.dumps(d.last_error),
                     orjson.dumps(record), _number(attempt.at), str(int(attempt.at // HOUR)),
                     str(int(attempt.at // MINUTE * MINUTE)), "1" if attempt.succeeded else "0",
                     _number(attempt.latency_ms)]
        await self._run(scripts.FINISH_ATTEMPTS, *args)

    async def minutes(self, endpoint_id: str, since: float, until: float) -> list[Minute]:
        counts: dict[int, Minute] = {}
        for hour in range(int(since // HOUR), int(until // HOUR) + 1):
            found = await self._call("hgetall", keys.name(keys.MINUTES, f"{endpoint_id}:{hour}"))
            for name, value in found.items():
                start, _, what = name.decode().partition(":")
                if since <= int(start) <= until:
                    minute = counts.setdefault(int(start), Minute(int(start)))
                    if what == "s":
                        minute.succeeded = int(value)
                    elif what == "f":
                        minute.failed = int(value)
                    else:
                        minute.latency_ms = float(value)
        return [counts[start] for start in sorted(counts)]

    # Looking back -------------------------------------------------------------------------------

    async def delivery(self, delivery_id: str) -> Delivery | None:
        found = await self._deliveries([delivery_id.encode()])
        return found[0] if found else None

    async def _newest(self, index: str, before: int | None) -> tuple[list[bytes], int | None]:
        """A batch of ids from ``index``, highest score (``seq`` or attempt id) first, below ``before``,
        and the score to read the next batch below (``None`` after the last batch)."""
        top = "+inf" if before is None else f"({before}"
        found = await self._call("zrevrangebyscore", index, top, "-inf", start=0, num=BATCH, withscores=True)
        ids = [member for member, _ in found]
        return ids, (int(found[-1][1]) if len(found) == BATCH else None)

    async def deliveries(self, *, endpoint_id: str | None = None, event_id: str | None = None,
                         status: str | None = None, before: int | None = None, limit: int = 100) -> list[Delivery]:
        index = (keys.name(keys.BY_EVENT, event_id) if event_id is not None else
                 keys.name(keys.BY_ENDPOINT, endpoint_id) if endpoint_id is not None else keys.name(keys.ALL))
        chosen: list[Delivery] = []
        while True:
            ids, before = await self._newest(index, before)
            chosen += [d for d in await self._deliveries(ids) if (endpoint_id is None or d.endpoint_id == endpoint_id)
                       and (status is None or d.status == status)]
            if before is None or len(chosen) >= limit:
                return chosen[:limit]

    async def attempts(self, *, endpoint_id: str | None = None, event_id: str | None = None,
                       delivery_id: str | None = None, succeeded: bool | None = None, before: int | None = None,
                       limit: int = 100) -> list[Attempt]:
        index = (keys.name(keys.ATTEMPTS_BY_DELIVERY, delivery_id) if delivery_id is not None else
                 keys.name(keys.ATTEMPTS_BY_EVENT, event_id) if event_id is not None else
                 keys.name(keys.ATTEMPTS_BY_ENDPOINT, endpoint_id) if endpoint_id is not None else
                 keys.name(keys.ATTEMPTS_ALL))
        chosen: list[Attempt] = []
        while True:
            ids, before = await self._newest(index, before)
            records = await self._call("hmget", keys.name(keys.ATTEMPTS), ids) if ids else []
            found = [_attempt(i, r) for i, r in zip(ids, records, strict=True) if r is not None]
            chosen += [a for a in found if (endpoint_id is None or a.endpoint_id == endpoint_id)
                       and (event_id is None or a.event_id == event_id) and outcome_matches(a, succeeded)]
            if before is None or len(chosen) >= limit:
                return chosen[:limit]

    async def prune(self, before: float) -> int:
        dropped = 0
        while True:
            count = int(await self._run(scripts.PRUNE, _number(before), str(BATCH)))
            dropped += count
            if count < BATCH:
                return dropped
