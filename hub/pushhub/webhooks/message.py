"""The body of one delivery attempt (pure).

``{"type", "timestamp", "data", "meta", "metadata": {"event_id", "channel", "cursor", "delivery_id",
"endpoint_id", "attempt"}}``: ``type``, ``timestamp`` (the event's time), ``data`` and ``meta`` are
what the publisher sent; ``metadata`` is pushhub's. The attempt number is part of the body, so each
attempt is signed afresh; ``webhook-id`` (the event id) stays the same across attempts and replays.
"""

from __future__ import annotations

import orjson


def render(stored_event: bytes, *, channel: str, cursor: str, delivery_id: str, endpoint_id: str,
           attempt: int) -> bytes:
    """``stored_event`` is the event as the log stores it (``EventDraft.stored()``)."""
    event = orjson.loads(stored_event)
    return orjson.dumps({
        "type": event["type"],
        "timestamp": event["time"],
        "data": event["data"],
        "meta": event["meta"],
        "metadata": {"event_id": event["id"], "channel": channel, "cursor": cursor, "delivery_id": delivery_id,
                     "endpoint_id": endpoint_id, "attempt": attempt},
    })
