"""Subscribing over WebSocket (``/v1/ws``, subprotocol ``pushhub.json``), resuming per channel."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ._backoff import Backoff
from ._errors import RequestRejected
from ._http import RETRYABLE_STATUSES, rejection
from ._models import Advice, Event, Reset
from ._subscription import Item, Retry, Sleep, Subscription

SUBPROTOCOL = "pushhub.json"


def subscribe_message(msg_id: int, channel: str, types: Sequence[str], cursor: str | None) -> str:
    message: dict[str, Any] = {"op": "subscribe", "id": msg_id, "channel": channel, "types": list(types)}
    if cursor is not None:
        message["cursor"] = cursor
    return json.dumps(message)


class WSSubscription(Subscription):
    """One subscription to ``channels`` over a WebSocket. :attr:`cursors` maps each channel to the
    position of what was delivered on it: pass it as ``cursors`` to a later subscription to continue
    exactly where this one stopped."""

    def __init__(self, url: str, channels: Sequence[str], *, types: Sequence[str] = (),
                 cursors: Mapping[str, str] | None = None, headers: Callable[[], Awaitable[dict[str, str]]],
                 open_timeout: float,
                 backoff: Backoff, sleep: Sleep) -> None:
        super().__init__(backoff, sleep)
        if not channels:
            raise ValueError("subscribe to at least one channel")
        self.url = url
        self.channels = tuple(dict.fromkeys(channels))
        self.types = tuple(types)
        self.cursors: dict[str, str] = dict(cursors or {})
        self.headers = headers
        self.open_timeout = open_timeout

    async def _session(self) -> AsyncGenerator[Item, None]:
        try:
            headers = await self.headers()
            async with connect(self.url, subprotocols=[SUBPROTOCOL], additional_headers=headers,  # type: ignore[list-item]
                               open_timeout=self.open_timeout, close_timeout=self.open_timeout) as ws:
                waiting = {}
                for msg_id, channel in enumerate(self.channels, 1):
                    waiting[msg_id] = channel
                    await ws.send(subscribe_message(msg_id, channel, self.types, self.cursors.get(channel)))
                async for raw in ws:
                    message = json.loads(raw)
                    item = self._item(message, waiting)
                    if item is not None:
                        yield item
            code = ws.close_code or 1006
            raise Retry(f"connection closed with {code}", advice=Advice(code, ws.close_reason or ""))
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            reason = exc.rcvd.reason if exc.rcvd is not None else "abnormal closure"
            raise Retry(f"connection closed with {code} {reason}", advice=Advice(code, reason)) from exc
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status not in RETRYABLE_STATUSES:
                raise rejection(status, bytes(exc.response.body or b"")) from exc
            raise Retry(f"handshake answered {status}") from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise Retry(f"cannot connect: {exc!r}") from exc

    def _item(self, message: dict[str, Any], waiting: dict[int, str]) -> Item | None:
        match message.get("op"):
            case "event":
                self.cursors[message["channel"]] = message["cursor"]
                return Event.from_json(message["event"], message["cursor"])
            case "reset":
                self.cursors[message["channel"]] = message["cursor"]
                return Reset(message["channel"], message["reason"], message["cursor"])
            case "subscribed":
                waiting.pop(message.get("id"), None)  # type: ignore[arg-type]
                self.cursors[message["channel"]] = message["cursor"]
                if not waiting:
                    self._connected()
            case "error":
                raise RequestRejected(400, str(message.get("code")), str(message.get("message")))
        return None
