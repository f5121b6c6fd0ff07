"""A tiny real HTTP/1.1 server on 127.0.0.1 that plays a webhook receiver in tests.

Each request is recorded and answered by a script: a list of :class:`Reply` consumed in
order (then ``default``), or a function of the request. ``Reply(hang=True)`` never answers
(until the server closes), which is how timeouts are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hang: bool = False


@dataclass(slots=True)
class Received:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic()

    @property
    def event_id(self) -> str:
        return self.headers.get("dialflow-event-id", "")


_REASONS = {200: "OK", 204: "No Content", 302: "Found", 400: "Bad Request"}


class Receiver:
    """``async with Receiver(...) as rx: rx.url``; ``rx.requests`` lists what arrived."""

    def __init__(
        self,
        script: list[Reply] | None = None,
        *,
        default: Reply | None = None,
        respond: Callable[[Received], Reply] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        port: int = 0,
    ) -> None:
        self.script = list(script or [])
        self.default = default or Reply()
        self.respond = respond
        self.requests: list[Received] = []
        self._ssl = ssl_context
        self._port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._arrived = asyncio.Condition()

    @property
    def port(self) -> int:
        return self._port

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self._port, ssl=self._ssl
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._closed.set()
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        # Python 3.11's wait_closed does not wait for connection handlers: do it here, so
        # none is left for the event loop to cancel at teardown.
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=1.0)
        await self._server.wait_closed()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """Until ``count`` requests have arrived (fails the test after ``timeout``)."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    def _reply_for(self, request: Received) -> Reply:
        if self.respond is not None:
            return self.respond(request)
        return self.script.pop(0) if self.script else self.default

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                request = Received(method, target, headers, body, time.monotonic())
                async with self._arrived:
                    self.requests.append(request)
                    self._arrived.notify_all()
                reply = self._reply_for(request)
                if reply.hang:
                    await self._closed.wait()
                    return
                lines_out = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'X')}"]
                extra = {"Content-Length": str(len(reply.body)), **reply.headers}
                lines_out += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(lines_out) + "\r\n\r\n").encode() + reply.body)
                await writer.drain()
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.close()
