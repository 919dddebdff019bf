"""The floors of the server stacks: an app that reads every request's body and answers 202 with a
small JSON body the size of pushhub's publish reply, doing nothing else, on uvicorn with uvloop and
httptools (``--server uvicorn``, a bare ASGI app), or on the hub's own HTTP server
(``--server http11``: :mod:`pushhub.http11` on uvloop, every request taken by a lean endpoint, as the
hub's publish route is).

    python -m benchmarks.bare --port 8001 [--server uvicorn|http11]

:mod:`benchmarks.floor` starts it (``stack``) and publishes to it flat out beside pushhub.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import uvicorn
import uvloop

from pushhub.forwarded import Proxies
from pushhub.http11 import HttpConnection, LeanEndpoint, LeanReply, ServerState
from pushhub.limits import HttpLimits

REPLY = (b'{"id":"evt_0123456789abcdefghijkl","channel":"bench","epoch":"k3j9x2ab","offset":1,'
         b'"cursor":"k3j9x2ab.1"}')
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(REPLY)).encode())]
FIELDS = b"content-type: application/json\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await send({"type": "http.response.start", "status": 202, "headers": HEADERS})
    await send({"type": "http.response.body", "body": REPLY})


def respond(scope: dict[str, Any], body: bytes, reply: LeanReply) -> None:
    reply((202, FIELDS, REPLY))


def lean(scope: dict[str, Any]) -> LeanEndpoint:
    return respond


async def serve_http11(port: int) -> None:
    """Serve with the hub's HTTP server until the process is stopped."""
    state = ServerState(app, lambda scope: None, HttpLimits(), Proxies(), lean=lean)
    await asyncio.get_running_loop().create_server(lambda: HttpConnection(state), "127.0.0.1", port, backlog=2048)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", choices=("uvicorn", "http11"), default="uvicorn")
    args = parser.parse_args(argv)
    if args.server == "http11":
        uvloop.run(serve_http11(args.port))
    else:
        uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", lifespan="off",
                    access_log=False, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
