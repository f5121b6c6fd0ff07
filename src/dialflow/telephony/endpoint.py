"""The SIP endpoint: sockets in, sans-I/O core in the middle, calls on top.

After every input (a datagram, a TCP message, a timer) the endpoint feeds the
transaction layer, sends what it has to send, hands its events to calls, and arms
ONE timer at the layer's next deadline — the aioquic adapter pattern. It places
outbound calls, answers inbound ones through a handler, answers OPTIONS, and turns
malformed requests into 400s without ever letting a bad packet stop the server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..media.clock import MediaClock
from ..media.leg import MediaLeg
from ..sip import transaction as txm
from ..sip.auth import DigestCredentials
from ..sip.dialog import Dialog, next_hop
from ..sip.errors import SipError, SipParseError
from ..sip.message import (
    REASON_PHRASES,
    SipMessage,
    SipRequest,
    SipResponse,
    make_response,
    new_branch,
)
from ..sip.parser import parse_message, try_parse_for_response
from ..sip.uri import NameAddr, SipUri, Uri, Via, parse_uri
from ..transport.tcp import TcpSipTransport
from ..transport.udp import UdpSipTransport
from .call import ALLOW, Call, InboundCall, OutboundCall
from .events import EndReason
from .ratelimit import LogRateLimiter, TokenBucket

log = logging.getLogger(__name__)

Address = tuple[str, int]
IncomingHandler = Callable[[InboundCall], Awaitable[None]]
TxHandler = Callable[[object], None]

__all__ = ["EndpointConfig", "SipEndpoint", "bad_request_reply"]


@dataclass(slots=True)
class EndpointConfig:
    """Where the endpoint listens and how it presents itself."""

    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    tcp: bool = True
    # The address written in Contact/Via/SDP when sip_host is a wildcard (0.0.0.0).
    advertised_host: str | None = None
    rtp_port_range: tuple[int, int] = (10000, 20000)
    user_agent: str = "dialflow/0.1"
    timers: txm.TimerConfig = field(default_factory=txm.TimerConfig)
    # Bad packets: at most this many 400 answers per second (no reflection amplifier).
    bad_request_replies_per_second: float = 50.0


class SipEndpoint:
    """A SIP user agent on UDP and TCP, with one media clock for all its calls."""

    def __init__(
        self,
        config: EndpointConfig | None = None,
        *,
        clock: MediaClock | None = None,
        on_incoming: IncomingHandler | None = None,
    ) -> None:
        self.config = config or EndpointConfig()
        self.clock = clock or MediaClock()
        self.on_incoming = on_incoming
        self.timer_config = self.config.timers
        self.user_agent = self.config.user_agent
        self._layer = txm.TransactionLayer(timers=self.timer_config)
        self._udp: UdpSipTransport | None = None
        self._tcp: TcpSipTransport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tx_handlers: dict[int, tuple[Any, TxHandler]] = {}
        self._tx_transport: dict[int, str] = {}
        self._dialogs: dict[tuple[str, str], Call] = {}
        self._invite_calls: dict[int, InboundCall] = {}
        self._calls: set[Call] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._resolved: dict[str, str] = {}
        # Per transport, once listening (the host and port no longer change).
        self._via_prefix: dict[str, str] = {}
        self._contact_text: dict[str, str] = {}
        self._bad_log = LogRateLimiter(log, interval=10.0)
        self._bad_replies = TokenBucket(self.config.bad_request_replies_per_second)
        self.stats: dict[str, int] = {
            "received": 0,
            "malformed": 0,
            "bad_request_replies": 0,
            "calls_in": 0,
            "calls_out": 0,
        }

    # -- life cycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        cfg = self.config
        self._udp = await UdpSipTransport.bind(cfg.sip_host, cfg.sip_port, self._on_datagram)
        port = self._udp.local_address[1]
        if cfg.tcp:
            self._tcp = TcpSipTransport(self._on_stream_message, self._on_stream_error)
            await self._tcp.listen(cfg.sip_host, port)
        self.clock.start()
        log.info("SIP listening on %s:%d (udp%s)", cfg.sip_host, port, "+tcp" if cfg.tcp else "")

    async def close(self) -> None:
        for call in list(self._calls):
            try:
                await call.hangup()
            except Exception:  # shutting down: best effort
                log.debug("hangup at close failed", exc_info=True)
        self._flush()
        if self._timer is not None:
            self._timer.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            await self._tcp.close()
        await self.clock.stop()

    @property
    def port(self) -> int:
        assert self._udp is not None
        return self._udp.local_address[1]

    @property
    def is_serving(self) -> bool:
        return self._udp is not None and self._udp.is_open

    @property
    def contact_host(self) -> str:
        host = self.config.advertised_host or self.config.sip_host
        if host in ("0.0.0.0", "::", ""):
            return _primary_address()
        return f"[{host}]" if ":" in host else host

    @property
    def media_host(self) -> str:
        host = self.contact_host
        return host[1:-1] if host.startswith("[") else host

    def local_contact_text(self, transport: str = "udp") -> str:
        """``str(self.local_contact(transport))``, built once per transport."""
        text = self._contact_text.get(transport)
        if text is None:
            text = str(self.local_contact(transport))
            if self._fixed_host:
                self._contact_text[transport] = text
        return text

    @property
    def _fixed_host(self) -> bool:
        """Whether Via and Contact can be cached: listening, on a host that is not looked
        up again each time (a wildcard follows the primary address)."""
        host = self.config.advertised_host or self.config.sip_host
        return self.is_serving and host not in ("0.0.0.0", "::", "")

    def local_contact(self, transport: str = "udp") -> NameAddr:
        params: dict[str, str | None] = {}
        if transport != "udp":
            params["transport"] = transport
        return NameAddr(
            uri=SipUri(host=self.contact_host, user="dialflow", port=self.port, params=params)
        )

    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the endpoint owns (cancelled at close, errors logged)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    # -- media

    async def open_leg(self) -> MediaLeg:
        return await MediaLeg.open(
            self.clock, self.media_host, port_range=self.config.rtp_port_range
        )

    # -- placing calls

    async def place_call(
        self,
        to: str | Uri,
        *,
        from_user: str = "dialflow",
        from_display: str | None = None,
        proxy: str | SipUri | None = None,
        credentials: DigestCredentials | None = None,
        headers: Mapping[str, str] | None = None,
        ring_timeout: float | None = 30.0,
    ) -> OutboundCall:
        """Send an INVITE to ``to`` (a SIP URI), directly or through ``proxy``.

        Returns once the INVITE is on its way; await ``call.wait_answered()`` and
        ``call.wait_ended()`` or subscribe with ``call.on_event``.
        """
        target = parse_uri(to) if isinstance(to, str) else to
        proxy_uri: SipUri | None = None
        if proxy is not None:
            parsed = parse_uri(proxy) if isinstance(proxy, str) else proxy
            if not isinstance(parsed, SipUri):
                raise ValueError(f"proxy must be a SIP URI: {proxy}")
            proxy_uri = parsed
        route_uri = proxy_uri or target
        if not isinstance(route_uri, SipUri):
            raise ValueError(f"cannot route to {to}: use a SIP URI or a proxy")
        transport = route_uri.transport
        if transport not in ("udp", "tcp"):
            raise ValueError(f"unsupported transport {transport!r}")
        call = OutboundCall(
            self,
            target,
            from_user=from_user,
            from_display=from_display,
            proxy=proxy_uri,
            credentials=credentials,
            extra_headers=headers or {},
            ring_timeout=ring_timeout,
            transport=transport,
        )
        self._calls.add(call)
        self.stats["calls_out"] += 1
        try:
            await call.start()
        except BaseException:
            call._finish(EndReason.FAILED, None, error="could not send INVITE")
            raise
        return call

    async def resolve_next_hop(self, request: SipRequest, transport: str) -> Address:
        host, port, _ = next_hop(request)
        address = await self._resolve(host)
        if transport == "tcp":
            assert self._tcp is not None, "TCP is disabled"
            await self._tcp.connect((address, port))
        return address, port

    def _resolve_now(self, host: str) -> str | None:
        """The address without I/O: a literal, or a name resolved before; else None."""
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            return self._resolved.get(host)

    async def _resolve(self, host: str) -> str:
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            pass
        cached = self._resolved.get(host)
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        if not infos:
            raise OSError(f"cannot resolve {host}")
        address = str(infos[0][4][0])
        self._resolved[host] = address
        return address

    # -- sending

    def _add_via(self, request: SipRequest, transport: str) -> None:
        prefix = self._via_prefix.get(transport)
        if prefix is None:
            # str(Via) without the branch.
            via = Via(transport=transport.upper(), host=self.contact_host, port=self.port)
            prefix = f"{via};branch="
            if self._fixed_host:
                self._via_prefix[transport] = prefix
        request.headers.add("Via", f"{prefix}{new_branch()};rport", first=True)

    def send_request(
        self, request: SipRequest, destination: Address, transport: str, handler: TxHandler
    ) -> Any:
        """Send a request in a new client transaction; ``handler`` gets its events."""
        if request.headers.get("Via") is None:
            self._add_via(request, transport)
        tx = self._layer.send_request(
            request, destination, reliable=transport == "tcp", now=self.now()
        )
        self._tx_handlers[id(tx)] = (tx, handler)
        self._tx_transport[id(tx)] = transport
        self._flush()
        return tx

    def send_in_dialog(
        self,
        call: Call,
        request: SipRequest,
        handler: TxHandler,
        *,
        dialog: Dialog | None = None,
    ) -> None:
        """Send an in-dialog request (BYE, re-INVITE …) to the dialog's next hop."""
        transport = call.transport

        async def go() -> None:
            destination = await self._in_dialog_destination(call, request, transport)
            self.send_request(request, destination, transport, handler)

        self.spawn(go(), name=f"{request.method}-{call.call_id}")

    def _in_dialog_destination_now(
        self, call: Call, request: SipRequest, transport: str
    ) -> Address | None:
        """:meth:`_in_dialog_destination` when it needs no I/O (UDP to an address known
        now), else None. The ACK of every answered call then goes out at once instead of
        from a task of its own."""
        if transport != "udp":
            return None
        self._add_proxy_route(call, request)
        try:
            host, port, _ = next_hop(request)
        except SipError:
            return None  # the async path decides (it may fall back to the source)
        address = self._resolve_now(host)
        return None if address is None else (address, port)

    @staticmethod
    def _add_proxy_route(call: Call, request: SipRequest) -> None:
        if isinstance(call, OutboundCall) and call.proxy is not None:
            # Stay on the outbound proxy even when no Record-Route was returned.
            if request.headers.get("Route") is None:
                request.headers.add("Route", f"<{call.proxy.with_params(lr=None)}>", first=True)

    async def _in_dialog_destination(
        self, call: Call, request: SipRequest, transport: str
    ) -> Address:
        if isinstance(call, InboundCall) and transport == "tcp":
            # Reuse the connection the INVITE came in on (RFC 3261 §18.2.2 spirit).
            assert self._tcp is not None
            if self._tcp.has_connection(call.source):
                return call.source
        self._add_proxy_route(call, request)
        try:
            return await self.resolve_next_hop(request, transport)
        except (SipError, OSError):
            if isinstance(call, InboundCall):
                return call.source
            raise

    def send_ack(self, call: Call, ack: SipRequest, *, dialog: Dialog | None = None) -> None:
        """ACK for a 2xx: its own transaction-less send (RFC 3261 §17.1.1.3, §13.2.2.4)."""
        transport = call.transport
        cached = call._ack_sent
        if cached is not None and dialog is None:
            request, destination = cached
            self._send_raw(request, destination, transport)
            return
        now = self._in_dialog_destination_now(call, ack, transport)
        if now is not None:
            self._add_via(ack, transport)
            if dialog is None:
                call._ack_sent = (ack, now)
            self._send_raw(ack, now, transport)
            return

        async def go() -> None:
            destination = await self._in_dialog_destination(call, ack, transport)
            self._add_via(ack, transport)
            if dialog is None:
                call._ack_sent = (ack, destination)
            self._send_raw(ack, destination, transport)

        self.spawn(go(), name=f"ACK-{call.call_id}")

    def cancel_invite(self, invite_tx: Any) -> None:
        self._layer.cancel(invite_tx, self.now())
        self._flush()

    def respond(self, server_tx: Any, response: SipResponse) -> None:
        self._layer.send_response(server_tx, response, self.now())
        self._flush()

    def resend_response(self, server_tx: Any, response: SipResponse) -> None:
        """Retransmit a 2xx the transaction no longer owns (RFC 6026 Accepted state)."""
        destination: Address | None = server_tx.address
        if destination is not None:
            self._send_raw(response, destination, self._tx_transport.get(id(server_tx), "udp"))

    def is_reliable(self, tx: Any) -> bool:
        return bool(tx.reliable)

    def _send_raw(self, message: SipMessage, destination: Address, transport: str) -> None:
        data = message.serialize()
        if transport == "tcp" or (self._tcp is not None and self._tcp.has_connection(destination)):
            if self._tcp is not None and self._tcp.send(data, destination):
                return
            if transport == "tcp":
                log.info("no TCP connection to %s:%d", *destination)
                return
        if self._udp is not None:
            self._udp.send(data, destination)

    def _flush(self) -> None:
        """Send what the layer queued, dispatch its events, re-arm the one timer."""
        layer = self._layer
        for message, destination in layer.datagrams_to_send():
            self._send_raw(message, destination, "udp")
        while (event := layer.next_event()) is not None:
            try:
                self._dispatch(event)
            except Exception:
                # One call's bug must not stop SIP processing for the others.
                log.exception("error handling %s", type(event).__name__)
        for message, destination in layer.datagrams_to_send():
            self._send_raw(message, destination, "udp")
        self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self._layer.get_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._layer.handle_timer(self.now())
        self._flush()

    # -- receiving

    def _on_datagram(self, data: bytes, source: Address) -> None:
        self.stats["received"] += 1
        if data in (b"\r\n\r\n", b"\r\n", b"\x00\x00\x00\x00"):
            return  # keep-alives (RFC 5626 §4.4.1, and the NUL ping some phones send)
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self._on_malformed(data, source, exc, "udp")
            return
        self._receive(message, source, "udp")

    def _on_stream_message(self, message: SipMessage, source: Address) -> None:
        self.stats["received"] += 1
        self._receive(message, source, "tcp")

    def _on_stream_error(self, exc: SipParseError, source: Address, data: bytes | None) -> None:
        self.stats["malformed"] += 1
        self._bad_log.warning("malformed SIP over TCP from %s:%d: %s", source[0], source[1], exc)
        if data is not None and self._tcp is not None and self._bad_replies.take(time.monotonic()):
            reply = bad_request_reply(data, exc)
            if reply is not None:
                self.stats["bad_request_replies"] += 1
                self._tcp.send(reply, source)

    def _receive(self, message: SipMessage, source: Address, transport: str) -> None:
        try:
            self._layer.receive(message, source, reliable=transport == "tcp", now=self.now())
        except SipError as exc:
            self.stats["malformed"] += 1
            self._bad_log.warning("SIP message from %s:%d refused: %s", *source, exc)
        self._flush()

    def _on_malformed(
        self, data: bytes, source: Address, exc: SipParseError, transport: str
    ) -> None:
        self.stats["malformed"] += 1
        self._bad_log.warning("malformed SIP from %s:%d: %s", source[0], source[1], exc)
        if transport != "udp" or not self._bad_replies.take(time.monotonic()):
            return
        reply = bad_request_reply(data, exc)
        if reply is not None and self._udp is not None:
            self.stats["bad_request_replies"] += 1
            self._udp.send(reply, source)

    # -- event dispatch

    def _dispatch(self, event: txm.TransactionEvent) -> None:
        if isinstance(event, txm.ResponseReceived):
            self._deliver(event.client_tx, event)
        elif isinstance(event, txm.TransactionTimeout | txm.TransportFailed):
            self._deliver(event.tx, event)
        elif isinstance(event, txm.TransactionTerminated):
            self._tx_handlers.pop(id(event.tx), None)
            self._tx_transport.pop(id(event.tx), None)
            self._invite_calls.pop(id(event.tx), None)
        elif isinstance(event, txm.RequestReceived):
            self._on_request(event.request, event.server_tx, event.source)
        elif isinstance(event, txm.AckReceived):
            self._on_ack(event.request)
        elif isinstance(event, txm.CancelReceived):
            # The layer has answered the CANCEL itself (200 or 481); the INVITE's 487 is ours.
            if event.invite_tx is not None:
                call = self._invite_calls.get(id(event.invite_tx))
                if call is not None:
                    call.on_cancel()
        elif isinstance(event, txm.StrayResponse):
            self._on_stray_response(event.response)

    def _deliver(self, tx: object, event: txm.TransactionEvent) -> None:
        entry = self._tx_handlers.get(id(tx))
        if entry is not None:
            entry[1](event)

    def _transport_of(self, server_tx: Any) -> str:
        return "tcp" if self.is_reliable(server_tx) else "udp"

    def _on_request(self, request: SipRequest, server_tx: Any, source: Address) -> None:
        transport = self._transport_of(server_tx)
        self._tx_transport[id(server_tx)] = transport
        to_tag = request.to.tag
        if to_tag is not None:
            call = self._dialogs.get((request.call_id, to_tag))
            if call is None or call.dialog is None or not call.dialog.matches(request):
                # RFC 3261 §12.2.2: no such dialog.
                self.respond(server_tx, make_response(request, 481))
                return
            call.on_in_dialog_request(request, server_tx)
            return
        if request.uri is not None and not isinstance(request.uri, SipUri):
            self.respond(server_tx, make_response(request, 416))
            return
        method = request.method
        if method == "INVITE":
            self._on_invite(request, server_tx, source, transport)
        elif method == "OPTIONS":
            response = make_response(
                request,
                200,
                headers=[
                    ("Allow", ALLOW),
                    ("Accept", "application/sdp"),
                    ("Supported", "replaces"),
                    ("User-Agent", self.user_agent),
                ],
            )
            self.respond(server_tx, response)
        elif method in ("BYE", "INFO", "UPDATE", "PRACK", "NOTIFY"):
            self.respond(server_tx, make_response(request, 481))
        else:
            response = make_response(request, 405 if method in _KNOWN_METHODS else 501)
            response.headers.add("Allow", ALLOW)
            self.respond(server_tx, response)

    def _on_invite(
        self, request: SipRequest, server_tx: Any, source: Address, transport: str
    ) -> None:
        if self.on_incoming is None:
            self.respond(server_tx, make_response(request, 480, "No Incoming Calls Here"))
            return
        problem = _dialog_problem(request)
        if problem is not None:
            # RFC 3261 §8.1.1.8/§12.1.1: an INVITE must let us form a dialog.
            self.respond(server_tx, make_response(request, 400, problem))
            self._bad_log.warning("INVITE from %s:%d refused: %s", source[0], source[1], problem)
            return
        try:
            call = InboundCall(self, request, server_tx, source, transport)
        except SipError as exc:
            status = 488 if "sdp" in type(exc).__module__ else 400
            self.respond(server_tx, make_response(request, status, None))
            self._bad_log.warning("INVITE from %s:%d refused: %s", source[0], source[1], exc)
            return
        except ValueError as exc:
            self.respond(server_tx, make_response(request, 488))
            self._bad_log.warning("INVITE from %s:%d refused: %s", source[0], source[1], exc)
            return
        # We are an endpoint that may take a moment to decide: say so at once (§8.2.6.1).
        self.respond(server_tx, make_response(request, 100))
        self._calls.add(call)
        self._invite_calls[id(server_tx)] = call
        self.stats["calls_in"] += 1
        handler = self.on_incoming
        self.spawn(self._run_incoming(handler, call), name=f"incoming-{call.call_id}")

    async def _run_incoming(self, handler: IncomingHandler, call: InboundCall) -> None:
        try:
            await handler(call)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("incoming-call handler failed on %s", call.call_id)
            if call.is_answered:
                await call.hangup()
            else:
                await call.reject(500, "Server Internal Error")

    def _on_ack(self, ack: SipRequest) -> None:
        tag = ack.to.tag
        call = self._dialogs.get((ack.call_id, tag)) if tag else None
        if call is not None:
            call.on_ack(ack)

    def _on_stray_response(self, response: SipResponse) -> None:
        # A 2xx retransmission for an INVITE whose transaction is gone: the dialog's ACK.
        if response.is_success and response.cseq.method == "INVITE":
            for call in self._calls:
                if call.call_id == response.call_id and isinstance(call, OutboundCall):
                    call._on_response(response)
                    return

    # -- call bookkeeping

    def _register_dialog(self, call: Call) -> None:
        assert call.dialog is not None
        self._dialogs[(call.call_id, call.dialog.local_tag)] = call

    def _call_finished(self, call: Call) -> None:
        self._calls.discard(call)
        # Keep the dialog routable a little longer: a BYE retransmission or a late
        # ACK must still find it (answered 200 / absorbed rather than 481).
        if call.local_tag and self._loop is not None:
            key = (call.call_id, call.local_tag)
            self._loop.call_later(32.0, self._dialogs.pop, key, None)

    @property
    def active_calls(self) -> int:
        return len(self._calls)


