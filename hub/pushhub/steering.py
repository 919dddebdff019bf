"""Which of the sockets listening on one port with ``SO_REUSEPORT`` gets a new connection.

The kernel spreads new connections over such a group by a hash of their addresses. During a
takeover that sends some of them to the predecessor, which is about to close its socket, and closing
a listening socket races with the connections arriving on it: one that chose it in that instant is
refused. So a successor that listens beside one predecessor (``--takeover`` with one process)
attaches a classic BPF program to the group that picks the successor's own socket for every new
connection (socket(7), ``SO_ATTACH_REUSEPORT_CBPF``: sockets are numbered in the order they called
listen(2), and a program's answer that is not a socket of the group means the plain hash). Once the
predecessor has closed its socket, the successor is the only one left and the program's answer no
longer names a socket: the hash picks it as before. A hub with ``--workers`` joins with no program
at all, so that its workers share the port by the hash again.

The socket's position is how many sockets listened on the same address and port before it, read
from ``/proc/net/tcp`` and ``/proc/net/tcp6`` (proc(5)) just before it listens.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import socket
import struct
import sys
from collections.abc import Iterable

logger = logging.getLogger("pushhub")

SO_ATTACH_REUSEPORT_CBPF = 51  # <asm-generic/socket.h>, as on x86 and arm
SO_DETACH_REUSEPORT_BPF = 68
BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column


class _Instruction(ctypes.Structure):
    _fields_ = (("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32))


class _Program(ctypes.Structure):
    _fields_ = (("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Instruction)))


def proc_address(family: int, host: str, port: int) -> str:
    """``host:port`` as ``/proc/net/tcp[6]`` prints a local address: each 32-bit word of the
    address in the machine's byte order, in hex, then the port."""
    packed = socket.inet_pton(family, host)
    words = struct.unpack(f"={len(packed) // 4}I", packed)
    return "".join(f"{word:08X}" for word in words) + f":{port:04X}"


def count_listening(lines: Iterable[str], address: str) -> int:
    """How many sockets of a ``/proc/net/tcp[6]`` table listen on ``address`` (see :func:`proc_address`)."""
    count = 0
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and fields[1] == address and fields[3] == LISTEN:
            count += 1
    return count


def listening_before(sock: socket.socket) -> int:
    """How many sockets already listen on the address ``sock`` is bound to."""
    host, port = sock.getsockname()[:2]
    address = proc_address(sock.family, host, port)
    table = "/proc/net/tcp6" if sock.family == socket.AF_INET6 else "/proc/net/tcp"
    with open(table) as f:
        return count_listening(f, address)


def listen_first(sock: socket.socket, backlog: int) -> None:
    """Listen on ``sock`` (bound with ``SO_REUSEPORT``) and have every new connection to the port
    queued on it, none on the sockets that listened before. Elsewhere than on Linux, or where its
    kernel refuses the program, the hash spreads them as before (with a warning on Linux)."""
    if sys.platform != "linux":
        sock.listen(backlog)
        return
    position = listening_before(sock)
    sock.listen(backlog)
    program = (_Instruction * 1)(_Instruction(BPF_RET_K, 0, 0, position))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF,
                        bytes(_Program(1, ctypes.cast(program, ctypes.POINTER(_Instruction)))))
    except OSError as exc:
        logger.warning("cannot steer new connections to this process (%s): the hub it replaces takes part "
                       "of them until it stops listening", exc.strerror)


def listen_shared(sock: socket.socket, backlog: int) -> None:
    """Listen on ``sock`` and let the hash spread new connections over every socket of the port,
    whatever program a hub that listened before attached."""
    sock.listen(backlog)
    if sys.platform != "linux":
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
    except OSError as exc:
        if exc.errno != errno.ENOENT:  # ENOENT: no program attached
            logger.warning("cannot detach the connection-steering program (%s)", exc.strerror)
