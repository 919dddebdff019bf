"""Floors: what the machine and the libraries under the hub cost with nothing of the hub on top,
each measured beside pushhub in the same run.

    python -m benchmarks.floor send --sockets 1000 --rounds 100 --size 300
    python -m benchmarks.floor stack --runs 3 --duration 10
    python -m benchmarks.floor client --runs 3 --requests 5000

* ``send``: the CPU one ``send()`` of an event-sized message costs on a loopback TCP socket. A
  reader process holds the other ends of the sockets and drains them; the sender writes one message
  per socket per round, as a fan-out of one event does. Whatever a server does, a delivery written
  on its own costs at least this much CPU; only writing several events at once goes below it.
* ``stack``: flat-out single-event publishing (``--in-flight`` 32 requests at a time) into a bare
  uvicorn+httptools app that answers 202 (:mod:`benchmarks.bare`), the ceiling of the server stack
  the hub runs on, and into the same app on the hub's own HTTP server through its lean route
  (``http11``, the ceiling of the hub's publish route), into that app storing each body in the
  hub's SQLite file before it answers (``http11-sqlite``, the ceiling of a durable publish), beside
  pushhub with its memory and its SQLite log (and, with ``--base COMMIT``, that commit's pushhub
  with both); the ratios are to bare. ``--rate R --channels N`` paces the publishes instead (R per
  second, each alone, spread over N channels: the per-user load with no subscriber).
* ``client``: POSTs per second from a bare ``aiohttp`` and a bare ``httpx`` client (4 in flight)
  to the fast receiver of the webhook benchmark (:class:`benchmarks.webhooks.Receiver`, in a process
  of its own), beside the webhooks pushhub delivers to that receiver per second (SQLite store, 4 in
  flight per endpoint).

The contenders of ``stack`` and ``client`` take turns within each run, in an order that rotates
from run to run; each prints the median and range of its runs. Every result is appended, with the
machine's facts, to ``benchmarks/results/floor.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
from typing import Any

from benchmarks import client_floor, stack_floor
from benchmarks.loadgen import machine_facts, raise_fd_limit, save_result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    floors = parser.add_subparsers(dest="floor", required=True)
    send = floors.add_parser("send", help="CPU per loopback send() of one message")
    send.add_argument("--sockets", type=int, default=1000)
    send.add_argument("--rounds", type=int, default=100)
    send.add_argument("--size", type=int, default=300, help="bytes per message")
    stack = floors.add_parser("stack", help="flat-out publish: bare uvicorn+httptools app beside pushhub")
    stack.add_argument("--duration", type=float, default=10.0, help="seconds of publishing per run")
    stack.add_argument("--in-flight", type=int, default=32,
                       help="publish requests in flight (with --rate: connections)")
    stack.add_argument("--rate", type=float, help="publishes per second, paced, instead of flat out")
    stack.add_argument("--channels", type=int, default=1, help="with --rate: channels the publishes go to in turn")
    stack.add_argument("--base", help="a commit whose pushhub is measured beside this tree's")
    client = floors.add_parser("client", help="POSTs/s: bare aiohttp and httpx beside pushhub's webhooks")
    client.add_argument("--requests", type=int, default=5000, help="POSTs (and webhooks) per run")
    client.add_argument("--in-flight", type=int, default=4, help="requests in flight")
    client.add_argument("--base", help="a commit whose pushhub is measured beside this tree's")
    for sub in (stack, client):
        sub.add_argument("--runs", type=int, default=3, help="interleaved runs per contender")
    for sub in (send, stack, client):
        sub.add_argument("--no-save", action="store_true", help="do not append to benchmarks/results")
    return parser.parse_args(argv)


def reader(port: int, count: int, ready: int) -> None:
    """Connect ``count`` sockets, say so on ``ready``, then drain them until the sender hangs up."""
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    poller = select.epoll()
    by_fd = {}
    for sock in sockets:
        sock.setblocking(False)
        poller.register(sock.fileno(), select.EPOLLIN)
        by_fd[sock.fileno()] = sock
    os.write(ready, b"x")
    open_count = count
    while open_count:
        for fd, _ in poller.poll():
            if not by_fd[fd].recv(1 << 16):
                poller.unregister(fd)
                open_count -= 1


def send_floor(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    facts = machine_facts()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4096)
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                reader(listener.getsockname()[1], args.sockets, ready_w)
            finally:
                os._exit(0)
        peers = [listener.accept()[0] for _ in range(args.sockets)]
    for peer in peers:
        peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    os.read(ready_r, 1)
    message = b"x" * args.size
    before = os.times()
    for _ in range(args.rounds):
        for peer in peers:
            peer.send(message)
    after = os.times()
    for peer in peers:
        peer.close()
    os.waitpid(pid, 0)
    sends = args.sockets * args.rounds
    user, system = after.user - before.user, after.system - before.system
    return {
        "benchmark": "floor",
        "sockets": args.sockets,
        "rounds": args.rounds,
        "size": args.size,
        "us_per_send": round((user + system) / sends * 1e6, 2),
        "user_us_per_send": round(user / sends * 1e6, 2),
        "sys_us_per_send": round(system / sends * 1e6, 2),
        **facts,
        "loadavg_end": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.floor in ("stack", "client"):
        record = (stack_floor if args.floor == "stack" else client_floor).run(args)
        print(json.dumps({key: value for key, value in record.items() if key != "records"}))
    else:
        record = send_floor(args)
        print(f"floor: send() of {record['size']} bytes to {record['sockets']} loopback sockets: "
              f"{record['us_per_send']} us CPU per send (user {record['user_us_per_send']}, system "
              f"{record['sys_us_per_send']}); load average {record['loadavg_start']:.2f} on {record['nproc']} cores")
        print(json.dumps(record))
    if not args.no_save:
        save_result("floor", record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
