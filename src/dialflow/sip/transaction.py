"""SIP transactions: the layer that matches, routes and times them (RFC 3261 §17, §18).

This module is the public face of the transaction layer: it re-exports the four state
machines (:mod:`.tx_machines`), their events (:mod:`.tx_events`) and timer values
(:mod:`.timers`), so callers import everything from here.

:class:`TransactionLayer` owns every live transaction of an endpoint. Like aioquic's
``QuicConnection`` it does no I/O: the transport calls :meth:`~TransactionLayer.receive`
for each parsed message and :meth:`~TransactionLayer.handle_timer` when the single timer
it armed at :meth:`~TransactionLayer.get_timer` fires, then drains
:meth:`~TransactionLayer.datagrams_to_send` and :meth:`~TransactionLayer.next_event`.

Matching (§17.1.3, §17.2.3): responses go to client transactions by top-Via branch and
CSeq method; requests to server transactions by branch, sent-by and method, an ACK
matching its INVITE's transaction and a CANCEL getting a transaction of its own. Requests
whose branch lacks the ``z9hG4bK`` cookie (RFC 2543 peers) are matched on Request-URI,
From tag, Call-ID, CSeq number and top Via instead (§17.2.3, simplified: the To tag is
left out, which is what lets the ACK of a non-2xx find its INVITE).

Deadlines sit in a heap with lazy deletion, so neither a packet nor ``get_timer`` costs
O(number of transactions).
"""

from __future__ import annotations

import heapq
import itertools

from .errors import LocalProtocolError
from .message import Headers, SipMessage, SipRequest, SipResponse, make_response
from .timers import Timer, TimerConfig
from .tx_events import (
    AckReceived,
    Address,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionEvent,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
)
from .tx_machines import (
    DEFAULT_TIMERS,
    ClientTransaction,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
    Transaction,
    TransactionOutput,
    TransactionState,
    build_cancel,
    build_non2xx_ack,
    top_via,
)
from .uri import BRANCH_MAGIC_COOKIE, Via, split_quoted

__all__ = [
    "AckReceived",
    "Address",
    "CancelReceived",
    "ClientTransaction",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "RequestReceived",
    "ResponseReceived",
    "ServerTransaction",
    "StrayResponse",
    "Timer",
    "TimerConfig",
    "Transaction",
    "TransactionEvent",
    "TransactionLayer",
    "TransactionOutput",
    "TransactionState",
    "TransactionTerminated",
    "TransactionTimeout",
    "TransportFailed",
    "build_cancel",
    "build_non2xx_ack",
    "response_address",
    "server_key",
    "stamp_via",
]

TransactionKey = tuple[str | int, ...]

# Rebuild the heap when stale entries outnumber live transactions this many times.
_HEAP_SLACK = 4


def _unbracket(host: str) -> str:
    return host[1:-1] if host.startswith("[") else host


def stamp_via(request: SipRequest, source: Address) -> Via:
    """Record where ``request`` came from in its top Via and return that Via.

    RFC 3261 §18.2.1: add ``received=<source IP>`` when the sent-by host differs from
    it. RFC 3581 §4: if the Via has a bare ``rport``, fill in the source port and add
    ``received`` even when the host is the same. The header is rewritten only when
    something changes; other Via values (in the same line or not) are kept as they are.
    """
    top = top_via(request)
    source_host, source_port = source
    wants_rport = top.wants_rport
    if not wants_rport and _unbracket(top.host).lower() == source_host.lower():
        return top
    params: dict[str, str | None] = {}
    for name, value in top.params.items():
        lname = name.lower()
        if lname == "received":
            continue
        if lname == "rport":
            # RFC 3581 §4 example order: ...;received=192.0.2.1;rport=9988;branch=...
            params["received"] = source_host
            params[name] = str(source_port)
        else:
            params[name] = value
    if "received" not in params:
        params["received"] = source_host
    stamped = Via(top.transport, top.host, top.port, params, top.protocol)
    items = list(request.headers)
    for i, (name, value) in enumerate(items):
        if name == "Via":
            rest = split_quoted(value, ",")[1:] if "," in value else []
            items[i] = (name, ",".join([str(stamped), *rest]))
            break
    request.headers = Headers(items)
    return stamped


