"""Unit tests of the four transaction machines (RFC 3261 §17, RFC 6026), on a virtual clock.

Each test drives one transaction on its own: time only moves when the test says so, by
jumping to the transaction's next deadline.
"""

from __future__ import annotations

import dataclasses

import pytest

from dialflow.sip.errors import LocalProtocolError
from dialflow.sip.message import SipMessage, SipRequest, SipResponse, make_response
from dialflow.sip.parser import parse_message
from dialflow.sip.transaction import (
    AckReceived,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    ResponseReceived,
    Timer,
    TimerConfig,
    Transaction,
    TransactionEvent,
    TransactionState,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
    build_cancel,
    build_non2xx_ack,
)

PEER = ("10.0.0.2", 5060)
S = TransactionState


def request(method: str = "INVITE", branch: str = "z9hG4bKabc123", extra: str = "") -> SipRequest:
    raw = (
        f"{method} sip:bob@10.0.0.2 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch={branch}\r\n"
        "Via: SIP/2.0/UDP 10.0.0.9:5070;branch=z9hG4bKproxy\r\n"
        "Max-Forwards: 70\r\n"
        "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
        "From: Alice <sip:alice@example.com>;tag=a1\r\n"
        "To: Bob <sip:bob@example.com>\r\n"
        "Call-ID: call-1@10.0.0.5\r\n"
        f"CSeq: 7 {method}\r\n"
        "Contact: <sip:alice@10.0.0.5:5060>\r\n"
        "Require: 100rel\r\n"
        f"{extra}"
        "\r\n"
    )
    message = parse_message(raw.encode())
    assert isinstance(message, SipRequest)
    return message


def response(req: SipRequest, status: int, tag: str | None = "b1") -> SipResponse:
    return make_response(req, status, to_tag=tag)


def run(tx: Transaction, until: float) -> list[tuple[float, SipMessage]]:
    """Fire tx's timers at their exact deadlines up to ``until``; return what was sent when."""
    sent: list[tuple[float, SipMessage]] = []
    while (deadline := tx.get_timer()) is not None and deadline <= until:
        before = len(tx.output.sends)
        tx.handle_timer(deadline)
        sent.extend((deadline, msg) for msg, _ in tx.output.sends[before:])
    return sent


def events(tx: Transaction) -> list[TransactionEvent]:
    out = list(tx.output.events)
    tx.output.events.clear()
    return out


def sends(tx: Transaction) -> list[SipMessage]:
    out = [msg for msg, addr in tx.output.sends]
    assert all(addr == tx.address for _, addr in tx.output.sends)
    tx.output.sends.clear()
    return out


# -- timer values


def test_timer_config_defaults_and_derived_values() -> None:
    timers = TimerConfig()
    assert (timers.t1, timers.t2, timers.t4) == (0.5, 4.0, 5.0)
    assert timers.timeout == 32.0
    assert (timers.timer_d(False), timers.timer_d(True)) == (32.0, 0.0)
    assert (timers.timer_i(False), timers.timer_i(True)) == (5.0, 0.0)
    assert (timers.timer_j(False), timers.timer_j(True)) == (32.0, 0.0)
    assert (timers.timer_k(False), timers.timer_k(True)) == (5.0, 0.0)
    assert timers.next_interval(4.0, capped=True) == 4.0
    assert timers.next_interval(4.0, capped=False) == 8.0
    assert TimerConfig(t1=0.25).timeout == 16.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        timers.t1 = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        TimerConfig(t1=5.0, t2=4.0)
    with pytest.raises(ValueError):
        TimerConfig(t1=0)


# -- INVITE client


def start_ict(reliable: bool = False, timers: TimerConfig | None = None) -> InviteClientTransaction:
    tx = InviteClientTransaction(
        request(), PEER, reliable=reliable, timers=timers or TimerConfig(), output=None
    )
    tx.start(0.0)
    return tx


def test_invite_client_udp_no_answer_retransmits_doubling_and_times_out_at_64_t1() -> None:
    tx = start_ict()
    assert sends(tx) == [tx.request]
    sent = run(tx, 100.0)
    assert [t for t, _ in sent] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(msg is tx.request for _, msg in sent)
    assert tx.state is S.TERMINATED
    evs = events(tx)
    assert len(evs) == 2
    assert isinstance(evs[0], TransactionTimeout) and evs[0].timer is Timer.B
    assert isinstance(evs[1], TransactionTerminated) and evs[1].tx is tx


