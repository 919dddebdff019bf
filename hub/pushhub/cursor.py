"""Stream positions and the opaque resume cursor (pure).

A channel's log is a sequence of offsets (1, 2, 3, …) inside an *epoch*: a random token that changes
whenever the log loses its past (a fresh in-memory hub, a wiped database, a flushed Redis). A
position ``(epoch, offset)`` names the last event a client has seen; offset 0 means "before the
first event".

A cursor records one position per channel of a subscription. It is opaque to clients, but its
grammar is fixed so that every transport and every node reads it the same way:

* one channel:      ``{epoch}.{offset}``                      e.g. ``k3j9x2ab.42``
* several channels: ``{channel}@{epoch}.{offset}`` joined by ``,``

Channel names never contain ``@`` or ``,`` and epochs are alphanumeric, so both forms parse
unambiguously.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from .channels import validate_channel
from .errors import BadChannel, BadCursor

EPOCH_LENGTH = 8
_POSITION_RE = re.compile(r"([a-z0-9]{1,32})\.(0|[1-9][0-9]{0,18})")
MAX_CURSOR_LENGTH = 16384


class Position(NamedTuple):
    epoch: str
    offset: int

    def encode(self) -> str:
        return f"{self.epoch}.{self.offset}"


def new_epoch() -> str:
    """``EPOCH_LENGTH`` characters of ``a-z2-7`` (base32 of 40 random bits): one read of the OS random
    device, which the Redis broker makes for every publish and read (the script creates a missing
    channel's epoch with it)."""
    return base64.b32encode(secrets.token_bytes(EPOCH_LENGTH * 5 // 8)).decode().lower()


def _parse_position(text: str) -> Position:
    match = _POSITION_RE.fullmatch(text)
    if match is None:
        raise BadCursor(f"malformed cursor position {text!r}")
    return Position(match.group(1), int(match.group(2)))


def encode(positions: Mapping[str, Position], channels: Sequence[str]) -> str:
    """Encode the positions of ``channels`` (in that order); the short form for a single channel."""
    if len(channels) == 1:
        return positions[channels[0]].encode()
    return ",".join(f"{name}@{positions[name].encode()}" for name in channels)


def decode(cursor: str, channels: Sequence[str]) -> dict[str, Position]:
    """Decode ``cursor`` for a subscription to ``channels``.

    Channels that the cursor does not mention are absent from the result (the subscriber never saw
    them, so they start from now). Raises :class:`BadCursor` if the cursor is malformed or names a
    channel outside the subscription.
    """
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise BadCursor("cursor is empty or too long")
    if "@" not in cursor:
        if len(channels) != 1:
            raise BadCursor("a single-channel cursor cannot resume a multi-channel subscription")
        return {channels[0]: _parse_position(cursor)}
    return _decode_many(cursor, channels)


def decode_widened(cursor: str, channels: Sequence[str], epochs: Mapping[str, str]) -> dict[str, Position]:
    """Like :func:`decode`, and also resumes a single-channel cursor on a subscription that has since
    grown to more channels: epochs are random per channel, so the cursor's epoch names its channel."""
    if "@" in cursor or len(channels) == 1:
        return decode(cursor, channels)
    position = _parse_position(cursor)
    owners = [name for name in channels if epochs.get(name) == position.epoch]
    if len(owners) != 1:
        raise BadCursor("this single-channel cursor matches none of the subscription's channels")
    return {owners[0]: position}


def _decode_many(cursor: str, channels: Sequence[str]) -> dict[str, Position]:
    wanted = set(channels)
    result: dict[str, Position] = {}
    for entry in cursor.split(","):
        name, sep, position = entry.rpartition("@")
        if not sep:
            raise BadCursor(f"malformed cursor entry {entry!r}")
        try:
            validate_channel(name)
        except BadChannel as exc:
            raise BadCursor(f"malformed cursor entry {entry!r}") from exc
        if name not in wanted:
            raise BadCursor(f"cursor names channel {name!r}, which is not in this subscription")
        result[name] = _parse_position(position)
    return result
