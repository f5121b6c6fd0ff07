"""SIP over TCP: a listener and outgoing connections, framed by Content-Length.

Every connection is keyed by the peer's address so that responses and in-dialog
requests find the connection a request came in on (RFC 3261 §18.2.2).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..sip.errors import SipParseError
from ..sip.message import SipMessage
from ..sip.parser import StreamFramer, StreamMessageError

log = logging.getLogger(__name__)

Address = tuple[str, int]
MessageHandler = Callable[[SipMessage, Address], None]
ErrorHandler = Callable[[SipParseError, Address, bytes | None], None]

IDLE_TIMEOUT = 300.0


class _Connection(asyncio.Protocol):
    def __init__(self, owner: TcpSipTransport) -> None:
        self._owner = owner
        self._framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1]))
        self._owner._connections[self.peer] = self

    def data_received(self, data: bytes) -> None:
        while True:
            try:
                messages = self._framer.feed(data)
            except StreamMessageError as exc:
                # One bad message; the stream is still framed: answer it and go on.
                for message in exc.messages:
                    self._owner._on_message(message, self.peer)
                self._owner._on_error(exc, self.peer, exc.data)
                data = b""
                continue
            except SipParseError as exc:
                # A framing error leaves no way to find the next message: close (§18.3).
                for message in getattr(exc, "messages", []):
                    self._owner._on_message(message, self.peer)
                self._owner._on_error(exc, self.peer, None)
                if self.transport is not None:
                    self.transport.close()
                return
            break
        for message in messages:
            self._owner._on_message(message, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._owner._connections.get(self.peer) is self:
            del self._owner._connections[self.peer]

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class TcpSipTransport:
    """A TCP listener plus a table of live connections (incoming and outgoing)."""

    def __init__(self, on_message: MessageHandler, on_error: ErrorHandler) -> None:
        self._on_message = on_message
        self._on_error = on_error
        self._connections: dict[Address, _Connection] = {}
        self._server: asyncio.base_events.Server | None = None
        self.local_address: Address = ("0.0.0.0", 0)

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, reuse_address=True
        )
        sockname = self._server.sockets[0].getsockname()
        self.local_address = (sockname[0], sockname[1])

    async def connect(self, addr: Address) -> Address:
        """Open (or reuse) a connection to ``addr``; returns the key to send on."""
        if addr in self._connections:
            return addr
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: _Connection(self), addr[0], addr[1])
        # Key outgoing connections by the address we dialled as well as the peer name.
        self._connections[addr] = protocol
        return addr

    def has_connection(self, addr: Address) -> bool:
        return addr in self._connections

    def send(self, data: bytes, addr: Address) -> bool:
        conn = self._connections.get(addr)
        if conn is None:
            return False
        conn.send(data)
        return True

    async def close(self) -> None:
        for conn in list(self._connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        self._connections.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def is_open(self) -> bool:
        return self._server is not None and self._server.is_serving()
