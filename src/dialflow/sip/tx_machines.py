"""The four SIP transaction state machines, sans-I/O (RFC 3261 §17, RFC 6026 Accepted states).

Import them from :mod:`dialflow.sip.transaction`, the public face of the layer.

A transaction is a state machine fed with messages and the current time; it never
sends or sleeps. What it wants sent goes to ``output.sends`` as ``(message, address)``
pairs and what the TU must know goes to ``output.events``; :meth:`get_timer` tells when
it next needs :meth:`handle_timer`. Normally the
:class:`~dialflow.sip.transaction.TransactionLayer` owns the transactions, matches messages
to them and shares one output between all of them; a transaction can also be driven on
its own (the unit tests do).

Reliable transports (TCP) turn off the retransmission timers (A, E, G) and zero the
wait timers (D, I, J, K): a reliable transaction terminates as soon as it completes.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING

from .errors import LocalProtocolError
from .message import Headers, SipMessage, SipRequest, SipResponse, make_response
from .timers import Timer, TimerConfig
from .tx_events import (
    AckReceived,
    Address,
    ResponseReceived,
    TransactionEvent,
    TransactionTerminated,
    TransactionTimeout,
    TransportFailed,
)
from .uri import Via, parse_via, split_quoted

if TYPE_CHECKING:
    from .uri import Uri

DEFAULT_TIMERS = TimerConfig()


def first_via(message: SipMessage) -> str:
    """The top Via value as text, splitting a comma-combined line only when it has one
    (the common single-value line then costs no character-by-character scan)."""
    value = message.headers.get("Via")
    if value is None:
        raise LocalProtocolError(f"{message!r} has no Via header")
    return split_quoted(value, ",")[0].strip() if "," in value else value


def top_via(message: SipMessage) -> Via:
    """The parsed top Via of ``message`` (as ``message.top_via``, but cheaper)."""
    return parse_via(first_via(message))


class TransactionState(enum.Enum):
    """The states of the four transaction machines (RFC 3261 Figures 5-8, RFC 6026 §7-8).

    Client INVITE: Calling → Proceeding → Completed | Accepted → Terminated.
    Client non-INVITE: Trying → Proceeding → Completed → Terminated.
    Server INVITE: Proceeding → Completed → Confirmed | Accepted → Terminated.
    Server non-INVITE: Trying → Proceeding → Completed → Terminated.
    """

    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


class TransactionOutput:
    """Where transactions put what they want sent and what they report.

    The layer gives one to all its transactions and drains it; a transaction made on its
    own gets a private one.
    """

    __slots__ = ("events", "sends")

    def __init__(self) -> None:
        self.sends: list[tuple[SipMessage, Address]] = []
        self.events: deque[TransactionEvent] = deque()


class Transaction:
    """What the four transaction machines share: the request, where it goes, the timers.

    ``address`` is where this transaction sends: the next hop for a client transaction,
    the response address (RFC 3261 §18.2.2) for a server one. ``user_data`` is the TU's to
    use (for instance, the dialog a transaction belongs to).
    """

    __slots__ = (
        "_deadlines",
        "_out",
        "_scheduled",
        "address",
        "branch",
        "key",
        "method",
        "reliable",
        "request",
        "state",
        "timers",
        "user_data",
    )

    def __init__(
        self,
        request: SipRequest,
        address: Address,
        *,
        state: TransactionState,
        reliable: bool,
        timers: TimerConfig,
        output: TransactionOutput | None,
    ) -> None:
        self.request = request
        self.address = address
        self.reliable = reliable
        self.timers = timers
        self.state = state
        self.method = request.method
        self.branch: str | None = top_via(request).branch
        self.user_data: object = None
        # Set by the layer that matches messages to this transaction (RFC 3261 §17.1.3, §17.2.3).
        self.key: tuple[str | int, ...] | None = None
        self._out = output if output is not None else TransactionOutput()
        self._deadlines: dict[Timer, float] = {}
        # The deadline the layer last pushed on its heap for us (lazy deletion there).
        self._scheduled: float | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.branch} {self.state.value}>"

    @property
    def output(self) -> TransactionOutput:
        return self._out

    @property
    def terminated(self) -> bool:
        return self.state is TransactionState.TERMINATED

    def get_timer(self) -> float | None:
        """The earliest deadline of the running timers, or None."""
        return min(self._deadlines.values()) if self._deadlines else None

    def timer_deadline(self, timer: Timer) -> float | None:
        """When ``timer`` fires, or None if it is not running."""
        return self._deadlines.get(timer)

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``, earliest first (a timeout before a retransmit
        due at the same instant, so a dead transaction does not send once more)."""
        deadlines = self._deadlines
        while deadlines:
            timer = min(deadlines, key=lambda t: (deadlines[t], not t.is_timeout))
            if deadlines[timer] > now:
                return
            del deadlines[timer]
            self._fire(timer, now)

    def transport_error(self, now: float) -> None:
        """The transport failed to send for us (RFC 3261 §17.1.4, §17.2.4): inform the TU
        and terminate."""
        if not self.terminated:
            self._out.events.append(TransportFailed(self))
            self._terminate()

    # -- for the subclasses

    def _fire(self, timer: Timer, now: float) -> None:
        raise NotImplementedError

    def _send(self, message: SipMessage) -> None:
        self._out.sends.append((message, self.address))

    def _arm(self, timer: Timer, now: float, duration: float) -> None:
        self._deadlines[timer] = now + duration

    def _stop(self, *timers: Timer) -> None:
        for timer in timers:
            self._deadlines.pop(timer, None)

    def _wait(self, timer: Timer, now: float, duration: float) -> None:
        """Arm a wait timer, or terminate at once when it is zero (reliable transports)."""
        if duration > 0:
            self._arm(timer, now, duration)
        else:
            self._terminate()

    def _timeout(self, timer: Timer) -> None:
        self._out.events.append(TransactionTimeout(self, timer))
        self._terminate()

    def _terminate(self) -> None:
        self.state = TransactionState.TERMINATED
        self._deadlines.clear()
        self._out.events.append(TransactionTerminated(self))


