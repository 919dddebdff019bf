"""Where an event came from (pure): the provenance the hub keeps beside its log, for admins only.

An :class:`Origin` is given with every publish: the HTTP publish API or a WebSocket ``publish``
with the publisher's identity (:func:`pushhub.auth.publisher_identity`: the hash of its key, or a
token's ``sub``), or an ingest source with its signature scheme and the provider's delivery id. The
backend stores it with the events of that publish, in the same atomic step (the event index), and
counts every repeat of an idempotent request that was answered from the record of the first one.
Subscribers never receive any of it: an event's wire forms are made from the event alone.

Stored compactly: :meth:`Origin.key` is the part many events share (interned by the SQLite store),
:attr:`Origin.delivery` the part that is the event's own.
"""

from __future__ import annotations

from typing import Any, NamedTuple

API = "api"
WEBSOCKET = "websocket"
INGEST = "ingest"
SEPARATOR = "\x1f"


class Origin(NamedTuple):
    via: str  # API, WEBSOCKET or INGEST
    who: str  # the publisher identity, or the ingest source's name
    scheme: str = ""  # an ingest source's signature scheme
    delivery: str | None = None  # the provider's delivery id of an ingested webhook

    def key(self) -> str:
        return f"{self.via}{SEPARATOR}{self.who}{SEPARATOR}{self.scheme}"

    @classmethod
    def from_key(cls, key: str, delivery: str | None = None) -> Origin:
        via, who, scheme = [*key.split(SEPARATOR), "", ""][:3]
        return cls(via, who, scheme, delivery)

    def as_dict(self) -> dict[str, Any]:
        if self.via == INGEST:
            return {"via": INGEST, "source": self.who, "scheme": self.scheme, "delivery_id": self.delivery}
        return {"via": self.via, "publisher": self.who}

