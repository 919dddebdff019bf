"""The ``pushhub`` command: ``serve``, ``publish``, ``listen``, and the webhook commands
(``endpoints``, ``deliveries``, ``attempts``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import httpx
import orjson

from . import __version__, sse
from .config import add_arguments, load
from .errors import PushHubError
from .webhooks import cli as webhooks_cli

DEFAULT_URL = "http://127.0.0.1:8000"
SERVER_DEPENDENCIES = ("httptools", "uvloop", "websockets")  # what `serve` needs beyond the client commands


def _client_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("PUSHHUB_URL", DEFAULT_URL),
                        help="the hub's base URL (env PUSHHUB_URL)")
    parser.add_argument("--key", default=os.environ.get("PUSHHUB_KEY"),
                        help="publisher key, admin key or access token (env PUSHHUB_KEY)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pushhub", description="A real-time push hub.")
    parser.add_argument("--version", action="version", version=f"pushhub {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the hub")
    add_arguments(serve)

    publish = commands.add_parser("publish", help="publish one event")
    publish.add_argument("channel")
    publish.add_argument("--type", required=True, help="event type, e.g. payment.created")
    publish.add_argument("--data", default="{}", help="the event's data, as JSON")
    publish.add_argument("--meta", default=None, help="metadata, as a JSON object")
    _client_args(publish)

    listen = commands.add_parser("listen", help="print a channel's events as JSON lines, resuming across reconnects")
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
        print(f"pushhub: --data and --meta must be JSON: {exc}", file=sys.stderr)
        return 2
    headers = {"authorization": f"Bearer {args.key}"} if args.key else {}
    try:
        response = httpx.post(f"{args.url}/v1/channels/{args.channel}/events", json=event, headers=headers)
    except httpx.HTTPError as exc:
        print(f"pushhub: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    print(response.text)
    return 0 if response.status_code == 202 else 1


async def listen(args: argparse.Namespace, out: Any = None) -> int:
    """Tail channels over SSE; on any disconnect, reconnect with the last cursor."""
    out = out or sys.stdout
    params = [("channel", c) for c in args.channels] + [("type", t) for t in args.type]
    cursor: str | None = args.cursor
    delay = 0.5
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client:
        while True:
            headers = {"accept": "text/event-stream"}
            if args.key:
                headers["authorization"] = f"Bearer {args.key}"
            if cursor:
                headers["last-event-id"] = cursor
            parser = sse.Parser()
            advice_reconnect = True
            try:
                async with client.stream("GET", f"{args.url}/v1/sse", params=params, headers=headers) as response:
                    if response.status_code != 200:
                        print(f"pushhub: {response.status_code} {(await response.aread()).decode()}", file=sys.stderr)
                        return 1
                    delay = 0.5
                    async for text in response.aiter_text():
                        for message in parser.feed(text):
                            if message.event == "message":
                                out.write(message.data + "\n")
                                out.flush()
                            elif message.event == "disconnect":
                                advice_reconnect = bool(orjson.loads(message.data).get("reconnect"))
                            else:
                                print(f"pushhub: {message.event}: {message.data}", file=sys.stderr)
                        cursor = parser.last_id or cursor
            except httpx.HTTPError as exc:
                print(f"pushhub: stream interrupted ({exc.__class__.__name__}); reconnecting", file=sys.stderr)
            cursor = parser.last_id or cursor
            if not advice_reconnect:
                return 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = load(args)
            try:
                from .server import serve
            except ImportError as exc:
                if exc.name not in SERVER_DEPENDENCIES:
                    raise
                print(f"pushhub: serve needs {exc.name} (pip install pushhub installs it)", file=sys.stderr)
                return 2
            return serve(settings)
        if args.command == "publish":
            return publish(args)
        if args.command in webhooks_cli.COMMANDS:
            return webhooks_cli.run(args)
        return asyncio.run(listen(args))
    except PushHubError as exc:
        print(f"pushhub: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
