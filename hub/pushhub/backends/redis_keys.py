"""Every name pushhub uses in Redis, in one place (pure).

A channel ``orders`` owns these keys and one pub/sub channel, all carrying the hash tag ``{orders}``
so that Redis Cluster keeps them in one slot (and the publish script may touch them all):

``pushhub:{orders}:meta``        hash: ``epoch`` and ``top`` (the offset of the last event appended)
``pushhub:{orders}:log``         stream of the retained events, entry id ``{offset}-0``
``pushhub:{orders}:ids``        hash: the event index, event id → offset of each retained event
``pushhub:{orders}:repeats``    hash: offset → how many repeats were answered from its record
``pushhub:{orders}:once:{hash}`` hash: one idempotency record of a publish to the channel (``v`` its
                                 value, ``e`` and ``f`` the epoch and first offset of its events);
                                 ``{hash}`` is the SHA-256 of the record's scope and key
``pushhub:{db}:{orders}:live``   (sharded) pub/sub channel carrying each appended batch
``pushhub:format``               the format version of all of the above (:mod:`.redis_format`)

Pub/sub ignores the database number, so the live channel names it: two deployments sharing one
Redis server on different databases never hear each other.
"""

from __future__ import annotations

import hashlib

PREFIX = "pushhub:"
FORMAT = PREFIX + "format"
LEGACY_DEDUPE = PREFIX + "dedupe:"  # format 0: ``pushhub:dedupe:{<key>}``, unscoped records


def meta_key(channel: str) -> str:
    return f"{PREFIX}{{{channel}}}:meta"


def log_key(channel: str) -> str:
    return f"{PREFIX}{{{channel}}}:log"


def ids_key(channel: str) -> str:
    return f"{PREFIX}{{{channel}}}:ids"


def repeats_key(channel: str) -> str:
    return f"{PREFIX}{{{channel}}}:repeats"


META_PATTERN_SUFFIX = "}:meta"


def meta_pattern(pattern: str) -> str:
    """The SCAN pattern of the meta keys of the channels ``pattern`` may match (a superset: check
    each name found)."""
    return f"{PREFIX}{{{pattern}{META_PATTERN_SUFFIX}"


def channel_of_key(key: str) -> str:
    return key[key.index("{") + 1:key.rindex("}")]


def once_key(channel: str, scope: str, key: str) -> str:
    digest = hashlib.sha256(scope.encode() + b"\0" + key.encode()).hexdigest()
    return f"{PREFIX}{{{channel}}}:once:{digest}"


def live_channel(db: int, channel: str) -> bytes:
    return f"{PREFIX}{db}:{{{channel}}}:live".encode()


def channel_of(live: bytes) -> str:
    """The pushhub channel a live pub/sub channel name belongs to."""
    text = live.decode()
    return text[text.index("{") + 1:text.rindex("}")]
