"""``pushhub endpoints …``, ``pushhub deliveries …`` and ``pushhub attempts …``: the webhook API from a shell.

Each command makes one request to a running hub and prints the JSON answer (``endpoints delete``
prints ``{"deleted": ID}``); errors are one line on stderr (:mod:`pushhub.cli_output`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..cli_output import call
from ..errors import BadRequest

COMMANDS = ("endpoints", "deliveries", "attempts")


def _endpoint_options(parser: argparse.ArgumentParser, *, update: bool) -> None:
    parser.add_argument("--endpoint-url", required=not update, help="where deliveries are POSTed")
    parser.add_argument("--description")
    parser.add_argument("--channel", action="append", dest="channels", help="channel or pattern (repeat; default *)")
    parser.add_argument("--type", action="append", dest="types", help="event type pattern, e.g. payment.* (repeat)")
    parser.add_argument("--secret", help="whsec_… (generated when not given)")
    parser.add_argument("--rate-limit", type=float, help="requests per second")
    parser.add_argument("--max-concurrency", type=int, help="requests in flight")
    parser.add_argument("--ordered", action=argparse.BooleanOptionalAction, default=None,
                        help="deliver one at a time, in order")
    parser.add_argument("--header", action="append", dest="headers", help="NAME=VALUE sent with every delivery")
    parser.add_argument("--signature", choices=("standard", "simple"), help="signature headers (default standard)")
    parser.add_argument("--retry-schedule", help="e.g. 5s,5m,30m (default: the hub's)")
    parser.add_argument("--enabled", action=argparse.BooleanOptionalAction, default=None)


def _endpoint_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in ("description", "channels", "types", "secret", "rate_limit", "max_concurrency", "ordered",
                 "signature", "retry_schedule", "enabled"):
        value = getattr(args, name)
        if value is not None:
            body[name] = value
    if args.headers is not None:
        pairs = [h.partition("=") for h in args.headers]
        body["headers"] = {name: value for name, _, value in pairs}
    if args.endpoint_url:
        body["url"] = args.endpoint_url
    return body


def add_commands(commands: Any, client_args: Callable[[argparse.ArgumentParser], None]) -> None:
    def group(name: str, text: str) -> Any:
        return commands.add_parser(name, help=text).add_subparsers(dest="action", required=True)

    def action(actions: Any, name: str, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=text)
        client_args(parser)
        return parser

    endpoints = group("endpoints", "manage outgoing webhook endpoints")
    create = action(endpoints, "create", "register an endpoint")
    _endpoint_options(create, update=False)
    action(endpoints, "list", "list endpoints")
    action(endpoints, "show", "show one endpoint, with its secret").add_argument("id")
    action(endpoints, "delete", "delete an endpoint").add_argument("id")
    update = action(endpoints, "update", "change an endpoint")
    update.add_argument("id")
    _endpoint_options(update, update=True)
    rotate = action(endpoints, "rotate-secret", "new secret; the old one keeps signing during the overlap")
    rotate.add_argument("id")
    rotate.add_argument("--secret", help="the new whsec_… secret (generated when not given)")
    rotate.add_argument("--overlap", help="how long the old secret keeps signing (default: the hub's, 24h)")

    deliveries = group("deliveries", "list and replay webhook deliveries")
    listing = action(deliveries, "list", "deliveries, newest first")
    listing.add_argument("--endpoint")
    listing.add_argument("--event")
    listing.add_argument("--status", choices=("pending", "succeeded", "failed"))
    listing.add_argument("--limit", type=int, default=100)
    action(deliveries, "show", "one delivery and its attempts").add_argument("id")
    replay = action(deliveries, "replay", "one delivery (ID), or with --endpoint: --failed, --since, --after")
    replay.add_argument("id", nargs="?", help="the delivery to send again")
    replay.add_argument("--endpoint", help="replay for this endpoint")
    replay.add_argument("--failed", action="store_true", help="every failed delivery of the endpoint")
    replay.add_argument("--since", help="every event since this RFC 3339 time")
    replay.add_argument("--channel", help="only this channel (needed with --after)")
    replay.add_argument("--after", help="every event of --channel after this cursor")

    attempts = group("attempts", "the log of delivery attempts")
    listing = action(attempts, "list", "attempts, newest first")
    listing.add_argument("--endpoint")
    listing.add_argument("--event")
    listing.add_argument("--delivery")
    listing.add_argument("--limit", type=int, default=100)


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None, dict[str, Any]]:
    """The method, path, JSON body and query of the request a command stands for."""
    base = "/v1/webhooks"
    command, action = args.command, args.action
    if command == "endpoints":
        path = f"{base}/endpoints"
        if action == "create":
            return "POST", path, _endpoint_body(args), {}
        if action == "list":
            return "GET", path, None, {}
        if action == "show":
            return "GET", f"{path}/{args.id}", None, {}
        if action == "delete":
            return "DELETE", f"{path}/{args.id}", None, {}
        if action == "update":
            return "PATCH", f"{path}/{args.id}", _endpoint_body(args), {}
        rotation = {k: v for k, v in (("secret", args.secret), ("overlap", args.overlap)) if v is not None}
        return "POST", f"{path}/{args.id}/rotate-secret", rotation, {}
    if command == "deliveries":
        if action == "list":
            return "GET", f"{base}/deliveries", None, _query(args, ("endpoint", "event", "status", "limit"))
        if action == "show":
            return "GET", f"{base}/deliveries/{args.id}", None, {}
        if args.id:
            return "POST", f"{base}/deliveries/{args.id}/replay", {}, {}
        if not args.endpoint:
            raise BadRequest("deliveries replay needs a delivery ID or --endpoint")
        body: dict[str, Any] = {"failed": True} if args.failed else {}
        body.update({k: v for k, v in (("since", args.since), ("channel", args.channel), ("after", args.after))
                     if v is not None})
        return "POST", f"{base}/endpoints/{args.endpoint}/replay", body, {}
    return "GET", f"{base}/attempts", None, _query(args, ("endpoint", "event", "delivery", "limit"))


def _query(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def run(args: argparse.Namespace) -> int:
    method, path, body, query = _request(args)
    done = {"deleted": args.id} if (args.command, args.action) == ("endpoints", "delete") else None
    return call(method, args.url + path, key=args.key, body=body, query=query, done=done)
