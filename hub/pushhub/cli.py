"""The ``pushhub`` command: ``serve``, ``config``, ``publish``, ``listen``, and the webhook commands
(``endpoints``, ``deliveries``, ``attempts``). Client commands print JSON on stdout and errors as one
line on stderr; the exit codes are in :mod:`pushhub.startup`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

import httpx
import orjson

from . import __version__, sse, startup
from .cli_output import call, fail, headers, hub_error
from .config import add_arguments, describe, effective, load
from .errors import BadRequest, PushHubError
from .webhooks import cli as webhooks_cli

DEFAULT_URL = "http://127.0.0.1:8000"


def _client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("PUSHHUB_URL", DEFAULT_URL),
                        help="the hub's base URL (env PUSHHUB_URL)")
    parser.add_argument("--key", default=os.environ.get("PUSHHUB_KEY"),
                        help="publisher key, admin key or access token (env PUSHHUB_KEY)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pushhub", description="A real-time push hub.",
                                     epilog="Exit codes: 0 done, 1 the hub answered an error, 2 bad arguments or "
                                            "configuration, 3 storage unusable, 4 Redis unreachable, 5 cannot "
                                            "listen, 6 the hub cannot be reached, 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"pushhub {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the hub", description="Run the hub. Every option is also a "
                                "PUSHHUB_* variable and a key of the --config file; flags win, then the "
                                "environment, then the file.")
    add_arguments(serve)
    config = commands.add_parser("config", help="print the settings serve would use (secrets masked), as JSON")
    add_arguments(config)

    publish = commands.add_parser("publish", help="publish one event")
    publish.add_argument("channel")
    publish.add_argument("--type", required=True, help="event type, e.g. payment.created")
    publish.add_argument("--data", default="{}", help="the event's data, as JSON")
    publish.add_argument("--meta", default=None, help="metadata, as a JSON object")
    publish.add_argument("--idempotency-key", default=None, help="retries with the same key are appended once")
    _client_args(publish)

    listen = commands.add_parser("listen", help="print each event of channels with its cursor, as JSON lines, "
                                                "resuming across reconnects")
    listen.add_argument("channels", nargs="+")
    listen.add_argument("--type", action="append", default=[], help="only these event types (glob, repeat)")
    listen.add_argument("--cursor", default=None, help="resume after this cursor")
    _client_args(listen)
    webhooks_cli.add_commands(commands, _client_args)
    return parser


def publish(args: argparse.Namespace) -> int:
    try:
        event: dict[str, Any] = {"type": args.type, "data": orjson.loads(args.data)}
        if args.meta is not None:
            event["meta"] = orjson.loads(args.meta)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"--data and --meta must be JSON: {exc}") from exc
    extra = {} if args.idempotency_key is None else {"idempotency-key": args.idempotency_key}
    return call("POST", f"{args.url}/v1/channels/{args.channel}/events", key=args.key, body=event, extra=extra)


RETRY_FIRST, RETRY_MAX = 0.5, 10.0


class Listener:
    """Tail channels over SSE, printing ``{"cursor": C, "event": E}`` lines; on any disconnect (or a
    503) reconnect after a growing pause, resuming from the last cursor, which it prints on exit."""

    def __init__(self, args: argparse.Namespace, out: Any) -> None:
        self.args = args
        self.out = out
        self.cursor: str | None = args.cursor
        self.delay = RETRY_FIRST

    async def run(self) -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await self._loop()
        except asyncio.CancelledError:
            return startup.OK  # SIGTERM (after Ctrl-C, asyncio.run raises KeyboardInterrupt: 130)
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            if self.cursor:
                fail(f"last cursor {self.cursor} (resume with --cursor {self.cursor})")

    async def _loop(self) -> int:
        args = self.args
        params = [("channel", c) for c in args.channels] + [("type", t) for t in args.type]
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client:
            while True:
                request_headers = {"accept": "text/event-stream", **headers(args.key)}
                if self.cursor:
                    request_headers["last-event-id"] = self.cursor
                try:
                    async with client.stream("GET", f"{args.url}/v1/sse", params=params,
                                             headers=request_headers) as response:
                        if response.status_code == 503:
                            await response.aread()
                            fail(f"{hub_error(response)}; retrying in {self.delay:g}s")
                        elif response.status_code != 200:
                            await response.aread()
                            fail(hub_error(response))
                            return startup.FAILED
                        elif not await self._follow(response):
                            return startup.FAILED
                except httpx.HTTPError as exc:
                    fail(f"stream interrupted ({exc.__class__.__name__}); reconnecting in {self.delay:g}s")
                await asyncio.sleep(self.delay)
                self.delay = min(self.delay * 2, RETRY_MAX)

    async def _follow(self, response: httpx.Response) -> bool:
        """Print the stream's events; whether to reconnect when it ends."""
        parser = sse.Parser()
        reconnect = True
        announced = False
        self.delay = RETRY_FIRST
        async for text in response.aiter_text():
            messages = parser.feed(text)
            if parser.last_id is not None and not announced:  # the hub's subscription is live
                announced = True
                fail(f"listening to {', '.join(self.args.channels)} from cursor {parser.last_id}")
            self.cursor = parser.last_id or self.cursor
            for message in messages:
                if message.event == "message":
                    self.out.write('{"cursor":%s,"event":%s}\n' % (orjson.dumps(message.id).decode(), message.data))
                    self.out.flush()
                elif message.event == "disconnect":
                    reconnect = bool(orjson.loads(message.data).get("reconnect"))
                    fail(f"disconnected: {message.data}")
                else:
                    fail(f"{message.event}: {message.data}")
        return reconnect


def print_config(args: argparse.Namespace) -> int:
    settings, sources = effective(args)
    print(orjson.dumps(describe(settings, sources), option=orjson.OPT_INDENT_2).decode())
    return startup.OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            from .server import serve

            return serve(load(args))
        if args.command == "config":
            return print_config(args)
        if args.command == "publish":
            return publish(args)
        if args.command in webhooks_cli.COMMANDS:
            return webhooks_cli.run(args)
        return asyncio.run(Listener(args, sys.stdout).run())
    except PushHubError as exc:
        fail(exc.message)
        return startup.USAGE
    except KeyboardInterrupt:
        return startup.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
