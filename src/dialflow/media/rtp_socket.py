"""One UDP socket per media leg, bound to an even port from a configurable range.

The protocol object hands every datagram straight to a callback (the leg's RTP
receiver): no task, no queue, no per-packet allocation beyond what the loop does.
On the stock asyncio loop the transport's read size is cut to 2048 bytes: by default
it reads every datagram with ``recvfrom(256 KiB)``, and glibc serves such a buffer
with mmap/munmap, which cost ~13 µs per packet (PERFORMANCE-NOTES). uvloop does not
need it.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import random
import socket
from collections.abc import Callable
from typing import Any, Final, cast

__all__ = ["PortAllocator", "RtpSocket", "open_rtp_socket"]

log = logging.getLogger(__name__)

#: Largest datagram read on the stock loop (RTP for G.711 at 20 ms is 172 bytes).
MAX_DATAGRAM: Final = 2048
DEFAULT_BUFFER: Final = 1 << 20

DatagramCallback = Callable[[bytes, Any], None]


class PortAllocator:
    """Remembers which RTP ports this process holds, so legs do not collide with each other.

    RFC 3550 §11: RTP uses an even port (RTCP would take the odd one above it).
    Other processes are detected by the bind failing with EADDRINUSE.
    """

    __slots__ = ("_in_use", "_rng")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._in_use: set[tuple[str, int]] = set()
        self._rng = rng if rng is not None else random.Random()

    def candidates(self, host: str, port_range: tuple[int, int]) -> list[int]:
        """Even ports of ``[low, high)`` not held here, starting at a random one."""
        low, high = port_range
        first = low + (low & 1)
        evens = list(range(first, high, 2))
        if not evens:
            raise ValueError(f"port range {port_range} holds no even port")
        start = self._rng.randrange(len(evens))
        ordered = evens[start:] + evens[:start]
        return [p for p in ordered if (host, p) not in self._in_use]

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


class _RtpProtocol(asyncio.DatagramProtocol):
    """Forwards datagrams to a callback; counts socket errors without logging each one."""

    def __init__(self, on_datagram: DatagramCallback) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        if hasattr(transport, "max_size"):  # the stock selector loop only
            transport.max_size = MAX_DATAGRAM

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (peer port closed) arrive here; they are normal at call end.
        self.errors += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class RtpSocket:
    """A bound, non-blocking UDP endpoint for one leg's RTP."""

    __slots__ = ("_allocator", "_protocol", "host", "port", "transport")

    def __init__(
        self,
        host: str,
        port: int,
        transport: asyncio.DatagramTransport,
        protocol: _RtpProtocol,
        allocator: PortAllocator,
    ) -> None:
        self.host = host
        self.port = port
        self.transport = transport
        self._protocol = protocol
        self._allocator = allocator

    @property
    def errors(self) -> int:
        """Socket errors reported so far (e.g. ICMP port unreachable)."""
        return self._protocol.errors

    def set_callback(self, on_datagram: DatagramCallback) -> None:
        """Route received datagrams to ``on_datagram`` from now on."""
        self._protocol.on_datagram = on_datagram

    def sendto(self, data: bytes, addr: Any) -> None:
        """Queue one datagram to ``addr`` (never blocks)."""
        self.transport.sendto(data, addr)

    @property
    def is_closing(self) -> bool:
        """True once ``close`` has been called."""
        return self.transport.is_closing()

    async def close(self) -> None:
        """Close the socket, wait until the loop has let go of it, release the port."""
        if not self.transport.is_closing():
            self.transport.close()
        try:
            await self._protocol.closed
        finally:
            self._allocator.release(self.host, self.port)


async def open_rtp_socket(
    host: str,
    port_range: tuple[int, int] | None,
    on_datagram: DatagramCallback,
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
    loop = asyncio.get_running_loop()
    alloc = allocator if allocator is not None else DEFAULT_ALLOCATOR
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    candidates = [0] if port_range is None else alloc.candidates(host, port_range)
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
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _RtpProtocol(on_datagram), sock=sock
            )
        except BaseException:
            sock.close()
            alloc.release(host, bound_port)
            raise
        return RtpSocket(host, bound_port, transport, protocol, alloc)
    raise OSError(errno.EADDRINUSE, f"no free RTP port on {host} in {port_range}: {last_error}")
