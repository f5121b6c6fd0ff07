"""Dialog creation, in-dialog request building and 2xx reliability (RFC 3261 §12, §13.3.1.4)."""

from __future__ import annotations

import pytest

from dialflow.sip.dialog import Dialog, DialogState, Uas2xxRetransmitter, next_hop
from dialflow.sip.errors import RemoteProtocolError
from dialflow.sip.message import SipRequest, SipResponse, make_response
from dialflow.sip.parser import parse_message
from dialflow.sip.transaction import TimerConfig
from dialflow.sip.uri import NameAddr, parse_uri

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKnashds8;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n"
    b"Call-ID: 3848276298220188511@atlanta.example.com\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@10.0.0.1:5060>\r\n"
    b'Authorization: Digest username="alice", realm="x", nonce="n", '
    b'uri="sip:bob@biloxi.example.com", response="0"\r\n'
    b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _invite() -> SipRequest:
    msg = parse_message(INVITE)
    assert isinstance(msg, SipRequest)
    return msg


def _ok(invite: SipRequest, *, contact: str = "<sip:bob@192.0.2.4:5070>") -> SipResponse:
    return make_response(invite, 200, to_tag="314159", headers=[("Contact", contact)])


def test_uac_dialog_from_2xx_reverses_record_route_and_targets_contact() -> None:
    invite = _invite()
    dialog = Dialog.from_uac_response(invite, _ok(invite))
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.id == ("3848276298220188511@atlanta.example.com", "9fxced76sl", "314159")
    assert [str(r.uri) for r in dialog.route_set] == [
        "sip:p1.example.com;lr",
        "sip:p2.example.com;lr",
    ]
    bye = dialog.create_request("BYE")
    assert str(bye.uri) == "sip:bob@192.0.2.4:5070"
    assert bye.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
    assert bye.cseq.seq == 2 and bye.cseq.method == "BYE"
    assert bye.to.tag == "314159" and bye.from_.tag == "9fxced76sl"
    assert next_hop(bye) == ("p1.example.com", 5060, "udp")


def test_ack_for_2xx_reuses_invite_cseq_and_credentials() -> None:
    invite = _invite()
    dialog = Dialog.from_uac_response(invite, _ok(invite))
    ack = dialog.create_ack(invite)
    assert ack.cseq.seq == 1 and ack.method == "ACK"
    assert ack.headers.get(
        "Authorization",
    ) == invite.headers.get("Authorization")
    assert dialog.local_seq == 1  # the ACK does not consume a sequence number


def test_strict_router_moves_target_to_end_of_route() -> None:
    invite = _invite()
    invite.headers.set("Record-Route", "<sip:strict.example.com>")
    dialog = Dialog.from_uac_response(invite, _ok(invite))
    bye = dialog.create_request("BYE")
    assert str(bye.uri) == "sip:strict.example.com"
    assert bye.headers.get_all("Route") == ["<sip:bob@192.0.2.4:5070>"]


def test_uas_dialog_and_cseq_ordering() -> None:
    invite = _invite()
    contact = NameAddr(uri=parse_uri("sip:dialflow@127.0.0.1:5060"))
    dialog = Dialog.from_uas_request(invite, "localtag", contact)
    assert dialog.remote_tag == "9fxced76sl" and dialog.local_tag == "localtag"
    assert str(dialog.remote_target) == "sip:alice@10.0.0.1:5060"
    # §12.1.1: the UAS keeps Record-Route in order.
    assert [str(r.uri) for r in dialog.route_set][0] == "sip:p2.example.com;lr"
    bye = parse_message(
        INVITE.replace(b"INVITE sip", b"BYE sip")
        .replace(b"1 INVITE", b"2 BYE")
        .replace(
            b"To: Bob <sip:bob@biloxi.example.com>",
            b"To: <sip:bob@biloxi.example.com>;tag=localtag",
        )
    )
    assert isinstance(bye, SipRequest)
    assert dialog.matches(bye)
    dialog.receive_request(bye)
    assert dialog.remote_seq == 2
    with pytest.raises(RemoteProtocolError):
        dialog.receive_request(bye)  # same CSeq again: out of order (answer 500)
    ours = dialog.create_request("BYE")
    assert ours.from_.tag == "localtag" and ours.to.tag == "9fxced76sl"


def test_uac_dialog_needs_to_tag() -> None:
    invite = _invite()
    response = make_response(invite, 200)
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uac_response(invite, response)


def test_2xx_retransmitted_at_t1_doubling_to_t2_until_64t1() -> None:
    invite = _invite()
    retx = Uas2xxRetransmitter(_ok(invite), reliable=False, started=100.0, timers=TimerConfig())
    sent: list[float] = []
    now = 100.0
    while True:
        deadline = retx.get_timer()
        assert deadline is not None
        now = deadline
        resend, give_up = retx.handle_timer(now)
        if resend:
            sent.append(round(now - 100.0, 3))
        if give_up:
            break
    assert sent[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]  # intervals 0.5, 1, 2, 4, 4, 4 (T2)
    assert now == 132.0  # 64×T1: no ACK, give up (and BYE)


def test_2xx_retransmitter_stops_on_ack_and_is_silent_on_tcp() -> None:
    invite = _invite()
    retx = Uas2xxRetransmitter(_ok(invite), reliable=False, started=0.0)
    retx.ack()
    assert retx.get_timer() is None
    tcp = Uas2xxRetransmitter(_ok(invite), reliable=True, started=0.0)
    assert tcp.get_timer() == 32.0
    assert tcp.handle_timer(1.0) == (False, False)
    assert tcp.handle_timer(32.0) == (False, True)
