"""Subscribing over Server-Sent Events (``GET /v1/sse``), resuming with ``Last-Event-ID``."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence

import httpx

from ._backoff import Backoff
from ._http import RETRYABLE_STATUSES, rejection
from ._models import Advice, Event, Reset
from ._sse import SSEDecoder, SSEMessage
from ._subscription import Item, Retry, Sleep, Subscription


def retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else 0.0


class SSESubscription(Subscription):
    """One subscription to ``channels`` over SSE. :attr:`cursor` is the position of everything
    delivered so far (one opaque string for all channels): pass it as ``cursor`` to a later
    subscription to the same channels and types to continue exactly where this one stopped."""

    def __init__(self, http: httpx.AsyncClient, channels: Sequence[str], *, types: Sequence[str] = (),
                 cursor: str | None = None, backoff: Backoff, idle_timeout: float | None,
                 sleep: Sleep) -> None:
        super().__init__(backoff, sleep)
        if not channels:
            raise ValueError("subscribe to at least one channel")
        self.http = http
        self.channels = tuple(channels)
        self.types = tuple(types)
        self.cursor = cursor
        self.idle_timeout = idle_timeout

    async def _session(self) -> AsyncGenerator[Item, None]:
        params: list[tuple[str, str | int | float | bool | None]] = [
            *(("channel", c) for c in self.channels), *(("type", t) for t in self.types)]
        headers = {"accept": "text/event-stream"}
        if self.cursor is not None:
            headers["last-event-id"] = self.cursor
        timeout = httpx.Timeout(self.http.timeout.connect, read=self.idle_timeout)
        try:
            async with self.http.stream("GET", "/v1/sse", params=params, headers=headers,
                                        timeout=timeout) as response:
                if response.status_code != 200:
                    body = await response.aread()
                    if response.status_code in RETRYABLE_STATUSES:
                        raise Retry(f"hub answered {response.status_code}", delay=retry_after(response))
                    raise rejection(response.status_code, body)
                decoder = SSEDecoder()
                async for line in response.aiter_lines():
                    message = decoder.line(line)
                    if message is None:
                        if line == "" and decoder.last_id is not None:
                            self.cursor = decoder.last_id
                            self._connected()
                        continue
                    item = self._item(message)
                    if isinstance(item, Advice):
                        raise Retry(f"hub disconnected: {item.code} {item.reason}", advice=item)
                    if item is not None:
                        yield item
        except httpx.TransportError as exc:
            raise Retry(f"connection lost: {exc!r}") from exc

    def _item(self, message: SSEMessage) -> Item | Advice | None:
        if message.last_id is not None:
            self.cursor = message.last_id
        body = json.loads(message.data)
        match message.event:
            case "message":
                return Event.from_json(body, message.last_id or "")
            case "reset":
                return Reset(body["channel"], body["reason"], body["cursor"])
            case "disconnect":
                return Advice(int(body["code"]), str(body["reason"]))
        return None
