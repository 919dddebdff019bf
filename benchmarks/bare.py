"""The floor of the server stack pushhub runs on: a bare ASGI app on uvicorn with uvloop and
httptools (as ``pushhub.server`` configures them) that reads every request's body and answers 202
with a small JSON body the size of pushhub's publish reply, doing nothing else.

    python -m benchmarks.bare --port 8001

:mod:`benchmarks.floor` starts it (``stack``) and publishes to it flat out beside pushhub.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import uvicorn

REPLY = (b'{"id":"evt_0123456789abcdefghijkl","channel":"bench","epoch":"k3j9x2ab","offset":1,'
         b'"cursor":"k3j9x2ab.1"}')
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(REPLY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    await send({"type": "http.response.start", "status": 202, "headers": HEADERS})
    await send({"type": "http.response.body", "body": REPLY})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", lifespan="off",
                access_log=False, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
