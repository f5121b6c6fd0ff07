"""Dialogs for UAC and UAS (RFC 3261 §12) and the 2xx/ACK reliability of INVITE (§13.3.1.4).

A :class:`Dialog` is the peer-to-peer relationship an INVITE creates: it owns the
Call-ID and tags, both CSeq spaces, the remote target and the route set, and it builds
every in-dialog request (ACK for 2xx, BYE, re-INVITE, INFO, REFER …). Nothing here
touches a socket or a clock.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import LocalProtocolError, RemoteProtocolError, SipParseError
from .message import Headers, SipRequest, SipResponse
from .transaction import TimerConfig
from .uri import NameAddr, SipUri, Uri, has_param

USER_AGENT = "dialflow/0.1"


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(slots=True)
class Dialog:
    """One dialog's state (RFC 3261 §12.1)."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr
    remote_uri: NameAddr
    remote_target: Uri
    local_contact: NameAddr
    route_set: list[NameAddr] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    secure: bool = False
    state: DialogState = DialogState.EARLY
    is_uac: bool = True

    def __repr__(self) -> str:
        role = "uac" if self.is_uac else "uas"
        return (
            f"<Dialog {role} {self.state.value} call_id={self.call_id} "
            f"local={self.local_tag} remote={self.remote_tag}>"
        )

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    # -- creation

    @classmethod
    def from_uac_response(cls, invite: SipRequest, response: SipResponse) -> Dialog:
        """The UAC side, from a 1xx-with-tag or 2xx to our INVITE (§12.1.2)."""
        to = response.to
        if to.tag is None:
            raise RemoteProtocolError("dialog-forming response without To tag")
        contacts = response.contacts
        local_from = invite.from_
        if local_from.tag is None:
            raise LocalProtocolError("INVITE without From tag")
        # A 1xx without Contact can still form an early dialog; its target is refreshed later.
        target: Uri = contacts[0].uri if contacts else invite.uri or to.uri
        invite_contacts = invite.contacts
        local_contact = invite_contacts[0] if invite_contacts else local_from
        return cls(
            call_id=invite.call_id,
            local_tag=local_from.tag,
            remote_tag=to.tag,
            local_uri=local_from,
            remote_uri=to,
            remote_target=target,
            local_contact=local_contact,
            # §12.1.2: the UAC's route set is the Record-Route in reverse order.
            route_set=list(reversed(response.record_route)),
            local_seq=invite.cseq.seq,
            remote_seq=None,
            secure=isinstance(invite.uri, SipUri) and invite.uri.scheme == "sips",
            state=DialogState.CONFIRMED if response.is_success else DialogState.EARLY,
            is_uac=True,
        )

    @classmethod
    def from_uas_request(
        cls, request: SipRequest, local_tag: str, local_contact: NameAddr
    ) -> Dialog:
        """The UAS side, when we send a dialog-forming response to ``request`` (§12.1.1)."""
        from_ = request.from_
        if from_.tag is None:
            # RFC 3261 §12.1.1 wants a From tag; RFC 2543 peers may lack one.
            raise RemoteProtocolError("request without From tag")
        contacts = request.contacts
        if not contacts:
            raise RemoteProtocolError("dialog-forming request without Contact")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=from_.tag,
            local_uri=request.to.with_tag(local_tag),
            remote_uri=from_,
            remote_target=contacts[0].uri,
            local_contact=local_contact,
            route_set=request.record_route,
            local_seq=random.randint(1, 2**16),
            remote_seq=request.cseq.seq,
            secure=isinstance(request.uri, SipUri) and request.uri.scheme == "sips",
            state=DialogState.EARLY,
            is_uac=False,
        )

    # -- updates

    def confirm(self) -> None:
        if self.state is DialogState.EARLY:
            self.state = DialogState.CONFIRMED

    def terminate(self) -> None:
        self.state = DialogState.TERMINATED

    def update_from_response(self, response: SipResponse) -> None:
        """Target refresh from a 2xx (or reliable 1xx) to an in-dialog request (§12.2.1.2)."""
        contacts = response.contacts
        if contacts and response.cseq.method in ("INVITE", "UPDATE"):
            self.remote_target = contacts[0].uri
        if self.is_uac and self.state is DialogState.EARLY and response.is_success:
            # §12.1.2: the route set is fixed by the 2xx, not by early responses.
            self.route_set = list(reversed(response.record_route))
            if contacts:
                self.remote_target = contacts[0].uri
            self.state = DialogState.CONFIRMED

    def receive_request(self, request: SipRequest) -> None:
        """Check and record an in-dialog request's CSeq (§12.2.2).

        Raises :class:`RemoteProtocolError` for an out-of-order request: the UAS answers
        it with 500 Server Internal Error, as the RFC says.
        """
        seq = request.cseq.seq
        if request.method == "ACK" or request.method == "CANCEL":
            return
        if self.remote_seq is not None and seq <= self.remote_seq:
            raise RemoteProtocolError(f"CSeq {seq} not above {self.remote_seq}")
        self.remote_seq = seq
        if request.method in ("INVITE", "UPDATE"):
            contacts = request.contacts
            if contacts:
                self.remote_target = contacts[0].uri

    def matches(self, message: SipRequest | SipResponse) -> bool:
        """Whether an incoming message belongs to this dialog (§12.2.2)."""
        try:
            if message.call_id != self.call_id:
                return False
            if isinstance(message, SipRequest):
                return message.to.tag == self.local_tag and message.from_.tag == self.remote_tag
            return message.from_.tag == self.local_tag and message.to.tag == self.remote_tag
        except SipParseError:
            return False

    # -- building requests

    def next_cseq(self) -> int:
        self.local_seq += 1
        return self.local_seq

    def create_request(
        self,
        method: str,
        *,
        cseq: int | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        extra_headers: Iterable[tuple[str, str]] = (),
    ) -> SipRequest:
        """Build an in-dialog request (§12.2.1.1) without Via: the sender adds it.

        ``cseq`` defaults to the next local sequence number; the ACK for a 2xx must pass
        the INVITE's number instead (§13.2.2.4).
        """
        if self.state is DialogState.TERMINATED and method not in ("ACK", "BYE"):
            raise LocalProtocolError(f"{method} on a terminated dialog")
        seq = cseq if cseq is not None else self.next_cseq()
        request_uri: Uri
        routes: list[NameAddr]
        if not self.route_set:
            request_uri, routes = self.remote_target, []
        elif has_param(
            self.route_set[0].uri.params if isinstance(self.route_set[0].uri, SipUri) else {}, "lr"
        ):
            request_uri, routes = self.remote_target, list(self.route_set)
        else:
            # §12.2.1.1 strict routing: the first route becomes the Request-URI and the
            # remote target goes to the end of the Route list.
            request_uri = self.route_set[0].uri
            routes = [*self.route_set[1:], NameAddr(uri=self.remote_target)]
        headers = Headers()
        for route in routes:
            headers.add("Route", str(route))
        headers.add("Max-Forwards", "70")
        headers.add("From", str(self.local_uri))
        headers.add("To", str(self.remote_uri))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{seq} {method}")
        if method in ("INVITE", "UPDATE", "SUBSCRIBE", "REFER", "NOTIFY"):
            headers.add("Contact", str(self.local_contact))
        headers.add("User-Agent", USER_AGENT)
        for name, value in extra_headers:
            headers.add(name, value)
        if body:
            headers.add("Content-Type", content_type or "application/sdp")
        return SipRequest(headers=headers, body=body, method=method, uri=request_uri)

    def create_ack(self, invite: SipRequest) -> SipRequest:
        """The ACK for a 2xx to ``invite`` (§13.2.2.4): same CSeq number, new transaction."""
        credentials = [
            (name, value)
            for name, value in invite.headers
            if name in ("Authorization", "Proxy-Authorization")
        ]
        return self.create_request("ACK", cseq=invite.cseq.seq, extra_headers=credentials)


