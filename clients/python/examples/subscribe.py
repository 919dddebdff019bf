"""Follow channels and print their events, reconnecting and resuming by itself.

    python subscribe.py http://127.0.0.1:8000 orders invoices [--ws] [--type 'order.*']
                        [--cursor CURSOR] [--count N]

On exit it prints the cursor to pass as --cursor next time to continue exactly where it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from pushhub_client import Client, Reset, Subscription


async def show(subscription: Subscription, count: int | None) -> None:
    seen = 0
    async for item in subscription:
        if isinstance(item, Reset):
            print(f"! {item.channel}: {item.reason}, some events were skipped")
            continue
        print(f"{item.channel} #{item.offset} {item.type} {json.dumps(item.data)}", flush=True)
        seen += 1
        if seen == count:
            return


async def main(url: str, channels: list[str], types: list[str], cursor: str | None, count: int | None,
               websocket: bool) -> str:
    async with Client(url) as client:
        if websocket:  # one cursor per channel, kept here as JSON
            ws = client.subscribe_ws(channels, types=types, cursors=json.loads(cursor) if cursor else None)
            async with ws:
                await show(ws, count)
            return json.dumps(ws.cursors)
        async with client.subscribe(channels, types=types, cursor=cursor) as sse:
            await show(sse, count)
        return sse.cursor or ""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("channels", nargs="+")
    parser.add_argument("--ws", action="store_true", help="use a WebSocket instead of SSE")
    parser.add_argument("--type", action="append", default=[], help="only these event types (glob, repeat)")
    parser.add_argument("--cursor", default=None, help="continue after this cursor (as printed on exit)")
    parser.add_argument("--count", type=int, default=None, help="stop after this many events")
    args = parser.parse_args()
    try:
        cursor = asyncio.run(main(args.url, args.channels, args.type, args.cursor, args.count, args.ws))
        print(f"resume with: --cursor '{cursor}'")
    except KeyboardInterrupt:
        pass
