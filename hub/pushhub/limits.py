"""The limits the hub's HTTP server puts on every request, before any endpoint sees it (pure).

The defaults protect a hub exposed without a proxy: a client cannot make the hub hold more than
``max_header_bytes`` (plus one socket read) of a request head, nor keep a connection open by sending
its head or its body a byte at a time (slowloris).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int = 16 * 1024
    """The request line and the headers together; past it the answer is ``431``."""
    max_headers: int = 100
    """Header fields in one request; past it the answer is ``431``."""
    head_timeout: float = 10.0
    """Seconds from the connection (or the end of the previous response) to a complete request head.
    A connection that sent nothing of its next request is closed; one half-way through gets ``408``."""
    body_timeout: float = 10.0
    """Seconds a request body may go without a byte arriving; then ``408`` and the request is dropped."""
    close_timeout: float = 5.0
    """Seconds the hub waits for a WebSocket client's close frame after sending its own."""
