"""The format version of pushhub's data in Redis (``pushhub:format``), and the upgrade to it.

- Format 0 (release c5059d1 and before; no ``pushhub:format`` key): ingest and ``Idempotency-Key``
  records in ``pushhub:dedupe:{<key>}``, unscoped and written after the append.
- Format 1: idempotency records beside their channel's log (:func:`.redis_keys.once_key`), written by
  the publish script in the same step as the append. Logs, live channels and webhook keys are
  unchanged.

A hub that finds no format key upgrades format 0: every ``pushhub:dedupe:*`` record becomes a format-1
record with the time it had left (a publish record in the legacy scope, which matches any
publisher), then is deleted; then it sets the key. Each record's rewrite can be repeated, so hubs
starting at once may all run it. A hub refuses a format newer than :data:`FORMAT` with
:class:`~pushhub.errors.DataVersionError`.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import idempotency
from ..errors import DataVersionError
from . import redis_keys as keys

logger = logging.getLogger("pushhub.redis")

FORMAT = 1
PENDING = b"\x00pending"  # format 0's claim of a key being handled: nothing to carry over


async def check(client: Any, url: str) -> None:
    found = await client.get(keys.FORMAT)
    if found is not None and int(found) > FORMAT:
        raise DataVersionError(
            f"the pushhub data in Redis at {url} is in format {int(found)}, newer than this release understands "
            f"({FORMAT}): it was written by a later release. Run that release, or use another Redis database")
    if found is None:
        upgraded = await upgrade(client)
        await client.set(keys.FORMAT, FORMAT, nx=True)
        if upgraded:
            logger.warning("upgraded the pushhub data in Redis at %s to format %d: %d dedupe records rewritten",
                           url, FORMAT, upgraded)


async def upgrade(client: Any) -> int:
    """Rewrite every format-0 dedupe record; return how many were rewritten."""
    rewritten = 0
    async for name in client.scan_iter(match=keys.LEGACY_DEDUPE + "*", count=500):
        text = name.decode() if isinstance(name, bytes) else str(name)
        value, left = await client.get(name), await client.pttl(name)
        if value is not None and value != PENDING and left > 0:
            inner = text[text.index("{") + 1:text.rindex("}")]
            try:
                converted = idempotency.from_legacy(inner, bytes(value))
            except (ValueError, KeyError, TypeError, IndexError):
                logger.warning("not carrying over the malformed dedupe record %r", text)
                converted = None
            if converted is not None:
                channel, scope, key, recorded = converted
                record = keys.once_key(channel, scope, key)
                await client.hset(record, mapping={"v": recorded.value, "e": recorded.epoch, "f": recorded.first})
                await client.pexpire(record, left)
                rewritten += 1
        await client.delete(name)
    return rewritten
