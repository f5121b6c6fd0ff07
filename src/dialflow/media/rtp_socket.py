"""One UDP socket per media leg, bound to an even port from a configurable range.

The socket is plain and non-blocking and is NOT registered with the event loop: the
media clock reads it in its 5 ms sub-ticks (``MediaClock`` polls every leg's socket
with one epoll set and the leg calls ``recvfrom`` once per queued datagram) and the
leg sends with ``sendto`` directly. At 1,000 calls that is 50,000 datagrams/s each
way; the loop's per-datagram path (a transport callback and a protocol method per
datagram, plus a failing ``recvmsg`` per wake-up, uvloop's address conversion and
write-buffer bookkeeping on every send) cost more than the RTP work itself
(docs/performance.md). Reading at the sub-tick costs little latency: the jitter
buffer is popped only at the leg's 20 ms tick anyway.

A UDP socket never blocks on send; a full send buffer (``BlockingIOError``) means the
machine is far behind, and queueing in user space would only add latency to real-time
audio, so the datagram is dropped and counted (``send_drops``). Errors the kernel
reports on the socket (ICMP port unreachable on the read side) are counted in
``errors``: they are normal when the peer goes away at call end.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import random
import socket
from collections.abc import Iterator
from typing import Any, Final

__all__ = ["MAX_DATAGRAM", "PortAllocator", "RtpSocket", "open_rtp_socket"]

log = logging.getLogger(__name__)

#: Largest datagram read (RTP for G.711 at 20 ms is 172 bytes); longer ones are truncated.
MAX_DATAGRAM: Final = 2048
DEFAULT_BUFFER: Final = 1 << 20

Address = Any  # (host, port) or (host, port, flowinfo, scope_id)


class PortAllocator:
    """Remembers which RTP ports this process holds, so legs do not collide with each other.

    RFC 3550 §11: RTP uses an even port (RTCP would take the odd one above it).
    Other processes are detected by the bind failing with EADDRINUSE.
    """

    __slots__ = ("_in_use", "_rng")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._in_use: set[tuple[str, int]] = set()
        self._rng = rng if rng is not None else random.Random()

    def candidates(self, host: str, port_range: tuple[int, int]) -> Iterator[int]:
        """Even ports of ``[low, high)`` not held here, from a random one round the range.

        Lazy: a call usually takes the first port it is offered, so building the whole
        list of a 10,000-port range per call was the cost (O(1) per allocation now).
        ValueError at once if the range holds no even port.
        """
        low, high = port_range
        first = low + (low & 1)
        count = (high - first + 1) // 2
        if count <= 0:
            raise ValueError(f"port range {port_range} holds no even port")
        return self._rotated(host, first, count, self._rng.randrange(count))

    def _rotated(self, host: str, first: int, count: int, start: int) -> Iterator[int]:
        in_use = self._in_use
        for i in range(count):
            port = first + 2 * ((start + i) % count)
            if (host, port) not in in_use:
                yield port

    def claim(self, host: str, port: int) -> None:
        """Record ``port`` as held by this process."""
        self._in_use.add((host, port))

    def release(self, host: str, port: int) -> None:
        """Forget ``port`` (its socket is closed)."""
        self._in_use.discard((host, port))

    def __len__(self) -> int:
        return len(self._in_use)


#: The allocator shared by every leg of the process unless one is passed in.
DEFAULT_ALLOCATOR: Final = PortAllocator()


class RtpSocket:
    """A bound, non-blocking UDP endpoint for one leg's RTP (read and written directly)."""

    __slots__ = ("_allocator", "_closed", "errors", "host", "port", "send_drops", "sock")

    def __init__(self, host: str, port: int, sock: socket.socket, allocator: PortAllocator) -> None:
        self.host = host
        self.port = port
        self.sock = sock
        #: Errors the kernel reported on the socket (e.g. ICMP port unreachable).
        self.errors = 0
        #: Datagrams dropped because the send buffer was full.
        self.send_drops = 0
        self._allocator = allocator
        self._closed = False

    def fileno(self) -> int:
        """The socket's file descriptor (-1 once closed)."""
        return self.sock.fileno()

    def recvfrom(self) -> tuple[bytes, Address] | None:
        """One queued datagram and its source, or None if there is none (never blocks)."""
        try:
            return self.sock.recvfrom(MAX_DATAGRAM)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            self.errors += 1
            return None

    def sendto(self, data: bytes | memoryview, addr: Address) -> None:
        """Send one datagram to ``addr`` now; dropped and counted if the buffer is full."""
        try:
            self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self.send_drops += 1
        except OSError:
            self.errors += 1

    @property
    def is_closing(self) -> bool:
        """True once ``close`` has been called."""
        return self._closed

    def close(self) -> None:
        """Close the socket and release its port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.sock.close()
        self._allocator.release(self.host, self.port)


def open_rtp_socket(
    host: str,
    port_range: tuple[int, int] | None,
    *,
    rcvbuf: int = DEFAULT_BUFFER,
    sndbuf: int = DEFAULT_BUFFER,
    allocator: PortAllocator | None = None,
) -> RtpSocket:
    """Bind a UDP socket on ``host`` to a free even port of ``port_range`` ([low, high)).

    ``port_range=None`` lets the kernel choose (any port; for tests). Ports taken by
    another process are skipped (EADDRINUSE); OSError if the whole range is taken.
    Socket buffers are enlarged (the kernel caps them at net.core.[rw]mem_max).
    """
    alloc = allocator if allocator is not None else DEFAULT_ALLOCATOR
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    candidates: Iterator[int] = (
        iter((0,)) if port_range is None else alloc.candidates(host, port_range)
    )
    last_error: OSError | None = None
    for port in candidates:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            sock.setblocking(False)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                last_error = exc
                continue
            raise
        bound_port: int = sock.getsockname()[1]
        alloc.claim(host, bound_port)
        return RtpSocket(host, bound_port, sock, alloc)
    raise OSError(errno.EADDRINUSE, f"no free RTP port on {host} in {port_range}: {last_error}")
