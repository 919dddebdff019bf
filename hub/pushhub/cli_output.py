"""How every client command of ``pushhub`` answers: the hub's JSON on stdout, an error as one line
on stderr (``pushhub: 401 unauthorized: …``, with the hub's error code), and an exit code from
:mod:`pushhub.startup` (1 the hub refused, 2 bad arguments, 6 the hub cannot be reached)."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import orjson

from .startup import FAILED, OK, UNREACHABLE

TIMEOUT = 30.0


def fail(message: str) -> None:
    print(f"pushhub: {message}", file=sys.stderr, flush=True)


def hub_error(response: httpx.Response) -> str:
    """``STATUS CODE: MESSAGE`` from the hub's error body, or the status and text of another answer."""
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        text = " ".join(response.text.split())[:200]
        return f"{response.status_code} {response.reason_phrase}" + (f": {text}" if text else "")


def headers(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


def call(method: str, url: str, *, key: str | None, body: Any = None, query: dict[str, Any] | None = None,
         done: Any = None, extra: dict[str, str] | None = None) -> int:
    """Make one request and print its answer; ``done`` is printed for a 204 (no body)."""
    try:
        response = httpx.request(method, url, json=body, params=query, headers={**headers(key), **(extra or {})},
                                 timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc.__class__.__name__}: {exc}")
        return UNREACHABLE
    if not response.is_success:
        fail(hub_error(response))
        return FAILED
    answer = done if response.status_code == 204 else response.json()
    print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode(), flush=True)
    return OK
