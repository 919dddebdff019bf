"""Print a channel's stored events, oldest first, page by page.

    python history.py http://127.0.0.1:8000 orders [--after CURSOR]
"""

from __future__ import annotations

import argparse
import asyncio
import json

from pushhub_client import Client, Reset


async def main(url: str, channel: str, after: str | None) -> None:
    async with Client(url) as client:
        async for item in client.history(channel, after=after, page_size=100):
            if isinstance(item, Reset):
                print(f"! {item.reason}: the history no longer reaches back to {after}")
                continue
            print(f"#{item.offset} {item.time} {item.type} {json.dumps(item.data)}  (cursor {item.cursor})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("channel")
    parser.add_argument("--after", default=None, help="only events after this cursor")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.channel, args.after))