_KNOWN_METHODS = frozenset(
    {"REGISTER", "SUBSCRIBE", "PUBLISH", "MESSAGE", "REFER", "PRACK", "UPDATE", "NOTIFY"}
)


def _dialog_problem(request: SipRequest) -> str | None:
    """Why an INVITE cannot create a dialog (None when it can)."""
    try:
        contacts = request.contacts
        from_tag = request.from_.tag
    except SipError:
        return "Bad Contact or From"
    if not contacts or contacts[0].wildcard or not isinstance(contacts[0].uri, SipUri):
        return "Missing Contact"
    if not from_tag:
        return "Missing From Tag"
    return None


def _primary_address() -> str:
    """The address the OS would use to reach the outside (no packet is sent)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect(("192.0.2.1", 9))  # TEST-NET-1: routing lookup only
        return str(sock.getsockname()[0])
    except OSError:
        return "127.0.0.1"
    finally:
        sock.close()


def bad_request_reply(data: bytes, exc: SipParseError) -> bytes | None:
    """The response to a malformed request, when one can be formed (RFC 3261 §8.2, §21.4.1).

    A response needs the request's Via, From, To, Call-ID and CSeq; the parser salvages
    them. Responses and ACKs are never answered, nor requests without a usable Via.
    """
    request = try_parse_for_response(data)
    if request is None:
        return None
    if any(request.headers.get(name) is None for name in ("From", "To", "Call-ID", "CSeq")):
        return None  # a response without them would be malformed itself
    reason = " ".join(str(exc).split())[:80]
    if not reason.isascii() or not reason.isprintable():
        reason = REASON_PHRASES.get(exc.status, "Bad Request")
    try:
        return make_response(request, exc.status, reason).serialize()
    except SipError:
        return None
