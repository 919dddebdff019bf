"""CORS response headers for the streaming endpoints, which run outside Starlette's
``CORSMiddleware`` (pure).

A listed origin may read answers to credentialed requests (cookies): its origin is echoed with
``Access-Control-Allow-Credentials: true``. A ``*`` lets every origin read answers to requests
without credentials (a token in the header or the query) and never allows credentials, for any
origin: a browser then withholds every cookie-authenticated answer from the page, so no foreign
page can read a stream with its visitor's cookie.
"""

from __future__ import annotations

from collections.abc import Sequence


def allowed(origin: str | None, origins: Sequence[str]) -> bool:
    return origin is not None and ("*" in origins or origin in origins)


def credentials_allowed(origins: Sequence[str]) -> bool:
    """Whether cross-origin answers may carry ``Access-Control-Allow-Credentials: true``."""
    return "*" not in origins


def headers(origin: str | None, origins: Sequence[str]) -> list[tuple[bytes, bytes]]:
    """The CORS headers of an answer to a request from ``origin``; nothing for a foreign one."""
    if origin is None or not allowed(origin, origins):
        return [(b"vary", b"origin")] if origins else []
    if not credentials_allowed(origins):
        return [(b"access-control-allow-origin", b"*")]
    return [(b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"), (b"vary", b"origin")]