def response_address(via: Via, source: Address, reliable: bool) -> Address:
    """Where responses to a request with top Via ``via`` (already stamped) go.

    RFC 3261 §18.2.2: over a reliable transport, back on the connection the request came
    on (the source address; the transport maps it to the connection). Over UDP, to the
    ``received`` address (or the sent-by host) and, RFC 3581 §4, to the ``rport`` port if
    the request asked for it, else the sent-by port. ``maddr`` (multicast) is not supported.
    """
    if reliable:
        return source
    sent_host, sent_port = via.sent_by
    received = via.received
    host = _unbracket(received) if received else sent_host
    rport = via.rport
    return host, rport if rport is not None else sent_port


def server_key(request: SipRequest, via: Via, method: str) -> TransactionKey:
    """The §17.2.3 matching key of ``request`` for a server transaction of ``method``."""
    branch = via.branch or ""
    host, port = via.sent_by
    if branch.startswith(BRANCH_MAGIC_COOKIE):
        # Branch values are case-insensitive (RFC 3261 §7.3.1); sent-by hosts too.
        return (branch.lower(), host.lower(), port, method)
    # RFC 2543 peers: no unique branch, so match on the request's identity instead.
    return (
        "",
        branch,
        host.lower(),
        port,
        request.call_id,
        request.from_.tag or "",
        request.cseq.seq,
        str(request.uri),
        method,
    )