def test_invite_client_timeout_is_exactly_64_t1() -> None:
    tx = start_ict()
    tx.handle_timer(31.999)
    assert tx.state is S.CALLING
    assert tx.timer_deadline(Timer.B) == 32.0
    tx.handle_timer(32.0)
    assert tx.state is S.TERMINATED


def test_invite_client_tcp_sends_once_and_times_out_at_32s() -> None:
    tx = start_ict(reliable=True)
    assert len(sends(tx)) == 1
    assert tx.timer_deadline(Timer.A) is None
    assert run(tx, 100.0) == []
    assert tx.get_timer() is None and tx.terminated
    assert [type(e) for e in events(tx)] == [TransactionTimeout, TransactionTerminated]


def test_invite_client_timers_follow_t1() -> None:
    tx = start_ict(timers=TimerConfig(t1=0.1, t2=4.0))
    sent = run(tx, 100.0)
    assert [round(t, 6) for t, _ in sent] == [0.1, 0.3, 0.7, 1.5, 3.1, 6.3]
    assert tx.terminated


def test_invite_client_provisional_stops_retransmission_and_timer_b() -> None:
    tx = start_ict()
    run(tx, 0.5)
    tx.receive_response(response(tx.request, 180), 0.7)
    assert tx.state is S.PROCEEDING
    assert tx.get_timer() is None  # §17.1.1.2: no Timer A, and Timer B only in Calling
    assert run(tx, 1000.0) == []
    tx.receive_response(response(tx.request, 183), 5.0)
    evs = events(tx)
    assert [e.response.status for e in evs if isinstance(e, ResponseReceived)] == [180, 183]


def test_invite_client_non2xx_final_is_acked_and_absorbed_until_timer_d() -> None:
    tx = start_ict()
    sends(tx)
    tx.receive_response(response(tx.request, 180), 0.2)
    final = response(tx.request, 486)
    tx.receive_response(final, 1.0)
    assert tx.state is S.COMPLETED
    [ack] = sends(tx)
    assert ack is tx.ack
    assert [type(e) for e in events(tx)] == [ResponseReceived, ResponseReceived]
    assert tx.timer_deadline(Timer.D) == 33.0
    # A retransmitted final: ACKed again, not passed up (§17.1.1.2).
    tx.receive_response(final, 2.0)
    assert sends(tx) == [ack]
    assert events(tx) == []
    # Neither a 2xx nor a provisional changes anything now.
    tx.receive_response(response(tx.request, 200), 3.0)
    assert sends(tx) == [] and events(tx) == []
    tx.handle_timer(32.9)
    assert tx.state is S.COMPLETED
    tx.handle_timer(33.0)
    assert tx.state is S.TERMINATED
    assert [type(e) for e in events(tx)] == [TransactionTerminated]


def test_invite_client_over_tcp_terminates_at_once_on_a_final() -> None:
    tx = start_ict(reliable=True)
    tx.receive_response(response(tx.request, 603), 1.0)
    assert tx.state is S.TERMINATED
    assert [type(e) for e in events(tx)] == [ResponseReceived, TransactionTerminated]
    assert sends(tx)[-1].method == "ACK"  # type: ignore[union-attr]


