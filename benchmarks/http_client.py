"""The floor of the outgoing webhooks for ``benchmarks/webhooks.py``: what an HTTP client library
reaches bare, in a process of its own, POSTing webhook-sized requests to one receiver.

    python -m benchmarks.http_client --client aiohttp --url http://127.0.0.1:PORT/hook --requests 20000

The senders are :mod:`benchmarks.client_floor`'s (``--concurrency`` requests in flight over a pool
of keep-alive connections, pushhub's signature headers, no signing, no SSRF check, no
bookkeeping): what is left is the library and the event loop (uvloop, as the hub runs). Prints one
JSON line with the rate and this process's CPU time per request.
"""

from __future__ import annotations

import argparse
import json

import uvloop

from benchmarks.client_floor import send_aiohttp, send_httpx

SENDERS = {"aiohttp": send_aiohttp, "httpx": send_httpx}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=sorted(SENDERS), default="aiohttp")
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    seconds, cpu = uvloop.run(SENDERS[args.client](args.url, args.requests, args.concurrency))
    print(json.dumps({"client": args.client, "requests": args.requests, "concurrency": args.concurrency,
                      "seconds": round(seconds, 3), "per_second": round(args.requests / seconds, 1),
                      "cpu_us_per_request": round(cpu / args.requests * 1e6, 1)}))


if __name__ == "__main__":
    main()
