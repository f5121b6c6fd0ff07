"""Tests of the transaction layer: matching, response routing, and a UAC and a UAS layer
talking in memory over a lossy virtual network (as aioquic's connection tests do).

No sockets and no sleeping: a small simulator keeps a heap of deliveries and TU actions
and jumps the virtual clock to the next of those or of the layers' ``get_timer()``.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from dialflow.sip.errors import LocalProtocolError
from dialflow.sip.message import SipMessage, SipRequest, SipResponse, make_response, new_branch
from dialflow.sip.parser import parse_message
from dialflow.sip.transaction import (
    AckReceived,
    Address,
    CancelReceived,
    ClientTransaction,
    InviteClientTransaction,
    RequestReceived,
    ResponseReceived,
    ServerTransaction,
    StrayResponse,
    Timer,
    TimerConfig,
    TransactionEvent,
    TransactionLayer,
    TransactionState,
    TransactionTerminated,
    TransactionTimeout,
    build_cancel,
    build_non2xx_ack,
    response_address,
    stamp_via,
)

S = TransactionState
UAC_ADDR = ("127.0.0.1", 40000)  # where the UAC's packets really come from (behind a NAT)
UAS_ADDR = ("127.0.0.2", 5060)


def make_request(
    method: str = "INVITE",
    branch: str | None = None,
    *,
    via_host: str = "10.0.0.5:5060",
    rport: bool = True,
    call_id: str = "call-1@10.0.0.5",
    cseq: int = 1,
    transport: str = "UDP",
) -> SipRequest:
    branch = branch if branch is not None else new_branch()
    raw = (
        f"{method} sip:bob@127.0.0.2 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {via_host}{';rport' if rport else ''};branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=a1\r\n"
        "To: <sip:bob@example.com>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "\r\n"
    )
    message = parse_message(raw.encode())
    assert isinstance(message, SipRequest)
    return message


def drain(layer: TransactionLayer) -> list[TransactionEvent]:
    out: list[TransactionEvent] = []
    while (event := layer.next_event()) is not None:
        out.append(event)
    return out


def run_timers(layer: TransactionLayer, until: float) -> None:
    while (deadline := layer.get_timer()) is not None and deadline <= until:
        layer.handle_timer(deadline)


def assert_empty(layer: TransactionLayer) -> None:
    """No leaks: every transaction removed, no pending deadline, no heap garbage left."""
    assert len(layer) == 0, layer.client_transactions + layer.server_transactions
    assert layer.pending_cancels == 0
    assert layer.get_timer() is None
    assert layer._heap == []


# -- Via stamping and response routing (RFC 3261 §18.2, RFC 3581)


def test_rport_and_received_are_stamped_and_used() -> None:
    layer = TransactionLayer()
    invite = make_request(branch="z9hG4bK1", via_host="10.0.0.5:5060")
    layer.receive(invite, ("127.0.0.1", 40000), reliable=False, now=0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    assert event.request.headers.get("Via") == (
        "SIP/2.0/UDP 10.0.0.5:5060;received=127.0.0.1;rport=40000;branch=z9hG4bK1"
    )
    assert event.server_tx.address == ("127.0.0.1", 40000)
    ringing = make_response(event.request, 180, to_tag="b1")
    layer.send_response(event.server_tx, ringing, now=0.1)
    [(sent, address)] = layer.datagrams_to_send()
    assert address == ("127.0.0.1", 40000)
    assert sent.headers.get("Via") == event.request.headers.get("Via")


def test_received_without_rport_goes_to_the_sent_by_port() -> None:
    invite = make_request(via_host="pbx.example.com:5070", rport=False)
    via = stamp_via(invite, ("192.0.2.7", 5999))
    assert str(via).endswith(";received=192.0.2.7")
    assert response_address(via, ("192.0.2.7", 5999), reliable=False) == ("192.0.2.7", 5070)
    assert response_address(via, ("192.0.2.7", 5999), reliable=True) == ("192.0.2.7", 5999)


def test_no_stamp_when_source_matches_sent_by() -> None:
    invite = make_request(via_host="10.0.0.5", rport=False)
    before = invite.serialize()
    via = stamp_via(invite, ("10.0.0.5", 5060))
    assert invite.serialize() == before
    assert response_address(via, ("10.0.0.5", 33333), reliable=False) == ("10.0.0.5", 5060)


def test_rport_adds_received_even_if_the_host_matches() -> None:
    invite = make_request(via_host="10.0.0.5:5060", branch="z9hG4bKx")
    stamp_via(invite, ("10.0.0.5", 6000))
    assert invite.headers.get("Via") == (
        "SIP/2.0/UDP 10.0.0.5:5060;received=10.0.0.5;rport=6000;branch=z9hG4bKx"
    )


def test_stamp_only_touches_the_first_value_of_a_combined_via_line() -> None:
    raw = (
        b"OPTIONS sip:bob@127.0.0.2 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKa;received=1.1.1.1,"
        b" SIP/2.0/UDP 10.0.0.6;branch=z9hG4bKb\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
    request = parse_message(raw)
    assert isinstance(request, SipRequest)
    stamp_via(request, ("::1", 5060))
    assert request.headers.get_all("Via") == [
        "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bKa;received=::1",
        "SIP/2.0/UDP 10.0.0.6;branch=z9hG4bKb",
    ]
    assert request.serialize().count(b"Via:") == 1


def test_ipv6_sent_by_matching_the_source_is_not_stamped() -> None:
    invite = make_request(via_host="[2001:db8::1]:5060", rport=False)
    via = stamp_via(invite, ("2001:db8::1", 5060))
    assert via.received is None
    assert response_address(via, ("2001:db8::1", 1), reliable=False) == ("2001:db8::1", 5060)


# -- matching (RFC 3261 §17.1.3, §17.2.3)


def test_responses_match_by_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    invite = make_request()
    ict = layer.send_request(invite, UAS_ADDR, now=0.0)
    options = make_request("OPTIONS", branch=invite.top_via.branch)  # same branch, other method
    nict = layer.send_request(options, UAS_ADDR, now=0.0)
    assert len(layer.datagrams_to_send()) == 2
    layer.receive(make_response(options, 200), UAS_ADDR, reliable=False, now=0.1)
    layer.receive(make_response(invite, 180), UAS_ADDR, reliable=False, now=0.1)
    # Branch comparison is case-insensitive (RFC 3261 §7.3.1).
    upper = make_response(invite, 183)
    branch = invite.top_via.branch or ""
    upper.headers.set("Via", str(invite.top_via).replace(branch, branch.upper()))
    assert upper.top_via.branch != branch
    layer.receive(upper, UAS_ADDR, reliable=False, now=0.2)
    stray = make_response(make_request(), 200)
    layer.receive(stray, UAS_ADDR, reliable=False, now=0.3)
    got = [(type(e).__name__, getattr(e, "client_tx", None)) for e in drain(layer)]
    assert got == [
        ("ResponseReceived", nict),
        ("ResponseReceived", ict),
        ("ResponseReceived", ict),
        ("StrayResponse", None),
    ]
    assert ict.state is S.PROCEEDING and nict.state is S.COMPLETED


def test_request_retransmissions_are_absorbed_and_sent_by_distinguishes() -> None:
    layer = TransactionLayer(auto_trying=False)
    invite = make_request(branch="z9hG4bKsame")
    layer.receive(invite, UAC_ADDR, reliable=False, now=0.0)
    layer.receive(make_request(branch="z9hG4bKsame"), UAC_ADDR, reliable=False, now=0.5)
    # The same branch from another sent-by is another transaction (§17.2.3).
    layer.receive(
        make_request(branch="z9hG4bKsame", via_host="10.9.9.9"), UAC_ADDR, reliable=False, now=0.6
    )
    events = drain(layer)
    assert [type(e) for e in events] == [RequestReceived, RequestReceived]
    assert len(layer) == 2


def test_ack_for_2xx_has_no_transaction_and_goes_to_the_tu() -> None:
    layer = TransactionLayer()
    invite = make_request()
    layer.receive(invite, UAC_ADDR, reliable=False, now=0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    ok = make_response(event.request, 200, to_tag="b1")
    layer.send_response(event.request, ok, now=0.1)  # found by request
    ack = make_request("ACK")  # §13.2.2.4: a new branch
    layer.receive(ack, UAC_ADDR, reliable=False, now=0.2)
    [ack_event] = drain(layer)
    assert isinstance(ack_event, AckReceived) and ack_event.request is ack
    assert ack_event.source == UAC_ADDR


def test_ack_with_the_invite_branch_reaching_accepted_goes_to_the_tu() -> None:
    layer = TransactionLayer()
    invite = make_request(branch="z9hG4bKreuse")
    layer.receive(invite, UAC_ADDR, reliable=False, now=0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    ok = make_response(invite, 200, to_tag="b1")
    layer.send_response(event.server_tx, ok, now=0.1)
    layer.receive(build_non2xx_ack(invite, ok), UAC_ADDR, reliable=False, now=0.2)
    [ack_event] = drain(layer)
    assert isinstance(ack_event, AckReceived)
    assert event.server_tx.state is S.ACCEPTED


def test_rfc2543_requests_match_without_a_cookie_branch() -> None:
    layer = TransactionLayer(auto_trying=False)
    for branch in ("", "old1"):
        invite = make_request(branch=branch or "x", call_id=f"c-{branch}")
        if not branch:
            invite.headers.set("Via", "SIP/2.0/UDP 10.0.0.5:5060")
        layer.receive(invite, UAC_ADDR, reliable=False, now=0.0)
        [event] = drain(layer)
        assert isinstance(event, RequestReceived)
        retransmission = parse_message(invite.serialize())
        layer.receive(retransmission, UAC_ADDR, reliable=False, now=0.5)
        assert drain(layer) == []
        busy = make_response(invite, 486, to_tag="b9")
        layer.send_response(event.server_tx, busy, now=0.6)
        ack = build_non2xx_ack(invite, busy)
        layer.receive(ack, UAC_ADDR, reliable=False, now=0.7)
        assert event.server_tx.state is S.CONFIRMED, branch
        assert drain(layer) == []


def test_cancel_gets_200_with_the_invite_to_tag_or_481() -> None:
    layer = TransactionLayer(auto_trying=False)
    invite = make_request()
    layer.receive(invite, UAC_ADDR, reliable=False, now=0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    layer.send_response(event.server_tx, make_response(invite, 180, to_tag="b7"), now=0.1)
    layer.datagrams_to_send()
    cancel = build_cancel(make_request(branch=invite.top_via.branch))
    layer.receive(cancel, UAC_ADDR, reliable=False, now=0.2)
    [cancel_event] = drain(layer)
    assert isinstance(cancel_event, CancelReceived)
    assert cancel_event.invite_tx is event.server_tx
    [(ok, address)] = layer.datagrams_to_send()
    assert isinstance(ok, SipResponse) and ok.status == 200 and ok.cseq.method == "CANCEL"
    assert ok.to.tag == "b7" and address == UAC_ADDR
    # A CANCEL retransmission gets the same 200 and no new event.
    layer.receive(parse_message(cancel.serialize()), UAC_ADDR, reliable=False, now=0.3)
    assert drain(layer) == [] and [m for m, _ in layer.datagrams_to_send()] == [ok]
    # A CANCEL for nothing: 481.
    layer.receive(build_cancel(make_request()), UAC_ADDR, reliable=False, now=0.4)
    [lonely] = drain(layer)
    assert isinstance(lonely, CancelReceived) and lonely.invite_tx is None
    [(no, _)] = layer.datagrams_to_send()
    assert isinstance(no, SipResponse) and no.status == 481


def test_send_request_refuses_ack_missing_branch_and_duplicates() -> None:
    layer = TransactionLayer()
    with pytest.raises(LocalProtocolError):
        layer.send_request(make_request("ACK"), UAS_ADDR, now=0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(make_request(branch="old-style"), UAS_ADDR, now=0.0)
    invite = make_request()
    layer.send_request(invite, UAS_ADDR, now=0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(invite, UAS_ADDR, now=0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_response(make_request(), make_response(invite, 200), now=0.0)


def test_2xx_after_timer_l_goes_out_statelessly() -> None:
    layer = TransactionLayer()
    invite = make_request()
    layer.receive(invite, UAC_ADDR, reliable=False, now=0.0)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    ok = make_response(invite, 200, to_tag="b1")
    layer.send_response(event.server_tx, ok, now=0.0)
    run_timers(layer, 40.0)
    assert event.server_tx.terminated
    layer.datagrams_to_send()
    layer.send_response(event.server_tx, ok, now=40.0)
    assert layer.datagrams_to_send() == [(ok, UAC_ADDR)]
    with pytest.raises(LocalProtocolError):
        layer.send_response(event.server_tx, make_response(invite, 486), now=40.0)


# -- CANCEL on the client side (RFC 3261 §9.1)


def test_cancel_is_held_until_a_provisional_arrives() -> None:
    layer = TransactionLayer()
    invite = make_request()
    ict = layer.send_request(invite, UAS_ADDR, now=0.0)
    assert isinstance(ict, InviteClientTransaction)
    layer.datagrams_to_send()
    cancel_tx = layer.cancel(ict, now=0.1)
    assert layer.datagrams_to_send() == []
    assert layer.pending_cancels == 1
    # A response to the held CANCEL cannot be for us: stray.
    layer.receive(make_response(cancel_tx.request, 200), UAS_ADDR, reliable=False, now=0.2)
    assert isinstance(drain(layer)[0], StrayResponse)
    layer.receive(make_response(invite, 180, to_tag="b1"), UAS_ADDR, reliable=False, now=0.3)
    sent = layer.datagrams_to_send()
    assert [m for m, _ in sent] == [cancel_tx.request] and sent[0][1] == UAS_ADDR
    assert layer.pending_cancels == 0
    assert ict.timer_deadline(Timer.CANCEL) == pytest.approx(32.3)
    # No final response ever: the INVITE is given up 64*T1 after the CANCEL.
    drain(layer)
    run_timers(layer, 100.0)
    timeouts = [e for e in drain(layer) if isinstance(e, TransactionTimeout)]
    assert {(e.tx.method, e.timer) for e in timeouts} == {
        ("INVITE", Timer.CANCEL),
        ("CANCEL", Timer.F),
    }
    assert_empty(layer)


def test_held_cancel_is_dropped_when_a_final_comes_first() -> None:
    layer = TransactionLayer()
    invite = make_request()
    ict = layer.send_request(invite, UAS_ADDR, now=0.0)
    assert isinstance(ict, InviteClientTransaction)
    cancel_tx = layer.cancel(ict, now=0.1)
    layer.datagrams_to_send()
    layer.receive(make_response(invite, 486, to_tag="b1"), UAS_ADDR, reliable=False, now=0.2)
    assert [m.method for m, _ in layer.datagrams_to_send()] == ["ACK"]  # type: ignore[union-attr]
    assert cancel_tx.terminated
    assert any(isinstance(e, TransactionTerminated) and e.tx is cancel_tx for e in drain(layer))
    run_timers(layer, 100.0)
    assert_empty(layer)


def test_held_cancel_ended_by_a_transport_error_is_never_sent() -> None:
    layer = TransactionLayer()
    invite = make_request()
    ict = layer.send_request(invite, UAS_ADDR, now=0.0)
    assert isinstance(ict, InviteClientTransaction)
    cancel_tx = layer.cancel(ict, now=0.1)
    layer.transport_error(cancel_tx, now=0.2)
    layer.datagrams_to_send()
    layer.receive(make_response(invite, 180, to_tag="b1"), UAS_ADDR, reliable=False, now=0.3)
    assert layer.datagrams_to_send() == []
    assert layer.pending_cancels == 0
    assert ict.timer_deadline(Timer.CANCEL) is None


def test_held_cancel_is_dropped_on_timer_b() -> None:
    layer = TransactionLayer()
    ict = layer.send_request(make_request(), UAS_ADDR, now=0.0)
    assert isinstance(ict, InviteClientTransaction)
    layer.cancel(ict, now=1.0)
    run_timers(layer, 100.0)
    assert [m.method for m, _ in layer.datagrams_to_send()] == ["INVITE"] * 7  # type: ignore[union-attr]
    assert_empty(layer)


# -- the timer heap


def test_get_timer_is_the_earliest_deadline_and_the_heap_stays_small() -> None:
    layer = TransactionLayer()
    txs = [
        layer.send_request(make_request("OPTIONS", call_id=f"c{i}"), UAS_ADDR, now=i * 0.001)
        for i in range(1000)
    ]
    assert layer.get_timer() == 0.5
    # Answer them all: each re-arms (Timer K) and leaves a stale heap entry behind.
    for i, tx in enumerate(txs):
        layer.receive(make_response(tx.request, 200), UAS_ADDR, reliable=False, now=1.0 + i * 1e-4)
    assert layer.get_timer() == pytest.approx(6.0)
    assert len(layer._heap) <= 4 * len(layer) + 64
    run_timers(layer, 100.0)
    assert_empty(layer)


def test_stale_heap_entries_of_ended_transactions_are_compacted() -> None:
    layer = TransactionLayer()
    for i in range(1000):
        tx = layer.send_request(
            make_request("OPTIONS", call_id=f"c{i}"), UAS_ADDR, reliable=True, now=0.0
        )
        # Over TCP Timer K is zero: the transaction ends now, its Timer F entry goes stale.
        layer.receive(make_response(tx.request, 200), UAS_ADDR, reliable=True, now=0.1)
    assert len(layer) == 0
    layer.send_request(make_request("OPTIONS"), UAS_ADDR, now=0.2)
    assert len(layer._heap) <= 64 + 4 * len(layer)
    assert layer.get_timer() == pytest.approx(0.7)


# -- a UAC and a UAS layer over an in-memory network


@dataclass
class Sim:
    """Two layers, their TUs, and a virtual network with loss, delay and duplication.

    ``drop``/``delay`` get (sender, label, nth): label is the method of a request or
    "<status> <method>" of a response, nth counts that label from that sender from 1.
    """

    reliable: bool = False
    latency: float = 0.01
    drop: Callable[[str, str, int], bool] = lambda s, label, n: False
    delay: Callable[[str, str, int], float] = lambda s, label, n: 0.0
    duplicate: bool = False
    # UAS TU script: (seconds after the INVITE arrived, status) pairs.
    answers: list[tuple[float, int]] = field(default_factory=lambda: [(0.5, 180), (1.0, 200)])
    now: float = 0.0
    uac: TransactionLayer = field(default_factory=TransactionLayer)
    uas: TransactionLayer = field(default_factory=TransactionLayer)
    wire: list[tuple[float, str, str]] = field(default_factory=list)  # (time, sender, label)
    uac_events: list[tuple[float, TransactionEvent]] = field(default_factory=list)
    uas_events: list[tuple[float, TransactionEvent]] = field(default_factory=list)
    _queue: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _acked: bool = False

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._seq), action))

    def invite(self, at: float = 0.0) -> InviteClientTransaction:
        request = make_request(transport="TCP" if self.reliable else "UDP")
        tx = self.uac.send_request(request, UAS_ADDR, reliable=self.reliable, now=at)
        assert isinstance(tx, InviteClientTransaction)
        return tx

    def cancel(self, tx: InviteClientTransaction) -> None:
        self.uac.cancel(tx, self.now)

    def wire_labels(self, sender: str) -> list[str]:
        return [label for _, s, label in self.wire if s == sender]

    def tu_statuses(self) -> list[int]:
        return [e.response.status for _, e in self.uac_events if isinstance(e, ResponseReceived)]

    # -- network

    def _transmit(self, sender: str, source: Address, message: SipMessage, dest: Address) -> None:
        label = (
            message.method
            if isinstance(message, SipRequest)
            else f"{message.status} {message.cseq.method}"
        )
        self._counts[sender, label] += 1
        nth = self._counts[sender, label]
        self.wire.append((self.now, sender, label))
        if self.drop(sender, label, nth):
            return
        target = {UAS_ADDR: self.uas, UAC_ADDR: self.uac}[dest]  # a misroute raises here
        data = message.serialize()
        when = self.now + self.latency + self.delay(sender, label, nth)
        for copy in range(2 if self.duplicate else 1):

            def deliver(data: bytes = data) -> None:
                target.receive(parse_message(data), source, reliable=self.reliable, now=self.now)

            self.at(when + copy * 0.001, deliver)

    def _pump(self) -> None:
        while True:
            busy = False
            for name, layer, source in (("uac", self.uac, UAC_ADDR), ("uas", self.uas, UAS_ADDR)):
                for message, dest in layer.datagrams_to_send():
                    busy = True
                    self._transmit(name, source, message, dest)
                while (event := layer.next_event()) is not None:
                    busy = True
                    if name == "uac":
                        self.uac_events.append((self.now, event))
                        self._uac_tu(event)
                    else:
                        self.uas_events.append((self.now, event))
                        self._uas_tu(event)
            if not busy:
                return

    def run(self, until: float = 300.0) -> None:
        while True:
            self._pump()
            times = [t for t in (self.uac.get_timer(), self.uas.get_timer()) if t is not None]
            if self._queue:
                times.append(self._queue[0][0])
            if not times or min(times) > until:
                return
            self.now = max(self.now, min(times))
            if self._queue and self._queue[0][0] <= self.now:
                heapq.heappop(self._queue)[2]()
            else:
                self.uac.handle_timer(self.now)
                self.uas.handle_timer(self.now)

    # -- the TUs

    def _uac_tu(self, event: TransactionEvent) -> None:
        if isinstance(event, ResponseReceived) and event.response.is_success:
            if event.response.cseq.method == "INVITE":
                # §13.2.2.4: the TU ACKs every 2xx (retransmissions too), on a new branch.
                ack = build_non2xx_ack(event.client_tx.request, event.response)
                ack.headers.set("Via", f"SIP/2.0/UDP 10.0.0.5:5060;rport;branch={new_branch()}")
                self.uac.send_stateless(ack, UAS_ADDR)

    def _uas_tu(self, event: TransactionEvent) -> None:
        if isinstance(event, RequestReceived):
            tx = event.server_tx
            if event.request.method != "INVITE":
                self.uas.send_response(tx, make_response(event.request, 200), self.now)
                return
            for offset, status in self.answers:
                self.at(self.now + offset, lambda tx=tx, status=status: self._answer(tx, status))
        elif isinstance(event, CancelReceived):
            if event.invite_tx is not None and event.invite_tx.state is S.PROCEEDING:
                response = make_response(event.invite_tx.request, 487, to_tag="uas")
                self.uas.send_response(event.invite_tx, response, self.now)
        elif isinstance(event, AckReceived):
            self._acked = True

    def _answer(self, tx: ServerTransaction, status: int) -> None:
        if tx.state is not S.PROCEEDING:
            return  # cancelled, or already answered
        response = make_response(tx.request, status, to_tag="uas")
        self.uas.send_response(tx, response, self.now)
        if response.is_success and not self.reliable:
            self._retransmit_2xx(tx, response, self.timers.t1, self.now)

    @property
    def timers(self) -> TimerConfig:
        return self.uas.timers

    def _retransmit_2xx(
        self, tx: ServerTransaction, response: SipResponse, interval: float, start: float
    ) -> None:
        # §13.3.1.4: the UAS core (not the transaction) retransmits a 2xx until the ACK.
        def again() -> None:
            if self._acked or self.now - start >= self.timers.timeout:
                return
            self.uas.send_response(tx, response, self.now)
            self._retransmit_2xx(tx, response, min(interval * 2, self.timers.t2), start)

        self.at(self.now + interval, again)


def uas_got(sim: Sim, kind: type) -> int:
    return sum(isinstance(e, kind) for _, e in sim.uas_events)


def test_sim_happy_path_with_auto_100() -> None:
    sim = Sim()
    sim.invite()
    sim.run()
    assert sim.wire_labels("uac") == ["INVITE", "ACK"]
    assert sim.wire_labels("uas") == ["100 INVITE", "180 INVITE", "200 INVITE"]
    assert sim.tu_statuses() == [100, 180, 200]
    assert uas_got(sim, RequestReceived) == 1 and uas_got(sim, AckReceived) == 1
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_first_invite_lost() -> None:
    sim = Sim(drop=lambda s, label, n: label == "INVITE" and n == 1)
    sim.invite()
    sim.run()
    assert [t for t, s, label in sim.wire if label == "INVITE"] == [0.0, 0.5]
    assert sim.tu_statuses() == [100, 180, 200]
    assert uas_got(sim, RequestReceived) == 1
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_100_lost_invite_retransmission_gets_it_again() -> None:
    sim = Sim(drop=lambda s, label, n: label == "100 INVITE" and n == 1, answers=[(2.0, 486)])
    sim.invite()
    sim.run()
    # 100 at 0.21 lost; the INVITE retransmitted at 0.5 is answered with the 100 again.
    assert sim.wire_labels("uac") == ["INVITE", "INVITE", "ACK"]
    assert sim.wire_labels("uas") == ["100 INVITE", "100 INVITE", "486 INVITE"]
    assert sim.tu_statuses() == [100, 486]
    assert uas_got(sim, RequestReceived) == 1
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_final_lost_server_retransmits_on_timer_g() -> None:
    sim = Sim(
        drop=lambda s, label, n: label == "486 INVITE" and n == 1, answers=[(0.1, 180), (1.0, 486)]
    )
    sim.invite()
    sim.run()
    sends = [(round(t, 3), label) for t, s, label in sim.wire if s == "uas"]
    assert sends == [(0.11, "180 INVITE"), (1.01, "486 INVITE"), (1.51, "486 INVITE")]
    assert sim.wire_labels("uac") == ["INVITE", "ACK"]
    assert sim.tu_statuses() == [180, 486]
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_final_lost_before_any_provisional_client_retransmits_on_timer_a() -> None:
    sim = Sim(
        drop=lambda s, label, n: label == "486 INVITE" and n == 1,
        answers=[(0.05, 486)],
        uas=TransactionLayer(auto_trying=False),
    )
    sim.invite()
    sim.run()
    # The UAC still in Calling retransmits at 0.5; the UAS in Completed repeats the 486
    # (and Timer G would have at 0.56 too; whichever arrives first is ACKed).
    assert sim.wire_labels("uac")[:2] == ["INVITE", "INVITE"]
    assert sim.tu_statuses() == [486]  # retransmissions absorbed
    assert [label for label in sim.wire_labels("uac") if label == "ACK"]
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_ack_lost_final_retransmitted_and_acked_again() -> None:
    sim = Sim(drop=lambda s, label, n: label == "ACK" and n == 1, answers=[(0.1, 180), (1.0, 603)])
    sim.invite()
    sim.run()
    assert sim.wire_labels("uac") == ["INVITE", "ACK", "ACK"]
    assert sim.wire_labels("uas") == ["180 INVITE", "603 INVITE", "603 INVITE"]
    assert sim.tu_statuses() == [180, 603]
    assert not any(isinstance(e, TransactionTimeout) for _, e in sim.uas_events)
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_2xx_lost_uas_core_retransmits_and_accepted_passes_it_up() -> None:
    sim = Sim(drop=lambda s, label, n: label == "200 INVITE" and n == 1)
    sim.invite()
    sim.run()
    assert sim.wire_labels("uas") == ["100 INVITE", "180 INVITE", "200 INVITE", "200 INVITE"]
    assert sim.tu_statuses() == [100, 180, 200]
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_duplicate_delivery() -> None:
    sim = Sim(duplicate=True, answers=[(0.1, 180), (1.0, 486)])
    sim.invite()
    sim.run()
    assert uas_got(sim, RequestReceived) == 1
    # Provisionals are all passed up in Proceeding (§17.1.1.2); the final only once.
    assert sim.tu_statuses() == [180, 180, 486]
    # The duplicated 486 was ACKed twice; the duplicated ACKs are absorbed in Confirmed.
    assert sim.wire_labels("uac") == ["INVITE", "ACK", "ACK"]
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_reordering_provisional_after_final() -> None:
    sim = Sim(
        delay=lambda s, label, n: 2.0 if label == "180 INVITE" else 0.0,
        answers=[(0.1, 180), (0.5, 486)],
    )
    sim.invite()
    sim.run()
    assert sim.tu_statuses() == [486]  # the late 180 reaches Completed: dropped
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_cancel_while_ringing() -> None:
    sim = Sim(answers=[(0.1, 180), (10.0, 200)])
    tx = sim.invite()
    sim.at(2.0, lambda: sim.cancel(tx))
    sim.run()
    assert sim.wire_labels("uac") == ["INVITE", "CANCEL", "ACK"]
    assert sim.wire_labels("uas") == ["180 INVITE", "200 CANCEL", "487 INVITE"]
    assert sim.tu_statuses() == [180, 200, 487]
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_cancel_200_race() -> None:
    """The CANCEL crosses the 200 OK: the UAS answers the CANCEL 200 but the INVITE stays
    200 (§9.2); the UAC gets both finals and ACKs the 2xx (its TU would now send BYE)."""
    sim = Sim(answers=[(0.1, 180), (1.0, 200)])
    tx = sim.invite()
    sim.at(1.005, lambda: sim.cancel(tx))  # the 200 leaves the UAS at 1.01
    sim.run()
    assert sim.wire_labels("uac") == ["INVITE", "CANCEL", "ACK"]
    assert sim.wire_labels("uas") == ["180 INVITE", "200 INVITE", "200 CANCEL"]
    finals = [
        (e.response.status, e.response.cseq.method)
        for _, e in sim.uac_events
        if isinstance(e, ResponseReceived) and e.response.status >= 200
    ]
    assert finals == [(200, "INVITE"), (200, "CANCEL")]
    [cancel] = [e for _, e in sim.uas_events if isinstance(e, CancelReceived)]
    assert cancel.invite_tx is not None and cancel.invite_tx.state is not S.PROCEEDING
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_non_invite_final_lost() -> None:
    sim = Sim(drop=lambda s, label, n: label == "200 OPTIONS" and n == 1)
    tx = sim.uac.send_request(make_request("OPTIONS"), UAS_ADDR, now=0.0)
    sim.run()
    # The NICT retransmits on Timer E; the NIST in Completed repeats its 200.
    assert sim.wire_labels("uac") == ["OPTIONS", "OPTIONS"]
    assert sim.wire_labels("uas") == ["200 OPTIONS", "200 OPTIONS"]
    assert sim.tu_statuses() == [200]
    assert tx.terminated
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_over_tcp_no_retransmissions_and_immediate_cleanup() -> None:
    sim = Sim(reliable=True, answers=[(0.1, 180), (1.0, 486)])
    tx = sim.invite()
    sim.run(until=1.5)
    assert tx.terminated  # Timer D = 0
    assert sim.uas.server_transactions == []  # Timer I = 0 once the ACK arrived
    sim.run()
    assert sim.wire_labels("uac") == ["INVITE", "ACK"]
    assert sim.wire_labels("uas") == ["180 INVITE", "486 INVITE"]
    assert_empty(sim.uac)
    assert_empty(sim.uas)


def test_sim_no_answer_at_all_times_out() -> None:
    sim = Sim(drop=lambda s, label, n: True)
    tx = sim.invite()
    sim.run()
    timeouts = [(t, e) for t, e in sim.uac_events if isinstance(e, TransactionTimeout)]
    assert [(t, e.tx, e.timer) for t, e in timeouts] == [(32.0, tx, Timer.B)]
    assert len(sim.wire_labels("uac")) == 7
    assert_empty(sim.uac)


# -- property test: random inputs to client transactions

_RANK = {
    S.CALLING: 0,
    S.TRYING: 0,
    S.PROCEEDING: 1,
    S.COMPLETED: 2,
    S.ACCEPTED: 2,
    S.TERMINATED: 3,
}
_WAIT = 64 * TimerConfig().t1 + TimerConfig().timer_d_udp  # the longest quiet path to the end


class ClientTransactions(RuleBasedStateMachine):
    """Random responses, retransmissions, timer fires, CANCELs and transport errors fed to
    a layer's client transactions: nothing raises, states only move forward, and all end
    within 64*T1 + Timer D of the last input."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = TransactionLayer()
        self.now = 0.0
        self.txs: list[ClientTransaction] = []
        self.seen: dict[int, TransactionState] = {}
        self.delivered: list[SipResponse] = []
        self.terminated: Counter[int] = Counter()

    @rule(invite=st.booleans(), reliable=st.booleans())
    def new_transaction(self, invite: bool, reliable: bool) -> None:
        request = make_request("INVITE" if invite else "BYE", call_id=f"c{len(self.txs)}")
        self.txs.append(self.layer.send_request(request, UAS_ADDR, reliable=reliable, now=self.now))

    @precondition(lambda self: self.txs)
    @rule(
        data=st.data(),
        # Provisionals weighted up: they open the Proceeding paths (CANCEL, Timer E at T2).
        status=st.sampled_from([100, 180, 180, 183, 183, 200, 202, 302, 401, 486, 487, 603, 699]),
        tag=st.sampled_from([None, "b1", "b2"]),
    )
    def respond(self, data: st.DataObject, status: int, tag: str | None) -> None:
        tx = data.draw(st.sampled_from(self.txs))
        response = make_response(tx.request, status, to_tag=tag)
        self.delivered.append(response)
        self.layer.receive(response, UAS_ADDR, reliable=tx.reliable, now=self.now)

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def retransmit(self, data: st.DataObject) -> None:
        response = data.draw(st.sampled_from(self.delivered))
        wire = parse_message(response.serialize())
        self.layer.receive(wire, UAS_ADDR, reliable=False, now=self.now)

    @rule(
        dt=st.one_of(st.floats(0.0, 2.0), st.floats(0.0, 40.0)),
        exact=st.booleans(),
    )
    def advance(self, dt: float, exact: bool) -> None:
        self.now += dt
        if exact:  # fire at each deadline, as a well-behaved event loop does
            run_timers(self.layer, self.now)
        else:  # fire once, late
            self.layer.handle_timer(self.now)

    @precondition(lambda self: self.txs)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        tx = data.draw(st.sampled_from(self.txs))
        if isinstance(tx, InviteClientTransaction) and not tx.terminated:
            try:
                self.txs.append(self.layer.cancel(tx, self.now))
            except LocalProtocolError:
                assert tx.cancelled  # a second CANCEL for the same INVITE

    @precondition(lambda self: self.txs)
    @rule(data=st.data(), roll=st.integers(0, 3))
    def transport_error(self, data: st.DataObject, roll: int) -> None:
        if roll == 0:  # rarer than the other inputs: it ends a transaction outright
            self.layer.transport_error(data.draw(st.sampled_from(self.txs)), self.now)

    @invariant()
    def states_only_move_forward(self) -> None:
        for event in drain(self.layer):
            if isinstance(event, TransactionTerminated):
                self.terminated[id(event.tx)] += 1
        self.layer.datagrams_to_send()
        live = {id(tx) for tx in self.layer.client_transactions}
        for tx in self.txs:
            before = self.seen.get(id(tx))
            if before is not None:
                assert _RANK[tx.state] >= _RANK[before], (tx, before)
                if _RANK[tx.state] == _RANK[before]:
                    assert tx.state is before, (tx, before)
            self.seen[id(tx)] = tx.state
            assert (id(tx) in live) is (not tx.terminated)
            assert self.terminated[id(tx)] == (1 if tx.terminated else 0)

    def teardown(self) -> None:
        # An INVITE in Proceeding waits for its TU (RFC 3261 has no Timer B there);
        # the TU's way out is a CANCEL, after which §9.1 bounds it by 64*T1.
        for tx in list(self.layer.client_transactions):
            if isinstance(tx, InviteClientTransaction) and not tx.cancelled:
                self.layer.cancel(tx, self.now)
        run_timers(self.layer, self.now + _WAIT)
        assert_empty(self.layer)


ClientTransactions.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestClientTransactions = ClientTransactions.TestCase
