"""Publish events: one, then a batch (appended atomically, in order).

    python publish.py http://127.0.0.1:8000 orders [--key PUBLISHER_KEY]
"""

from __future__ import annotations

import argparse
import asyncio

from pushhub_client import Client


async def main(url: str, channel: str, key: str | None) -> None:
    async with Client(url, key=key) as client:
        published = await client.publish(channel, "order.created", {"order": 42, "total": "19.90"})
        print(f"published {published.id} at {published.cursor}")

        batch = await client.publish_batch(channel, [
            {"type": "order.paid", "data": {"order": 42}},
            {"type": "order.shipped", "data": {"order": 42}, "meta": {"carrier": "ups"}},
        ])
        print("batch at", ", ".join(p.cursor for p in batch))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("channel")
    parser.add_argument("--key", default=None, help="publisher key, if the hub requires one")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.channel, args.key))
