"""Every name pushhub uses in Redis, in one place (pure).

A channel ``orders`` owns two keys and one pub/sub channel, all carrying the hash tag ``{orders}`` so
that Redis Cluster keeps them in one slot (and the publish script may touch them all):

``pushhub:{orders}:meta``      hash: ``epoch`` and ``top`` (the offset of the last event appended)
``pushhub:{orders}:log``       stream of the retained events, entry id ``{offset}-0``
``pushhub:{db}:{orders}:live`` (sharded) pub/sub channel carrying each appended batch

Pub/sub ignores the database number, so the live channel names it: two deployments sharing one
Redis server on different databases never hear each other.
"""

from __future__ import annotations

PREFIX = "pushhub:"


def meta_key(channel: str) -> str:
    return f"{PREFIX}{{{channel}}}:meta"


def log_key(channel: str) -> str:
    return f"{PREFIX}{{{channel}}}:log"


def live_channel(db: int, channel: str) -> bytes:
    return f"{PREFIX}{db}:{{{channel}}}:live".encode()


def channel_of(live: bytes) -> str:
    """The pushhub channel a live pub/sub channel name belongs to."""
    text = live.decode()
    return text[text.index("{") + 1:text.rindex("}")]