class TransactionLayer:
    """Every transaction of one endpoint, behind one sans-I/O interface.

    ``auto_trying``: INVITE server transactions send 100 Trying by themselves if the TU
    has not answered within ``timers.trying_delay`` (RFC 3261 §17.2.1).
    """

    def __init__(self, timers: TimerConfig = DEFAULT_TIMERS, *, auto_trying: bool = True) -> None:
        self.timers = timers
        self.auto_trying = auto_trying
        self._out = TransactionOutput()
        self._client: dict[TransactionKey, ClientTransaction] = {}
        self._server: dict[TransactionKey, ServerTransaction] = {}
        # RFC 3261 §9.1: a CANCEL waits until its INVITE got a provisional response.
        self._pending_cancels: dict[InviteClientTransaction, NonInviteClientTransaction] = {}
        self._heap: list[tuple[float, int, Transaction]] = []
        self._seq = itertools.count()

    def __repr__(self) -> str:
        return f"<TransactionLayer client={len(self._client)} server={len(self._server)}>"

    def __len__(self) -> int:
        """How many transactions are alive (terminated ones are removed at once)."""
        return len(self._client) + len(self._server)

    @property
    def client_transactions(self) -> list[ClientTransaction]:
        return list(self._client.values())

    @property
    def server_transactions(self) -> list[ServerTransaction]:
        return list(self._server.values())

    @property
    def pending_cancels(self) -> int:
        """CANCELs held back until their INVITE gets a provisional response."""
        return len(self._pending_cancels)

    # -- TU → network

    def send_request(
        self, request: SipRequest, address: Address, *, reliable: bool = False, now: float
    ) -> ClientTransaction:
        """Create the client transaction for ``request`` and queue its first transmission.

        The request must carry a top Via with a fresh ``z9hG4bK`` branch (CANCEL: its
        INVITE's branch). A CANCEL whose INVITE has had no provisional response yet is held
        back until one arrives (RFC 3261 §9.1) and dropped (terminated unsent) if a final
        response or a timeout comes first. ACK has no transaction: use :meth:`send_stateless`.
        """
        method = request.method
        if method == "ACK":
            raise LocalProtocolError("ACK has no client transaction; use send_stateless()")
        branch = top_via(request).branch
        if not branch or not branch.startswith(BRANCH_MAGIC_COOKIE):
            raise LocalProtocolError(f"{request!r} needs a {BRANCH_MAGIC_COOKIE} branch")
        key: TransactionKey = (branch.lower(), method)
        if key in self._client:
            raise LocalProtocolError(f"a {method} transaction with branch {branch} exists")
        tx: ClientTransaction
        if method == "INVITE":
            tx = InviteClientTransaction(
                request, address, reliable=reliable, timers=self.timers, output=self._out
            )
        else:
            tx = NonInviteClientTransaction(
                request, address, reliable=reliable, timers=self.timers, output=self._out
            )
        tx.key = key
        self._client[key] = tx
        if isinstance(tx, NonInviteClientTransaction) and method == "CANCEL":
            invite = self._client.get((key[0], "INVITE"))
            if isinstance(invite, InviteClientTransaction):
                if invite.state is TransactionState.CALLING:
                    invite.cancelled = True
                    self._pending_cancels[invite] = tx
                    return tx
                invite.cancel_sent(now)
                self._touch(invite)
        tx.start(now)
        self._touch(tx)
        return tx

    def cancel(self, invite_tx: InviteClientTransaction, now: float) -> NonInviteClientTransaction:
        """Build and send the CANCEL of ``invite_tx`` (RFC 3261 §9.1) to the same place."""
        tx = self.send_request(
            build_cancel(invite_tx.request),
            invite_tx.address,
            reliable=invite_tx.reliable,
            now=now,
        )
        assert isinstance(tx, NonInviteClientTransaction)
        return tx

    def send_response(
        self, tx_or_request: ServerTransaction | SipRequest, response: SipResponse, now: float
    ) -> None:
        """Send ``response`` through its server transaction (given, or found by request).

        A 2xx for an INVITE whose transaction already ended (Timer L) goes out statelessly
        to the same address: it is a retransmission by the TU (RFC 6026 §7.1). Anything
        else the transaction cannot take raises :class:`LocalProtocolError`.
        """
        if isinstance(tx_or_request, SipRequest):
            request = tx_or_request
            found = self._server.get(server_key(request, top_via(request), request.method))
            if found is None:
                raise LocalProtocolError(f"no server transaction for {request!r}")
            tx = found
        else:
            tx = tx_or_request
        if tx.terminated and isinstance(tx, InviteServerTransaction) and response.is_success:
            self._out.sends.append((response, tx.address))
            return
        if tx.terminated:
            raise LocalProtocolError(f"{tx!r} has terminated")
        tx.send_response(response, now)
        self._touch(tx)

    def send_stateless(self, message: SipMessage, address: Address) -> None:
        """Queue a message outside any transaction (the ACK of a 2xx, RFC 3261 §13.2.2.4)."""
        self._out.sends.append((message, address))

    def transport_error(self, tx: Transaction, now: float) -> None:
        """Tell ``tx`` the transport failed (§17.1.4, §17.2.4): TransportFailed, Terminated."""
        tx.transport_error(now)
        self._after(tx, now)

    # -- network → TU

    def receive(self, message: SipMessage, source: Address, *, reliable: bool, now: float) -> None:
        """Handle a parsed message from ``source``; results come out of the two drains."""
        if isinstance(message, SipResponse):
            self._receive_response(message, source, now)
        else:
            self._receive_request(message, source, reliable, now)

    def _receive_response(self, response: SipResponse, source: Address, now: float) -> None:
        branch = top_via(response).branch
        tx = self._client.get((branch.lower(), response.cseq.method)) if branch else None
        if tx is None or (isinstance(tx, NonInviteClientTransaction) and not tx.started):
            self._out.events.append(StrayResponse(response, source))
            return
        tx.receive_response(response, now)
        self._after(tx, now)

    def _receive_request(
        self, request: SipRequest, source: Address, reliable: bool, now: float
    ) -> None:
        via = stamp_via(request, source)
        method = request.method
        if method == "ACK":
            invite_tx = self._server.get(server_key(request, via, "INVITE"))
            if isinstance(invite_tx, InviteServerTransaction):
                invite_tx.receive_request(request, source, now)
                self._after(invite_tx, now)
            else:
                self._out.events.append(AckReceived(request, source))
            return
        key = server_key(request, via, method)
        existing = self._server.get(key)
        if existing is not None:
            existing.receive_request(request, source, now)
            self._after(existing, now)
            return
        address = response_address(via, source, reliable)
        tx: ServerTransaction
        if method == "INVITE":
            tx = InviteServerTransaction(
                request,
                address,
                source=source,
                reliable=reliable,
                timers=self.timers,
                output=self._out,
            )
            tx.start(now, auto_trying=self.auto_trying)
        else:
            tx = NonInviteServerTransaction(
                request,
                address,
                source=source,
                reliable=reliable,
                timers=self.timers,
                output=self._out,
            )
        tx.key = key
        self._server[key] = tx
        if method == "CANCEL":
            assert isinstance(tx, NonInviteServerTransaction)
            self._answer_cancel(request, tx, key, source, now)
        else:
            self._out.events.append(RequestReceived(request, tx, source))
        self._touch(tx)

    def _answer_cancel(
        self,
        cancel: SipRequest,
        tx: NonInviteServerTransaction,
        key: TransactionKey,
        source: Address,
        now: float,
    ) -> None:
        # RFC 3261 §9.2: a CANCEL matches its INVITE by the INVITE rules; the UAS answers
        # it itself, 200 if found (whatever state the INVITE is in) else 481.
        found = self._server.get((*key[:-1], "INVITE"))
        invite_tx = found if isinstance(found, InviteServerTransaction) else None
        self._out.events.append(CancelReceived(cancel, invite_tx, tx, source))
        if invite_tx is None:
            response = make_response(cancel, 481)
        else:
            # §9.2: the To tag of the CANCEL's response SHOULD be that of the INVITE's.
            last = invite_tx.last_response
            tag = last.to.tag if last is not None else None
            response = make_response(cancel, 200, to_tag=tag)
        tx.send_response(response, now)

    # -- timers and drains

    def get_timer(self) -> float | None:
        """The earliest deadline of all transactions, or None if nothing is pending."""
        heap = self._heap
        while heap:
            deadline, _, tx = heap[0]
            if tx._scheduled == deadline and not tx.terminated:
                return deadline
            heapq.heappop(heap)
        return None

    def handle_timer(self, now: float) -> None:
        """Fire every transaction timer due at ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, _, tx = heapq.heappop(heap)
            if tx._scheduled != deadline or tx.terminated:
                continue  # stale: the transaction re-armed or ended since
            tx._scheduled = None
            tx.handle_timer(now)
            self._after(tx, now)

    def datagrams_to_send(self) -> list[tuple[SipMessage, Address]]:
        """Everything queued for the network since the last call, in order."""
        sends = self._out.sends
        self._out.sends = []
        return sends

    def next_event(self) -> TransactionEvent | None:
        """The next event for the TU, or None."""
        events = self._out.events
        return events.popleft() if events else None

    # -- bookkeeping

    def _after(self, tx: Transaction, now: float) -> None:
        """After ``tx`` moved: release or drop a held CANCEL, then reschedule or remove."""
        if isinstance(tx, InviteClientTransaction) and self._pending_cancels:
            cancel = self._pending_cancels.get(tx)
            if cancel is not None and tx.state is not TransactionState.CALLING:
                del self._pending_cancels[tx]
                if cancel.terminated:
                    pass  # the held CANCEL itself was ended (transport_error)
                elif tx.state is TransactionState.PROCEEDING:
                    cancel.start(now)
                    tx.cancel_sent(now)
                else:
                    # A final or a timeout came first: nothing is left to cancel.
                    cancel.abandon()
                self._touch(cancel)
        self._touch(tx)

    def _touch(self, tx: Transaction) -> None:
        if tx.terminated:
            self._remove(tx)
            return
        deadline = tx.get_timer()
        if deadline != tx._scheduled:
            tx._scheduled = deadline
            if deadline is not None:
                heapq.heappush(self._heap, (deadline, next(self._seq), tx))
                if len(self._heap) > 64 and len(self._heap) > _HEAP_SLACK * len(self):
                    self._compact()

    def _remove(self, tx: Transaction) -> None:
        tx._scheduled = None
        key = tx.key
        if isinstance(tx, InviteClientTransaction | NonInviteClientTransaction):
            if key is not None and self._client.get(key) is tx:
                del self._client[key]
            if isinstance(tx, InviteClientTransaction):
                self._pending_cancels.pop(tx, None)
        elif key is not None and self._server.get(key) is tx:
            del self._server[key]

    def _compact(self) -> None:
        self._heap = [
            entry
            for entry in self._heap
            if entry[2]._scheduled == entry[0] and not entry[2].terminated
        ]
        heapq.heapify(self._heap)