def test_non2xx_ack_is_built_per_17_1_1_3() -> None:
    invite = request()
    final = response(invite, 486, tag="b1")
    ack = build_non2xx_ack(invite, final)
    assert ack.serialize() == (
        b"ACK sip:bob@10.0.0.2 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKabc123\r\n"
        b"Route: <sip:p1.example.com;lr>\r\n"
        b"Route: <sip:p2.example.com;lr>\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@example.com>;tag=a1\r\n"
        b"To: Bob <sip:bob@example.com>;tag=b1\r\n"
        b"Call-ID: call-1@10.0.0.5\r\n"
        b"CSeq: 7 ACK\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )
    assert parse_message(ack.serialize()) == ack


def test_cancel_is_built_per_9_1() -> None:
    invite = request()
    cancel = build_cancel(invite)
    assert cancel.serialize() == (
        b"CANCEL sip:bob@10.0.0.2 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bKabc123\r\n"
        b"Route: <sip:p1.example.com;lr>\r\n"
        b"Route: <sip:p2.example.com;lr>\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: Alice <sip:alice@example.com>;tag=a1\r\n"
        b"To: Bob <sip:bob@example.com>\r\n"
        b"Call-ID: call-1@10.0.0.5\r\n"
        b"CSeq: 7 CANCEL\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )
    assert "Require" not in cancel.headers


def test_invite_client_2xx_goes_accepted_and_passes_2xx_until_timer_m() -> None:
    tx = start_ict()
    sends(tx)
    ok = response(tx.request, 200)
    tx.receive_response(ok, 2.0)
    assert tx.state is S.ACCEPTED
    assert sends(tx) == []  # the TU ACKs a 2xx, not the transaction
    assert tx.timer_deadline(Timer.M) == 34.0
    tx.receive_response(ok, 2.5)  # retransmission
    tx.receive_response(response(tx.request, 200, tag="fork2"), 3.0)  # another fork
    tx.receive_response(response(tx.request, 180), 3.1)  # ignored
    tx.receive_response(response(tx.request, 486), 3.2)  # ignored
    evs = events(tx)
    assert [e.response.status for e in evs if isinstance(e, ResponseReceived)] == [200, 200, 200]
    assert run(tx, 100.0) == []
    assert tx.state is S.TERMINATED
    assert [type(e) for e in events(tx)] == [TransactionTerminated]


def test_invite_client_cancel_guard_gives_up_64_t1_after_cancel() -> None:
    tx = start_ict()
    tx.receive_response(response(tx.request, 180), 1.0)
    tx.cancel_sent(10.0)
    tx.cancel_sent(11.0)  # a second call does not push the deadline
    assert tx.get_timer() == 42.0
    run(tx, 100.0)
    evs = events(tx)
    assert isinstance(evs[-2], TransactionTimeout) and evs[-2].timer is Timer.CANCEL
    assert tx.terminated


def test_invite_client_transport_error() -> None:
    tx = start_ict()
    tx.transport_error(0.1)
    assert [type(e) for e in events(tx)] == [TransportFailed, TransactionTerminated]
    tx.transport_error(0.2)
    assert events(tx) == []


def test_transactions_refuse_the_wrong_method() -> None:
    with pytest.raises(LocalProtocolError):
        InviteClientTransaction(request("OPTIONS"), PEER)
    with pytest.raises(LocalProtocolError):
        NonInviteClientTransaction(request("INVITE"), PEER)
    with pytest.raises(LocalProtocolError):
        InviteServerTransaction(request("BYE"), PEER)
    with pytest.raises(LocalProtocolError):
        NonInviteServerTransaction(request("INVITE"), PEER)


def test_repr_names_class_method_branch_state() -> None:
    tx = start_ict()
    assert repr(tx) == "<InviteClientTransaction INVITE z9hG4bKabc123 Calling>"


# -- non-INVITE client


def start_nict(reliable: bool = False) -> NonInviteClientTransaction:
    tx = NonInviteClientTransaction(request("OPTIONS"), PEER, reliable=reliable)
    tx.start(0.0)
    return tx


def test_non_invite_client_udp_intervals_cap_at_t2_and_timeout_at_32s() -> None:
    tx = start_nict()
    assert len(sends(tx)) == 1
    sent = run(tx, 100.0)
    times = [t for t, _ in sent]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    intervals = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert intervals == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    evs = events(tx)
    assert isinstance(evs[0], TransactionTimeout) and evs[0].timer is Timer.F
    assert tx.terminated


def test_non_invite_client_retransmits_every_t2_once_proceeding() -> None:
    tx = start_nict()
    run(tx, 0.5)
    tx.receive_response(response(tx.request, 100, tag=None), 0.6)
    assert tx.state is S.PROCEEDING
    sent = run(tx, 100.0)
    # The pending Timer E (1.5) still fires, then every T2 instead of 3.5, 7.5 …
    assert [t for t, _ in sent] == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5]
    assert tx.terminated


def test_non_invite_client_tcp_sends_once_and_times_out() -> None:
    tx = start_nict(reliable=True)
    assert run(tx, 31.9) == []
    assert tx.state is S.TRYING
    run(tx, 32.0)
    assert tx.terminated


@pytest.mark.parametrize(("reliable", "timer_k"), [(False, 5.0), (True, 0.0)])
def test_non_invite_client_final_then_timer_k(reliable: bool, timer_k: float) -> None:
    tx = start_nict(reliable)
    sends(tx)
    final = response(tx.request, 200)
    tx.receive_response(final, 1.0)
    evs = events(tx)
    assert isinstance(evs[0], ResponseReceived) and evs[0].response is final
    if timer_k:
        assert tx.state is S.COMPLETED
        assert tx.timer_deadline(Timer.K) == 1.0 + timer_k
        tx.receive_response(final, 2.0)  # absorbed
        assert events(tx) == [] and sends(tx) == []
        run(tx, 100.0)
    assert tx.terminated
    assert sends(tx) == []


# -- INVITE server


def new_ist(reliable: bool = False, auto_trying: bool = False) -> InviteServerTransaction:
    tx = InviteServerTransaction(request(), PEER, reliable=reliable)
    tx.start(0.0, auto_trying=auto_trying)
    return tx


def test_invite_server_timer_g_retransmits_486_until_timer_h() -> None:
    tx = new_ist()
    busy = response(tx.request, 486)
    tx.send_response(busy, 1.0)
    assert sends(tx) == [busy]
    assert tx.state is S.COMPLETED
    sent = run(tx, 100.0)
    times = [t - 1.0 for t, _ in sent]
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(msg is busy for _, msg in sent)
    evs = events(tx)
    assert isinstance(evs[0], TransactionTimeout) and evs[0].timer is Timer.H
    assert isinstance(evs[1], TransactionTerminated)


def test_invite_server_ack_confirms_then_timer_i() -> None:
    tx = new_ist()
    busy = response(tx.request, 486)
    tx.send_response(busy, 0.0)
    sends(tx)
    run(tx, 1.5)  # two Timer G retransmissions
    assert len(sends(tx)) == 2
    tx.receive_request(request(), PEER, 2.0)  # INVITE retransmission: the 486 again
    assert sends(tx) == [busy]
    ack = build_non2xx_ack(tx.request, busy)
    tx.receive_request(ack, PEER, 2.1)
    assert tx.state is S.CONFIRMED
    assert tx.timer_deadline(Timer.G) is None and tx.timer_deadline(Timer.H) is None
    assert tx.timer_deadline(Timer.I) == 7.1
    tx.receive_request(ack, PEER, 3.0)  # ACK retransmission absorbed
    tx.receive_request(request(), PEER, 3.0)  # so is a late INVITE
    assert sends(tx) == [] and events(tx) == []
    run(tx, 100.0)
    assert tx.terminated
    assert [type(e) for e in events(tx)] == [TransactionTerminated]


def test_invite_server_answers_invite_retransmission_with_latest_provisional() -> None:
    tx = new_ist()
    tx.receive_request(request(), PEER, 0.1)
    assert sends(tx) == []  # nothing sent yet, nothing to repeat
    ringing = response(tx.request, 180)
    tx.send_response(ringing, 0.2)
    sends(tx)
    tx.receive_request(request(), PEER, 0.5)
    assert sends(tx) == [ringing]


def test_invite_server_sends_100_trying_after_200ms_without_answer() -> None:
    tx = InviteServerTransaction(request(extra="Timestamp: 54\r\n"), PEER)
    tx.start(0.0)
    tx.handle_timer(0.19)
    assert sends(tx) == []
    tx.handle_timer(0.2)
    [trying] = sends(tx)
    assert isinstance(trying, SipResponse) and trying.status == 100
    assert trying.headers.get("Timestamp") == "54"
    assert trying.to.tag is None
    tx.receive_request(request(), PEER, 0.5)
    assert sends(tx) == [trying]


def test_invite_server_no_100_when_tu_answers_in_time() -> None:
    tx = InviteServerTransaction(request(), PEER)
    tx.start(0.0)
    tx.send_response(response(tx.request, 180), 0.1)
    sends(tx)
    assert run(tx, 10.0) == []


def test_invite_server_2xx_goes_accepted_rfc6026() -> None:
    tx = new_ist()
    ok = response(tx.request, 200)
    tx.send_response(ok, 1.0)
    assert tx.state is S.ACCEPTED
    assert tx.timer_deadline(Timer.L) == 33.0
    sends(tx)
    tx.receive_request(request(), PEER, 1.5)  # INVITE retransmission absorbed
    assert sends(tx) == []
    tx.send_response(ok, 1.5)  # the TU's 2xx retransmission goes out
    assert sends(tx) == [ok]
    ack = build_non2xx_ack(tx.request, ok)
    tx.receive_request(ack, ("10.0.0.5", 5060), 1.6)
    [ev] = events(tx)
    assert isinstance(ev, AckReceived) and ev.request is ack and ev.source == ("10.0.0.5", 5060)
    with pytest.raises(LocalProtocolError):
        tx.send_response(response(tx.request, 486), 2.0)
    assert run(tx, 100.0) == []  # Timer L sends nothing
    assert tx.terminated


def test_invite_server_refuses_responses_after_non2xx_final() -> None:
    tx = new_ist()
    tx.send_response(response(tx.request, 404), 0.0)
    with pytest.raises(LocalProtocolError):
        tx.send_response(response(tx.request, 200), 0.1)


def test_invite_server_over_tcp_has_no_timer_g_and_zero_timer_i() -> None:
    tx = new_ist(reliable=True)
    busy = response(tx.request, 486)
    tx.send_response(busy, 0.0)
    assert tx.timer_deadline(Timer.G) is None
    assert tx.timer_deadline(Timer.H) == 32.0
    tx.receive_request(build_non2xx_ack(tx.request, busy), PEER, 0.1)
    assert tx.terminated


def test_invite_server_over_tcp_times_out_on_timer_h() -> None:
    tx = new_ist(reliable=True)
    tx.send_response(response(tx.request, 486), 0.0)
    sends(tx)
    assert run(tx, 100.0) == []
    assert isinstance(events(tx)[0], TransactionTimeout)


# -- non-INVITE server


@pytest.mark.parametrize(("reliable", "timer_j"), [(False, 32.0), (True, 0.0)])
def test_non_invite_server_absorbs_retransmissions(reliable: bool, timer_j: float) -> None:
    tx = NonInviteServerTransaction(request("BYE"), PEER, reliable=reliable)
    tx.receive_request(request("BYE"), PEER, 0.1)  # Trying: nothing to repeat
    assert sends(tx) == []
    trying = response(tx.request, 100, tag=None)
    tx.send_response(trying, 0.2)
    assert tx.state is S.PROCEEDING
    tx.receive_request(request("BYE"), PEER, 0.3)
    assert sends(tx) == [trying, trying]
    ok = response(tx.request, 200)
    tx.send_response(ok, 1.0)
    assert sends(tx) == [ok]
    with pytest.raises(LocalProtocolError):
        tx.send_response(response(tx.request, 500), 1.1)
    if timer_j:
        assert tx.timer_deadline(Timer.J) == 1.0 + timer_j
        tx.receive_request(request("BYE"), PEER, 5.0)
        assert sends(tx) == [ok]
        assert run(tx, 100.0) == []
    assert tx.terminated
    assert [type(e) for e in events(tx)] == [TransactionTerminated]


def test_wait_timers_udp_and_zero_on_tcp() -> None:
    """Timer D / I / J / K: their RFC 3261 values on UDP, and zero (terminate) on TCP."""
    for reliable, expected in ((False, (32.0, 5.0, 32.0, 5.0)), (True, (0.0, 0.0, 0.0, 0.0))):
        ict = start_ict(reliable)
        ict.receive_response(response(ict.request, 500), 0.0)
        ist = new_ist(reliable)
        busy = response(ist.request, 486)
        ist.send_response(busy, 0.0)
        ist.receive_request(build_non2xx_ack(ist.request, busy), PEER, 0.0)
        nist = NonInviteServerTransaction(request("BYE"), PEER, reliable=reliable)
        nist.send_response(response(nist.request, 200), 0.0)
        nict = start_nict(reliable)
        nict.receive_response(response(nict.request, 200), 0.0)
        got = tuple(
            tx.timer_deadline(timer) or 0.0
            for tx, timer in ((ict, Timer.D), (ist, Timer.I), (nist, Timer.J), (nict, Timer.K))
        )
        assert got == expected
        assert all(tx.terminated for tx in (ict, ist, nist, nict)) is reliable