class InviteClientTransaction(Transaction):
    """The INVITE client transaction (RFC 3261 §17.1.1, RFC 6026 §8.4).

    Calling: the INVITE is retransmitted on Timer A (T1, doubling, UDP only) until a
    response or Timer B (64*T1). A non-2xx final is ACKed here (§17.1.1.3) and so is each
    retransmission of it during Timer D. A 2xx moves to Accepted, where 2xx responses
    (retransmissions, other forks) go up to the TU, which ACKs them as a dialog, until
    Timer M (64*T1). Create it, then :meth:`start` it.
    """

    __slots__ = ("_interval", "ack", "cancelled", "response")

    def __init__(
        self,
        request: SipRequest,
        address: Address,
        *,
        reliable: bool = False,
        timers: TimerConfig = DEFAULT_TIMERS,
        output: TransactionOutput | None = None,
    ) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError(f"an INVITE client transaction cannot send {request.method}")
        super().__init__(
            request,
            address,
            state=TransactionState.CALLING,
            reliable=reliable,
            timers=timers,
            output=output,
        )
        self._interval = timers.t1
        self.response: SipResponse | None = None
        self.ack: SipRequest | None = None
        # True once the TU cancelled (the CANCEL may still be held, RFC 3261 §9.1).
        self.cancelled = False

    def start(self, now: float) -> None:
        """Send the INVITE and start Timers A (UDP) and B (§17.1.1.2)."""
        self._send(self.request)
        if not self.reliable:
            self._arm(Timer.A, now, self._interval)
        self._arm(Timer.B, now, self.timers.timeout)

    def receive_response(self, response: SipResponse, now: float) -> None:
        """A response matched to this transaction (§17.1.3)."""
        state = self.state
        status = response.status
        if state is TransactionState.CALLING or state is TransactionState.PROCEEDING:
            self.response = response
            if status < 200:
                # §17.1.1.2: a provisional stops the retransmissions; Timer B only
                # applies in Calling.
                self.state = TransactionState.PROCEEDING
                self._stop(Timer.A, Timer.B)
                self._pass_up(response)
            elif status < 300:
                # RFC 6026 §8.4: Accepted absorbs nothing; 2xx keep going to the TU.
                self.state = TransactionState.ACCEPTED
                self._stop(Timer.A, Timer.B, Timer.CANCEL)
                self._arm(Timer.M, now, self.timers.timeout)
                self._pass_up(response)
            else:
                self.state = TransactionState.COMPLETED
                self._stop(Timer.A, Timer.B, Timer.CANCEL)
                self.ack = build_non2xx_ack(self.request, response)
                self._send(self.ack)
                self._pass_up(response)
                self._wait(Timer.D, now, self.timers.timer_d(self.reliable))
        elif state is TransactionState.COMPLETED:
            # §17.1.1.2: a retransmitted final is ACKed again and not passed up.
            if status >= 300 and self.ack is not None:
                self._send(self.ack)
        elif state is TransactionState.ACCEPTED:
            if 200 <= status < 300:
                self._pass_up(response)

    def cancel_sent(self, now: float) -> None:
        """A CANCEL for this INVITE went out: RFC 3261 §9.1 gives the INVITE 64*T1 more
        to end with a final response, after which the transaction is given up."""
        self.cancelled = True
        if self.state in (TransactionState.CALLING, TransactionState.PROCEEDING):
            if Timer.CANCEL not in self._deadlines:
                self._arm(Timer.CANCEL, now, self.timers.timeout)

    def _pass_up(self, response: SipResponse) -> None:
        self._out.events.append(ResponseReceived(response, self))

    def _fire(self, timer: Timer, now: float) -> None:
        if timer is Timer.A:
            if self.state is TransactionState.CALLING:
                self._send(self.request)
                self._interval = self.timers.next_interval(self._interval, capped=False)
                self._arm(Timer.A, now, self._interval)
        elif timer is Timer.B or timer is Timer.CANCEL:
            self._timeout(timer)
        elif timer is Timer.D or timer is Timer.M:
            self._terminate()