def next_hop(request: SipRequest) -> tuple[str, int, str]:
    """Where to send ``request``: host, port and transport (RFC 3261 §8.1.2, RFC 3263 §4).

    The first Route if there is one, else the Request-URI; ``maddr`` overrides the host.
    Names are resolved by the caller (A/AAAA); SRV look-ups are not done.
    """
    routes = request.headers.get_all("Route")
    target: Uri | None
    if routes:
        from .uri import parse_name_addr

        target = parse_name_addr(routes[0]).uri
    else:
        target = request.uri
    if not isinstance(target, SipUri):
        raise LocalProtocolError(f"cannot route to {target}")
    host = target.param("maddr") or target.host_no_brackets
    return host, target.effective_port, target.transport


@dataclass(slots=True)
class Uas2xxRetransmitter:
    """Resends our 2xx to an INVITE until the ACK comes (RFC 3261 §13.3.1.4).

    Over UDP the 2xx is the UAS core's to retransmit (the transaction is gone once it
    passes the 2xx): at T1, doubling up to T2, giving up after 64×T1 and ending the
    dialog with a BYE. Over TCP nothing is resent but the ACK deadline still holds.
    """

    response: SipResponse
    reliable: bool
    started: float
    timers: TimerConfig = field(default_factory=TimerConfig)
    acked: bool = False
    _interval: float = 0.0
    _next: float | None = None

    def __post_init__(self) -> None:
        self._interval = self.timers.t1
        self._next = None if self.reliable else self.started + self._interval

    @property
    def deadline(self) -> float:
        return self.started + 64 * self.timers.t1

    def get_timer(self) -> float | None:
        if self.acked:
            return None
        if self._next is None:
            return self.deadline
        return min(self._next, self.deadline)

    def handle_timer(self, now: float) -> tuple[bool, bool]:
        """Returns (resend the 2xx now, give up: no ACK in time)."""
        if self.acked:
            return False, False
        if now >= self.deadline:
            return False, True
        if self._next is not None and now >= self._next:
            self._interval = min(self._interval * 2, self.timers.t2)
            self._next = now + self._interval
            return True, False
        return False, False

    def ack(self) -> None:
        self.acked = True
