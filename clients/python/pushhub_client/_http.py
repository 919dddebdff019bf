"""The HTTP side of the client: publishing, history, and turning hub errors into exceptions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import httpx

from ._errors import HubUnreachable, RequestRejected
from ._models import Event, HistoryPage, Published, Reset

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def rejection(status: int, body: bytes) -> RequestRejected:
    """The hub's ``{"error": {"code", "message"}}`` body as an exception (any other body is kept as text)."""
    try:
        error = json.loads(body)["error"]
        return RequestRejected(status, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return RequestRejected(status, "http_error", body.decode(errors="replace")[:500])


def event_body(type: str, data: Any, *, id: str | None, time: str | None, meta: Mapping[str, Any] | None
               ) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type, "data": data}
    if id is not None:
        body["id"] = id
    if time is not None:
        body["time"] = time
    if meta is not None:
        body["meta"] = dict(meta)
    return body


class HttpApi:
    """Publish and history over one ``httpx.AsyncClient``."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise HubUnreachable(f"cannot reach the hub at {self.http.base_url}: {exc!r}") from exc
        if response.status_code >= 400:
            raise rejection(response.status_code, response.content)
        return response.json()

    async def publish(self, channel: str, type: str, data: Any = None, *, id: str | None = None,
                      time: str | None = None, meta: Mapping[str, Any] | None = None) -> Published:
        """Append one event to ``channel``; returns where it landed."""
        body = event_body(type, data, id=id, time=time, meta=meta)
        return Published.from_json(await self._request("POST", f"/v1/channels/{channel}/events", json=body))

    async def publish_batch(self, channel: str, events: Iterable[Mapping[str, Any]]) -> list[Published]:
        """Append several events (each a mapping with ``type`` and optionally ``data``, ``id``,
        ``time``, ``meta``) atomically and in order."""
        reply = await self._request("POST", f"/v1/channels/{channel}/events",
                                    json={"events": [dict(e) for e in events]})
        return [Published.from_json(p) for p in reply["events"]]

    async def history_page(self, channel: str, *, after: str | None = None, limit: int = 100) -> HistoryPage:
        """One page of ``channel``'s events after the cursor ``after`` (from the oldest kept event
        when ``after`` is ``None``)."""
        params: dict[str, str | int] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return HistoryPage.from_json(await self._request("GET", f"/v1/channels/{channel}/events", params=params))

    async def history(self, channel: str, *, after: str | None = None, page_size: int = 100
                      ) -> AsyncIterator[Event | Reset]:
        """Every event of ``channel`` after ``after``, page by page, up to the newest one. A
        :class:`Reset` comes first when the history does not continue exactly from ``after``."""
        while True:
            page = await self.history_page(channel, after=after, limit=page_size)
            if page.reset is not None:
                first = page.events[0] if page.events else None
                yield Reset(channel, page.reset, f"{first.epoch}.{first.offset - 1}" if first else page.cursor)
            for event in page.events:
                yield event
            if not page.more:
                return
            after = page.cursor