class NonInviteClientTransaction(Transaction):
    """The non-INVITE client transaction (RFC 3261 §17.1.2).

    Trying: retransmit on Timer E (T1, doubling up to T2; UDP only); once a provisional
    arrived (Proceeding), every T2. Timer F (64*T1) gives up. A final response moves to
    Completed, which absorbs retransmitted responses for Timer K (T4 on UDP, 0 on TCP).
    Create it, then :meth:`start` it.
    """

    __slots__ = ("_interval", "response", "started")

    def __init__(
        self,
        request: SipRequest,
        address: Address,
        *,
        reliable: bool = False,
        timers: TimerConfig = DEFAULT_TIMERS,
        output: TransactionOutput | None = None,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(
                f"a non-INVITE client transaction cannot send {request.method}"
            )
        super().__init__(
            request,
            address,
            state=TransactionState.TRYING,
            reliable=reliable,
            timers=timers,
            output=output,
        )
        self._interval = timers.t1
        self.response: SipResponse | None = None
        self.started = False

    def start(self, now: float) -> None:
        """Send the request and start Timers E (UDP) and F (§17.1.2.2)."""
        self.started = True
        self._send(self.request)
        if not self.reliable:
            self._arm(Timer.E, now, self._interval)
        self._arm(Timer.F, now, self.timers.timeout)

    def abandon(self) -> None:
        """Terminate without ever sending (a held CANCEL whose INVITE ended first)."""
        if not self.started and not self.terminated:
            self._terminate()

    def receive_response(self, response: SipResponse, now: float) -> None:
        """A response matched to this transaction (§17.1.3)."""
        if self.state is TransactionState.TRYING or self.state is TransactionState.PROCEEDING:
            self.response = response
            if response.status < 200:
                self.state = TransactionState.PROCEEDING
            else:
                self.state = TransactionState.COMPLETED
                self._stop(Timer.E, Timer.F)
            self._out.events.append(ResponseReceived(response, self))
            if self.state is TransactionState.COMPLETED:
                self._wait(Timer.K, now, self.timers.timer_k(self.reliable))
        # Completed: §17.1.2.2 absorbs retransmitted responses.

    def _fire(self, timer: Timer, now: float) -> None:
        if timer is Timer.E:
            self._send(self.request)
            if self.state is TransactionState.PROCEEDING:
                self._interval = self.timers.t2
            else:
                self._interval = self.timers.next_interval(self._interval, capped=True)
            self._arm(Timer.E, now, self._interval)
        elif timer is Timer.F:
            self._timeout(timer)
        elif timer is Timer.K:
            self._terminate()


class InviteServerTransaction(Transaction):
    """The INVITE server transaction (RFC 3261 §17.2.1, RFC 6026 §7.1).

    Proceeding: INVITE retransmissions are answered with the latest provisional; if the
    TU has not answered within 200 ms a 100 Trying goes out on its own (when started with
    ``auto_trying``). A non-2xx final moves to Completed: it is retransmitted on Timer G
    (T1 doubling to T2, UDP only) until the ACK (→ Confirmed, Timer I) or Timer H (64*T1,
    reported as a timeout). A 2xx moves to Accepted (Timer L, 64*T1): 2xx retransmission
    is the TU's job, sent through :meth:`send_response`; an ACK that matches is passed up.
    """

    __slots__ = ("_interval", "last_response", "source")

    def __init__(
        self,
        request: SipRequest,
        address: Address,
        *,
        source: Address | None = None,
        reliable: bool = False,
        timers: TimerConfig = DEFAULT_TIMERS,
        output: TransactionOutput | None = None,
    ) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError(f"an INVITE server transaction cannot take {request.method}")
        super().__init__(
            request,
            address,
            state=TransactionState.PROCEEDING,
            reliable=reliable,
            timers=timers,
            output=output,
        )
        self.source = source if source is not None else address
        self._interval = timers.t1
        self.last_response: SipResponse | None = None

    def start(self, now: float, *, auto_trying: bool = True) -> None:
        """Begin; with ``auto_trying``, arm the §17.2.1 200 ms 100 Trying timer."""
        if auto_trying:
            self._arm(Timer.TRYING, now, self.timers.trying_delay)

    def send_trying(self) -> None:
        """Send 100 Trying now (RFC 3261 §17.2.1; Timestamp copied per §8.2.6.1)."""
        timestamp = self.request.headers.get("Timestamp")
        extra = [("Timestamp", timestamp)] if timestamp is not None else []
        self.last_response = make_response(self.request, 100, headers=extra)
        self._send(self.last_response)

    def receive_request(self, request: SipRequest, source: Address, now: float) -> None:
        """A retransmitted INVITE or an ACK matched to this transaction (§17.2.3)."""
        state = self.state
        if request.method == "ACK":
            if state is TransactionState.COMPLETED:
                self.state = TransactionState.CONFIRMED
                self._stop(Timer.G, Timer.H)
                self._wait(Timer.I, now, self.timers.timer_i(self.reliable))
            elif state is TransactionState.ACCEPTED:
                self._out.events.append(AckReceived(request, source))
            # Confirmed absorbs ACK retransmissions; an ACK before any final is junk.
        elif state is TransactionState.PROCEEDING or state is TransactionState.COMPLETED:
            # §17.2.1: a retransmitted INVITE gets the most recent response again.
            if self.last_response is not None:
                self._send(self.last_response)
        # Confirmed and Accepted absorb INVITE retransmissions (RFC 6026 §7.1).

    def send_response(self, response: SipResponse, now: float) -> None:
        """Send a response from the TU. Raises :class:`LocalProtocolError` if the state
        does not allow it (anything after a non-2xx final, a non-2xx after a 2xx)."""
        state = self.state
        status = response.status
        if state is TransactionState.PROCEEDING:
            self._stop(Timer.TRYING)
            self.last_response = response
            self._send(response)
            if 200 <= status < 300:
                self.state = TransactionState.ACCEPTED
                self._arm(Timer.L, now, self.timers.timeout)
            elif status >= 300:
                self.state = TransactionState.COMPLETED
                if not self.reliable:
                    self._arm(Timer.G, now, self._interval)
                self._arm(Timer.H, now, self.timers.timeout)
        elif state is TransactionState.ACCEPTED and 200 <= status < 300:
            # RFC 6026 §7.1: 2xx retransmissions (and 2xx from the TU) go out.
            self.last_response = response
            self._send(response)
        else:
            raise LocalProtocolError(f"cannot send {status} in state {state.value} of {self!r}")

    def _fire(self, timer: Timer, now: float) -> None:
        if timer is Timer.TRYING:
            if self.state is TransactionState.PROCEEDING and self.last_response is None:
                self.send_trying()
        elif timer is Timer.G:
            if self.last_response is not None:
                self._send(self.last_response)
            self._interval = self.timers.next_interval(self._interval, capped=True)
            self._arm(Timer.G, now, self._interval)
        elif timer is Timer.H:
            self._timeout(timer)
        elif timer is Timer.I or timer is Timer.L:
            self._terminate()


class NonInviteServerTransaction(Transaction):
    """The non-INVITE server transaction (RFC 3261 §17.2.2).

    Retransmitted requests are answered with the last response sent (none in Trying).
    After a final response, Completed absorbs retransmissions for Timer J (64*T1 on
    UDP, 0 on TCP). Non-INVITE servers never retransmit on their own.
    """

    __slots__ = ("last_response", "source")

    def __init__(
        self,
        request: SipRequest,
        address: Address,
        *,
        source: Address | None = None,
        reliable: bool = False,
        timers: TimerConfig = DEFAULT_TIMERS,
        output: TransactionOutput | None = None,
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(
                f"a non-INVITE server transaction cannot take {request.method}"
            )
        super().__init__(
            request,
            address,
            state=TransactionState.TRYING,
            reliable=reliable,
            timers=timers,
            output=output,
        )
        self.source = source if source is not None else address
        self.last_response: SipResponse | None = None

    def receive_request(self, request: SipRequest, source: Address, now: float) -> None:
        """A retransmission of the request (§17.2.2): re-send the last response, if any."""
        if self.last_response is not None and self.state in (
            TransactionState.PROCEEDING,
            TransactionState.COMPLETED,
        ):
            self._send(self.last_response)

    def send_response(self, response: SipResponse, now: float) -> None:
        """Send a response from the TU; after a final, more raise :class:`LocalProtocolError`
        (§17.2.2 says to discard them; the TU asking is a bug worth seeing)."""
        if self.state not in (TransactionState.TRYING, TransactionState.PROCEEDING):
            raise LocalProtocolError(
                f"cannot send {response.status} in state {self.state.value} of {self!r}"
            )
        self.last_response = response
        self._send(response)
        if response.status < 200:
            self.state = TransactionState.PROCEEDING
        else:
            self.state = TransactionState.COMPLETED
            self._wait(Timer.J, now, self.timers.timer_j(self.reliable))

    def _fire(self, timer: Timer, now: float) -> None:
        if timer is Timer.J:
            self._terminate()


ClientTransaction = InviteClientTransaction | NonInviteClientTransaction
ServerTransaction = InviteServerTransaction | NonInviteServerTransaction


def _copy(headers: Headers, source: SipMessage, name: str) -> None:
    value = source.headers.get(name)
    if value is None:
        raise LocalProtocolError(f"{source!r} has no {name} header")
    headers.add(name, value)


def _in_dialog_request(
    method: str, uri: Uri | None, invite: SipRequest, to_source: SipMessage
) -> SipRequest:
    """The headers ACK (non-2xx) and CANCEL share: the INVITE's top Via only, its Route
    set, From, Call-ID and CSeq number; To from ``to_source``."""
    headers = Headers()
    headers.add("Via", first_via(invite))
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    _copy(headers, invite, "From")
    _copy(headers, to_source, "To")
    _copy(headers, invite, "Call-ID")
    headers.add("CSeq", f"{invite.cseq.seq} {method}")
    return SipRequest(headers=headers, method=method, uri=uri)


def build_non2xx_ack(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK for a 300-699 final response to ``invite`` (RFC 3261 §17.1.1.3).

    Same Request-URI, Call-ID, From and top Via (so the same branch: it belongs to the
    INVITE transaction) as the INVITE; To from the response, with its tag; CSeq number of
    the INVITE with method ACK; the INVITE's Route headers.
    """
    return _in_dialog_request("ACK", invite.uri, invite, response)


def build_cancel(invite: SipRequest) -> SipRequest:
    """A CANCEL for ``invite`` (RFC 3261 §9.1).

    Same Request-URI, Call-ID, To, From and CSeq number (method CANCEL) as the INVITE,
    and a single Via equal to its top Via, so the CANCEL has the INVITE's branch and
    matches its server transaction; Route headers copied. No Require or Proxy-Require.
    """
    return _in_dialog_request("CANCEL", invite.uri, invite, invite)
