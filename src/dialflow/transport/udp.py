"""SIP over UDP: one socket, datagrams handed to a callback with their source."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import cast

log = logging.getLogger(__name__)

Address = tuple[str, int]
DatagramHandler = Callable[[bytes, Address], None]

# PERFORMANCE-NOTES: loopback drops SIP bursts above ~4,000 set-ups/s with 64 KB
# buffers; 4 MB keeps SIPp-class rates clean.
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024


class UdpSipTransport(asyncio.DatagramProtocol):
    """A bound UDP socket for SIP. ``send`` never blocks; errors are logged, not raised."""

    def __init__(self, on_datagram: DatagramHandler) -> None:
        self._on_datagram = on_datagram
        self._transport: asyncio.DatagramTransport | None = None
        self.local_address: Address = ("0.0.0.0", 0)
        self.send_errors = 0

    @classmethod
    async def bind(cls, host: str, port: int, on_datagram: DatagramHandler) -> UdpSipTransport:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER_BYTES)
            except OSError:  # pragma: no cover - kernel limits
                pass
        sock.bind((host, port))
        sock.setblocking(False)
        protocol = cls(on_datagram)
        await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        # Stock asyncio reads with recvfrom(256 KiB), which costs an mmap per packet
        # (PERFORMANCE-NOTES); SIP datagrams fit in 64 KiB.
        if hasattr(transport, "max_size"):
            transport.max_size = 65536
        sockname = transport.get_extra_info("sockname")
        self.local_address = (sockname[0], sockname[1])

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: the transaction timers deal with the loss.
        log.debug("udp error: %s", exc)

    def send(self, data: bytes, addr: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            self.send_errors += 1
            return
        self._transport.sendto(data, addr)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()
