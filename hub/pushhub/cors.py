"""CORS response headers for the streaming endpoints, which run outside Starlette's
``CORSMiddleware`` (pure)."""

from __future__ import annotations

from collections.abc import Sequence


def allowed(origin: str | None, origins: Sequence[str]) -> bool:
    return origin is not None and ("*" in origins or origin in origins)


def headers(origin: str | None, origins: Sequence[str]) -> list[tuple[bytes, bytes]]:
    """Echo an allowed ``origin`` (credentials allowed, so never ``*``); nothing otherwise."""
    if origin is None or not allowed(origin, origins):
        return [(b"vary", b"origin")] if origins else []
    return [(b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"), (b"vary", b"origin")]
