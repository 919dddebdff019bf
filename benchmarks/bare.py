"""The floors of the server stacks: an app that reads every request's body and answers 202 with a
small JSON body the size of pushhub's publish reply, doing nothing else, on uvicorn with uvloop and
httptools (``--server uvicorn``, a bare ASGI app), or on the hub's own HTTP server
(``--server http11``: :mod:`pushhub.http11` on uvloop, every request taken by a lean endpoint, as the
hub's publish route is). ``--server http11-sqlite`` is the floor of a durable publish on that
server: before answering, it stores each body as a row of the hub's events table through the hub's
own write path (:class:`pushhub.backends.sqlite.Database`: WAL, one transaction for every request
of a loop turn), with none of the hub's checks, ids, retention or fan-out.

    python -m benchmarks.bare --port 8001 [--server uvicorn|http11|http11-sqlite --data-dir DIR]

:mod:`benchmarks.floor` starts it (``stack``) and publishes to it flat out beside pushhub.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import uvicorn
import uvloop

from pushhub.backends.sqlite import INSERT_EVENTS, Database
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


class GroupCommit:
    """The lean endpoint of ``http11-sqlite``: every body of a loop turn becomes a row of the events
    table, in one transaction, and each request is answered once it has committed."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.queued: list[tuple[bytes, LeanReply]] = []
        self.seq = 0

    def lean(self, scope: dict[str, Any]) -> LeanEndpoint:
        return self.respond

    def respond(self, scope: dict[str, Any], body: bytes, reply: LeanReply) -> None:
        self.queued.append((body, reply))
        if len(self.queued) == 1:
            asyncio.get_running_loop().call_soon(self.commit)

    def commit(self) -> None:
        queued, self.queued = self.queued, []
        now, first = time.time(), self.seq + 1
        self.seq += len(queued)
        rows = [("bench", seq, now, body, "evt_%022d" % seq, "bench.tick", None, None)
                for seq, (body, _) in enumerate(queued, first)]
        self.database.transaction(lambda db: db.executemany(INSERT_EVENTS, rows), "append")
        for _, reply in queued:
            reply((202, FIELDS, REPLY))


async def serve_http11(port: int, data_dir: str | None = None) -> None:
    """Serve with the hub's HTTP server until the process is stopped (storing every body in
    ``data_dir``'s database, if given)."""
    endpoint = lean
    if data_dir is not None:
        database = Database(os.path.join(data_dir, "pushhub.db"))
        database.open()
        endpoint = GroupCommit(database).lean
    state = ServerState(app, lambda scope: None, HttpLimits(), Proxies(), lean=endpoint)
    await asyncio.get_running_loop().create_server(lambda: HttpConnection(state), "127.0.0.1", port, backlog=2048)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", choices=("uvicorn", "http11", "http11-sqlite"), default="uvicorn")
    parser.add_argument("--data-dir", help="where http11-sqlite keeps its database")
    args = parser.parse_args(argv)
    durable = args.server == "http11-sqlite"
    if durable and args.data_dir is None:
        parser.error("--server http11-sqlite needs --data-dir")
    if args.server.startswith("http11"):
        uvloop.run(serve_http11(args.port, args.data_dir if durable else None))
    else:
        uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", lifespan="off",
                    access_log=False, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
