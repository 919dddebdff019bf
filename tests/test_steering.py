"""Where new connections go when several sockets listen on one port with ``SO_REUSEPORT``: to a
takeover's successor only (so the predecessor's closing socket refuses none), and spread by the
hash again once a hub with ``--workers`` joins. Real sockets on loopback."""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import Callable, Iterator

import pytest

from pushhub import steering

from .utils import TIMEOUT, free_port

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_ATTACH_REUSEPORT_CBPF is Linux's")

CONNECTIONS = 40


def test_proc_address_is_what_proc_net_tcp_prints() -> None:
    assert steering.proc_address(socket.AF_INET, "127.0.0.1", 8000) == (
        "0100007F:1F40" if sys.byteorder == "little" else "7F000001:1F40")
    assert steering.proc_address(socket.AF_INET6, "::", 443) == "0" * 32 + ":01BB"


def test_count_listening_counts_listeners_on_that_address_only() -> None:
    table = [
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
        "   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1",
        "   1: 0100007F:1F40 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2",
        "   2: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3",
        "   3: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4",
        "   4: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5",
    ]
    assert steering.count_listening(table, "0100007F:1F40") == 2


@contextlib.contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def listening(opened: list[socket.socket], port: int, listen: Callable[[socket.socket, int], None]) -> socket.socket:
    """A socket of the port's group, listening by ``listen`` (a hub's way, or plain ``socket.listen``)."""
    sock = socket.socket()
    opened.append(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    listen(sock, 64)
    return sock


plain = socket.socket.listen


def connect_many(opened: list[socket.socket], port: int) -> None:
    for _ in range(CONNECTIONS):
        opened.append(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))


def queued(listener: socket.socket) -> int:
    """Connections the kernel completed and queued on ``listener``."""
    listener.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def test_a_successor_gets_every_new_connection_and_its_predecessor_none() -> None:
    port = free_port()
    with sockets() as opened:
        predecessor = listening(opened, port, plain)
        successor = listening(opened, port, steering.listen_first)
        connect_many(opened, port)
        assert (queued(predecessor), queued(successor)) == (0, CONNECTIONS)
        predecessor.close()
        connect_many(opened, port)  # alone, the successor gets them by the hash as before
        assert queued(successor) == CONNECTIONS


def test_a_successor_of_a_successor_gets_them_in_turn() -> None:
    port = free_port()
    with sockets() as opened:
        first = listening(opened, port, plain)
        second = listening(opened, port, steering.listen_first)
        first.close()
        third = listening(opened, port, steering.listen_first)
        connect_many(opened, port)
        assert (queued(second), queued(third)) == (0, CONNECTIONS)


def test_workers_joining_share_the_port_by_the_hash_again() -> None:
    port = free_port()
    with sockets() as opened:
        single = listening(opened, port, steering.listen_first)  # whose predecessor has gone: its program stays
        workers = [listening(opened, port, steering.listen_shared) for _ in range(2)]
        connect_many(opened, port)
        counts = [queued(sock) for sock in (single, *workers)]
        assert sum(counts) == CONNECTIONS and all(counts), counts  # none left out ((2/3)^40 by chance)
