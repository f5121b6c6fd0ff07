"""An httpx transport that connects only to addresses the SSRF guard has just approved.

Checking the URL when it is given is not enough: DNS can answer a public address then,
and 127.0.0.1 a minute later (DNS rebinding). So the guard sits where the socket is
opened. :class:`GuardedNetworkBackend` is an httpcore network backend: for every new
connection it resolves the host once, refuses it when any answer is not allowed
(:func:`dialflow.webhooks.urls.resolve_checked`), and connects to one of exactly those
addresses.

The URL keeps its host name, so everything above the socket still uses the name: the
``Host`` header, TLS SNI and certificate verification (httpcore passes the origin host
as ``server_hostname``), and the connection pool key (a TLS connection verified for one
name is never reused for another name that shares its address). Pooled keep-alive
connections were checked when they were opened.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpcore
import httpx

from .urls import Resolver, resolve_checked

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check, then connect to the checked address (never re-resolve)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._resolver = resolver
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        # WebhookUrlNotAllowed propagates untouched: httpcore retries only ConnectError and
        # httpx re-raises exceptions it does not map, so the caller sees the refusal itself.
        try:
            addresses = await resolve_checked(
                host, port, allow_private=self._allow_private, resolver=self._resolver
            )
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc  # try the next checked address (a poor man's happy eyeballs)
        assert last is not None  # resolve_checked never returns an empty list
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not webhook destinations")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connections go through :class:`GuardedNetworkBackend`.

    No proxy and no environment (``HTTP_PROXY`` would move the connection, and so the
    check, to somewhere else). ``verify`` is as for httpx (an ``ssl.SSLContext`` in tests).
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        resolver: Resolver | None = None,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits if limits is not None else httpx.Limits()
        # Built once (loading the CA bundle costs tens of ms) and shared with the base class.
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx does not take a network backend, so the pool it built is replaced by an
        # identical one with ours. `_pool` is what AsyncHTTPTransport.handle_async_request
        # uses (httpx 0.28); tests/unit/webhooks/test_transport.py fails if that changes.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(allow_private=allow_private, resolver=resolver),
        )
