"""Reading a Server-Sent Events stream (pure): lines in, dispatched messages out.

It follows the WHATWG EventSource rules the hub relies on: an ``id`` line is remembered even in a
frame without data (the hub hands out a stream's starting cursor that way), comments and unknown
fields are ignored, a blank line dispatches.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEMessage:
    event: str
    data: str
    last_id: str | None


class SSEDecoder:
    def __init__(self) -> None:
        self.last_id: str | None = None
        self.retry_ms: int | None = None
        self._data: list[str] = []
        self._event = ""

    def line(self, line: str) -> SSEMessage | None:
        """Feed one line without its line ending; returns a message when the line dispatches one."""
        if line == "":
            message = None
            if self._data:
                message = SSEMessage(self._event or "message", "\n".join(self._data), self.last_id)
            self._data = []
            self._event = ""
            return message
        field, colon, value = line.partition(":")
        if not field and colon:
            return None
        if value.startswith(" "):
            value = value[1:]
        match field:
            case "data":
                self._data.append(value)
            case "event":
                self._event = value
            case "id" if "\0" not in value:
                self.last_id = value
            case "retry" if value.isdigit():
                self.retry_ms = int(value)
        return None
