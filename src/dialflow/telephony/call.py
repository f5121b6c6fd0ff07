"""Calls: the INVITE usage of a dialog, for outbound (UAC) and inbound (UAS) legs.

A call object is driven by callbacks from :class:`~dialflow.telephony.endpoint.SipEndpoint`
(responses, requests, timers); it owns no task of its own. Its owner awaits
:meth:`Call.wait_answered` / :meth:`Call.wait_ended` or subscribes to its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..media.leg import MediaLeg
from ..sip import sdp
from ..sip.auth import DigestCredentials, DigestSession
from ..sip.dialog import Dialog, DialogState, Uas2xxRetransmitter
from ..sip.errors import SipError
from ..sip.message import Headers, SipRequest, SipResponse, make_response, new_call_id, new_tag
from ..sip.uri import NameAddr, SipUri, Uri
from .events import (
    CallAnswered,
    CallConfirmed,
    CallEnded,
    CallEvent,
    CallHold,
    CallProgress,
    CallState,
    EndReason,
    HangupBy,
    end_reason_for_status,
)

if TYPE_CHECKING:
    from ..sip.transaction import ClientTransaction, ServerTransaction
    from .endpoint import SipEndpoint

log = logging.getLogger(__name__)

EventListener = Callable[[CallEvent], None]
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY"

# How long a CANCEL may take to bring the 487 before we end the call anyway.
CANCEL_GRACE = 8.0


class Call:
    """What outbound and inbound calls share: state, dialog, media leg and events."""

    direction = "outbound"

    def __init__(self, endpoint: SipEndpoint, call_id: str) -> None:
        self.endpoint = endpoint
        self.call_id = call_id
        self.state = CallState.NEW
        self.dialog: Dialog | None = None
        self.leg: MediaLeg | None = None
        self.media: sdp.NegotiatedMedia | None = None
        self.final_code: int | None = None
        self.final_reason: str | None = None
        self.created_at = time.time()
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.end: CallEnded | None = None
        self.log: list[tuple[float, CallEvent]] = []
        self._listeners: list[EventListener] = []
        self._answered = asyncio.Event()
        self._ended = asyncio.Event()
        self._local_sdp_version = 1
        self._sdp_session_id = random.randint(1, 2**31)
        self._timers: list[asyncio.TimerHandle] = []
        # Set by the subclasses: how we reach the peer and our dialog tag.
        self.transport = "udp"
        self.local_tag = ""
        self._pending_2xx: Uas2xxRetransmitter | None = None  # our 2xx awaiting its ACK
        self._confirmed = False  # inbound: the ACK for our 2xx arrived
        self._offer_sent: bytes | None = None  # the SDP offer we made (outbound, delayed offer)
        self._built_offer: sdp.SessionDescription | None = None  # the last offer we built
        self._ack_sent: tuple[SipRequest, tuple[str, int]] | None = None  # for 2xx resends

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.call_id} {self.state.value}>"

    # -- observation

    def on_event(self, listener: EventListener) -> None:
        self._listeners.append(listener)

    def _emit(self, event: CallEvent) -> None:
        self.log.append((time.time(), event))
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # one bad listener must not break the call
                log.exception("call event listener failed")

    async def wait_answered(self, timeout: float | None = None) -> bool:
        """True once answered; False if the call ended first (or the timeout passed)."""
        # _finish sets _answered too, so one event covers both outcomes: no tasks of their
        # own (two per call placed) and no asyncio.wait.
        if timeout is None:
            await self._answered.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answered.wait(), timeout)
        return self._answered.is_set() and not (self._ended.is_set() and self.answered_at is None)

    async def wait_ended(self, timeout: float | None = None) -> CallEnded:
        await asyncio.wait_for(self._ended.wait(), timeout)
        assert self.end is not None
        return self.end

    @property
    def is_answered(self) -> bool:
        return self.answered_at is not None

    @property
    def is_ended(self) -> bool:
        return self.state is CallState.ENDED

    # -- shared mechanics

    def _later(self, delay: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        handle = asyncio.get_running_loop().call_later(delay, fn)
        self._timers.append(handle)
        return handle

    def _local_sdp(self, offer: sdp.SessionDescription | None = None) -> bytes:
        assert self.leg is not None
        host = self.endpoint.media_host
        self._local_sdp_version += 1
        if offer is None:
            desc = sdp.build_offer(
                host,
                self.leg.local_port,
                session_id=self._sdp_session_id,
                version=self._local_sdp_version,
            )
            self._built_offer = desc
            return desc.serialize()
        answer, negotiated = sdp.build_answer(
            offer,
            host,
            self.leg.local_port,
            session_id=self._sdp_session_id,
            version=self._local_sdp_version,
        )
        self._apply_media(negotiated)
        return answer.serialize()

    def _apply_media(self, media: sdp.NegotiatedMedia) -> None:
        """Start the leg on first negotiation; later ones (re-INVITE, hold) update it."""
        assert self.leg is not None
        first = self.media is None
        self.media = media
        remote = (media.remote_addr, media.remote_port)
        if first:
            self.leg.start(remote, media.payload_type, media.dtmf_payload_type)
        else:
            self.leg.update_remote(
                remote, media.payload_type, media.dtmf_payload_type, on_hold=media.on_hold
            )

    def _mark_answered(self, code: int) -> None:
        self.state = CallState.ANSWERED
        self.answered_at = time.time()
        self._answered.set()
        self._emit(CallAnswered(code))

    def _finish(
        self,
        reason: EndReason,
        hangup_by: HangupBy | None,
        *,
        code: int | None = None,
        sip_reason: str | None = None,
        error: str | None = None,
    ) -> None:
        if self.state is CallState.ENDED:
            return
        self.state = CallState.ENDED
        self.ended_at = time.time()
        if code is not None:
            self.final_code, self.final_reason = code, sip_reason
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self.dialog is not None:
            self.dialog.terminate()
        self.end = CallEnded(reason, hangup_by, code, sip_reason, error)
        self._emit(self.end)
        # The endpoint keeps a finished call routable for 32 s (late ACKs, BYE resends);
        # its listeners hold the session and flow run, which must not live that long.
        self._listeners.clear()
        self._ended.set()
        self._answered.set()  # wake waiters; wait_answered checks answered_at
        self.endpoint._call_finished(self)
        if self.leg is not None:
            leg, self.leg = self.leg, None
            self.endpoint.spawn(leg.close(), name=f"close-leg-{self.call_id}")

    def _send_bye(self) -> None:
        assert self.dialog is not None
        bye = self.dialog.create_request("BYE")
        self.endpoint.send_in_dialog(self, bye, lambda _ev: None)

    async def hangup(self) -> None:
        """End the call from our side: BYE when answered, CANCEL or reject before."""
        if self.state is CallState.ENDED:
            return
        if self.is_answered:
            self._send_bye()
            self._finish(EndReason.COMPLETED, HangupBy.LOCAL)
        else:
            await self._end_unanswered()

    async def _end_unanswered(self) -> None:
        raise NotImplementedError

    # -- in-dialog requests (both directions)

    def on_in_dialog_request(self, request: SipRequest, server_tx: ServerTransaction) -> None:
        assert self.dialog is not None
        try:
            self.dialog.receive_request(request)
        except SipError as exc:
            # RFC 3261 §12.2.2: a lower CSeq is answered 500.
            self.endpoint.respond(server_tx, make_response(request, 500, str(exc)[:60]))
            return
        method = request.method
        if method == "BYE":
            self.endpoint.respond(server_tx, make_response(request, 200))
            reason = EndReason.COMPLETED if self.is_answered else EndReason.CANCELED
            self._finish(reason, HangupBy.REMOTE)
        elif method == "INVITE":
            self._on_reinvite(request, server_tx)
        elif method == "NOTIFY":
            self.endpoint.respond(server_tx, make_response(request, 200))
            self._on_notify(request)
        elif method == "OPTIONS":
            self.endpoint.respond(server_tx, make_response(request, 200))
        elif method == "INFO":
            self._on_info(request, server_tx)
        elif method == "UPDATE":
            self.endpoint.respond(server_tx, make_response(request, 200))
        else:
            resp = make_response(request, 501)
            resp.headers.add("Allow", ALLOW)
            self.endpoint.respond(server_tx, resp)

    # -- blind transfer (RFC 3515)

    async def refer(self, target: str, timeout: float = 30.0) -> tuple[bool, str]:
        """Ask the far end to call ``target`` (REFER); True once it reports success.

        Success is a 2xx in the NOTIFY sipfrag (RFC 3515 §2.4.5), or the far end hanging
        up after accepting the REFER (peers that drop the implicit subscription).
        """
        if self.dialog is None or not self.is_answered or self.is_ended:
            return False, "the call is not up"
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[SipResponse | None] = loop.create_future()
        self._refer_result = loop.create_future()

        def on_event(event: object) -> None:
            from ..sip import transaction as txm

            if isinstance(event, txm.ResponseReceived) and event.response.status >= 200:
                if not accepted.done():
                    accepted.set_result(event.response)
            elif isinstance(event, txm.TransactionTimeout | txm.TransportFailed):
                if not accepted.done():
                    accepted.set_result(None)

        request = self.dialog.create_request(
            "REFER",
            extra_headers=[
                ("Refer-To", f"<{target}>"),
                ("Referred-By", str(self.dialog.local_uri.uri)),
            ],
        )
        self.endpoint.send_in_dialog(self, request, on_event)
        try:
            response = await asyncio.wait_for(accepted, timeout)
        except TimeoutError:
            return False, "no answer to REFER"
        if response is None:
            return False, "no answer to REFER"
        if response.status >= 300:
            return False, f"REFER refused: {response.status} {response.reason}"
        ended: asyncio.Future[Any] = asyncio.ensure_future(self._ended.wait())
        waiters: set[asyncio.Future[Any]] = {self._refer_result, ended}
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            ended.cancel()
        if self._refer_result.done():
            return self._refer_result.result()
        if self._ended.is_set():
            return True, "accepted; the far end hung up"
        return False, "no final NOTIFY for the REFER"

    _refer_result: asyncio.Future[tuple[bool, str]] | None = None

    def _on_notify(self, request: SipRequest) -> None:
        event = (request.headers.get("Event") or "").split(";", 1)[0].strip().lower()
        future = self._refer_result
        if event != "refer" or future is None or future.done():
            return
        status_line = request.body.decode("utf-8", "replace").split("\n", 1)[0].strip()
        parts = status_line.split(" ", 2)
        if len(parts) >= 2 and parts[0].upper() == "SIP/2.0" and parts[1].isdigit():
            code = int(parts[1])
            if code >= 200:
                future.set_result((200 <= code < 300, status_line))

    def _on_info(self, request: SipRequest, server_tx: ServerTransaction) -> None:
        """SIP INFO DTMF (application/dtmf-relay), which some PBXs send instead of RFC 4733."""
        self.endpoint.respond(server_tx, make_response(request, 200))
        if request.content_type in ("application/dtmf-relay", "application/dtmf") and self.leg:
            text = request.body.decode("utf-8", "replace")
            for line in text.splitlines():
                key, _, value = line.partition("=")
                if key.strip().lower() == "signal" and value.strip():
                    self.leg.inject_dtmf(value.strip()[0])
            if request.content_type == "application/dtmf" and text.strip():
                self.leg.inject_dtmf(text.strip()[0])

    def _on_reinvite(self, request: SipRequest, server_tx: ServerTransaction) -> None:
        """Answer a re-INVITE (hold, resume, new address) with the same media (RFC 3264 §8)."""
        assert self.dialog is not None and self.leg is not None
        try:
            offer = sdp.SessionDescription.parse(request.body) if request.body else None
            body = self._local_sdp(offer)
        except sdp.SdpError as exc:
            self.endpoint.respond(server_tx, make_response(request, 488, reason=None))
            log.info("re-INVITE refused on %s: %s", self.call_id, exc)
            return
        response = make_response(
            request,
            200,
            headers=[("Contact", str(self.dialog.local_contact)), ("Allow", ALLOW)],
            body=body,
        )
        response.headers.add("Content-Type", "application/sdp")
        self.endpoint.respond(server_tx, response)
        self._retransmit_2xx(response, server_tx)
        if self.media is not None:
            self._emit(CallHold(self.media.on_hold))

    def _retransmit_2xx(self, response: SipResponse, server_tx: ServerTransaction) -> None:
        """RFC 3261 §13.3.1.4 / RFC 6026: the UAS core resends its 2xx until the ACK."""
        reliable = self.endpoint.is_reliable(server_tx)
        retx = Uas2xxRetransmitter(
            response, reliable, self.endpoint.now(), self.endpoint.timer_config
        )
        self._pending_2xx = retx

        def tick() -> None:
            resend, give_up = retx.handle_timer(self.endpoint.now())
            if resend:
                self.endpoint.resend_response(server_tx, response)
            if give_up:
                log.info("no ACK for 2xx on %s, ending the call", self.call_id)
                if self.dialog is not None and self.state is not CallState.ENDED:
                    self._send_bye()
                self._finish(
                    EndReason.FAILED if not self.is_answered else EndReason.COMPLETED,
                    HangupBy.SYSTEM,
                    error="no ACK for 2xx",
                )
                return
            deadline = retx.get_timer()
            if deadline is not None:
                self._later(max(0.0, deadline - self.endpoint.now()), tick)

        first = retx.get_timer()
        if first is not None:
            self._later(max(0.0, first - self.endpoint.now()), tick)

    def on_ack(self, ack: SipRequest) -> None:
        if self._pending_2xx is not None:
            self._pending_2xx.ack()
        if self.dialog is not None and self.dialog.state is DialogState.EARLY:
            self.dialog.confirm()
        if self.direction == "inbound" and not self._confirmed:
            self._confirmed = True
            if ack.body and self.media is None and self.leg is not None:
                # Delayed offer (RFC 3261 §13.2.1): our 2xx carried the offer, the ACK the answer.
                with contextlib.suppress(sdp.SdpError):
                    offer = sdp.SessionDescription.parse(self._offer_sent or b"")
                    self._apply_media(
                        sdp.negotiate_answer(offer, sdp.SessionDescription.parse(ack.body))
                    )
            self._emit(CallConfirmed())


class OutboundCall(Call):
    """A call we place (UAC). Created by :meth:`SipEndpoint.place_call`."""

    direction = "outbound"

    def __init__(
        self,
        endpoint: SipEndpoint,
        target: Uri,
        *,
        from_user: str,
        from_display: str | None,
        proxy: SipUri | None,
        credentials: DigestCredentials | None,
        extra_headers: Mapping[str, str],
        ring_timeout: float | None,
        transport: str,
    ) -> None:
        super().__init__(endpoint, new_call_id(endpoint.contact_host))
        self.target = target
        self.proxy = proxy
        self.transport = transport
        self.from_addr = NameAddr(
            uri=SipUri(host=endpoint.contact_host, user=from_user),
            display_name=from_display,
            params={"tag": new_tag()},
        )
        self.to_addr = NameAddr(uri=target)
        self.local_tag = self.from_addr.tag or ""
        self.credentials = credentials
        self._auth = DigestSession(credentials) if credentials else None
        self.extra_headers = dict(extra_headers)
        self.ring_timeout = ring_timeout
        self.invite: SipRequest | None = None
        self._invite_tx: ClientTransaction | None = None
        self._cseq = 1
        self._provisional_seen = False
        self._cancel_reason: EndReason | None = None
        self._cancel_sent = False
        self._auth_attempts = 0
        self._destination: tuple[str, int] | None = None
        self._offer_desc: sdp.SessionDescription | None = None

    async def start(self) -> None:
        """Open the media leg and send the INVITE. Returns at once; watch the events."""
        self.leg = await self.endpoint.open_leg()
        self._offer = self._local_sdp()
        self._offer_sent = self._offer
        # For negotiating the answer: the same as parsing self._offer back, without parsing.
        self._offer_desc = self._built_offer
        self.state = CallState.CALLING
        # Requests from the far end (BYE on an early dialog, re-INVITE) are routed by our tag.
        self.endpoint._dialogs[(self.call_id, self.local_tag)] = self
        await self._send_invite([])
        if self.ring_timeout:
            self._later(self.ring_timeout, self._on_ring_timeout)

    def _build_invite(self, authorization: list[tuple[str, str]]) -> SipRequest:
        headers = Headers()
        if self.proxy is not None:
            # RFC 3261 §8.1.2: an outbound proxy is a pre-existing route set of one loose router.
            headers.add("Route", f"<{self.proxy.with_params(lr=None)}>")
        headers.add("Max-Forwards", "70")
        headers.add("From", str(self.from_addr))
        headers.add("To", str(self.to_addr))
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self._cseq} INVITE")
        headers.add("Contact", self.endpoint.local_contact_text(self.transport))
        headers.add("Allow", ALLOW)
        headers.add("Supported", "replaces")
        headers.add("User-Agent", self.endpoint.user_agent)
        for name, value in authorization:
            headers.add(name, value)
        for name, value in self.extra_headers.items():
            headers.add(name, value)
        headers.add("Content-Type", "application/sdp")
        return SipRequest(headers=headers, body=self._offer, method="INVITE", uri=self.target)

    async def _send_invite(self, authorization: list[tuple[str, str]]) -> None:
        invite = self._build_invite(authorization)
        self.invite = invite
        if self._destination is None:
            self._destination = await self.endpoint.resolve_next_hop(invite, self.transport)
        self._invite_tx = self.endpoint.send_request(
            invite, self._destination, self.transport, self._on_invite_event
        )

    # -- responses to our INVITE

    def _on_invite_event(self, event: object) -> None:
        from ..sip import transaction as txm

        if isinstance(event, txm.ResponseReceived):
            self._on_response(event.response)
        elif isinstance(event, txm.TransactionTimeout | txm.TransportFailed):
            if self.state is CallState.ENDED:
                return
            if self._cancel_reason is not None:
                self._finish(self._cancel_reason, HangupBy.LOCAL)
            else:
                self._finish(
                    EndReason.FAILED,
                    None,
                    code=408,
                    sip_reason="Request Timeout",
                    error="no response to INVITE (Timer B)",
                )

    def _on_response(self, response: SipResponse) -> None:
        code = response.status
        if response.cseq.seq != self._cseq:
            return  # a late answer to a challenged INVITE we already replaced
        if code < 200:
            self._on_provisional(response)
        elif code < 300:
            self._on_2xx(response)
        else:
            self._on_failure(response)

    def _on_provisional(self, response: SipResponse) -> None:
        code = response.status
        first = not self._provisional_seen
        if code > 100:
            self._provisional_seen = True
        if code == 100 or self.state is CallState.ENDED:
            return
        if self.invite is not None and response.to.tag and self.dialog is None:
            with contextlib.suppress(SipError):
                self.dialog = Dialog.from_uac_response(self.invite, response)
        early = False
        if response.body and response.content_type == "application/sdp" and self.media is None:
            try:
                self._apply_media(self._negotiate(response.body))
                early = True
            except sdp.SdpError as exc:
                log.info("bad early-media SDP on %s: %s", self.call_id, exc)
        if self.state is CallState.CALLING or early or first:
            self.state = CallState.RINGING
            self._emit(CallProgress(code, response.reason, early_media=early))

    def _negotiate(self, body: bytes) -> sdp.NegotiatedMedia:
        offer = self._offer_desc
        if offer is None:
            offer = self._offer_desc = sdp.SessionDescription.parse(self._offer)
        return sdp.negotiate_answer(offer, sdp.SessionDescription.parse(body))

    def _on_2xx(self, response: SipResponse) -> None:
        assert self.invite is not None
        to_tag = response.to.tag
        if self.dialog is not None and self.dialog.remote_tag == to_tag and self.is_answered:
            self._send_ack()  # a retransmitted 2xx: our ACK was lost (§13.2.2.4)
            return
        if self.is_answered or self.state is CallState.ENDED:
            # Another fork answered too, or the 2xx crossed our CANCEL: ACK it, then BYE.
            stray = Dialog.from_uac_response(self.invite, response)
            self._ack_and_bye(stray)
            return
        if self.dialog is None or self.dialog.remote_tag != to_tag:
            self.dialog = Dialog.from_uac_response(self.invite, response)
        else:
            self.dialog.update_from_response(response)
        self.dialog.confirm()
        self.final_code, self.final_reason = response.status, response.reason
        self._send_ack()
        try:
            if response.body:
                negotiated = self._negotiate(response.body)
                if self.media is None or negotiated != self.media:
                    self._apply_media(negotiated)
            elif self.media is None:
                raise sdp.SdpError("2xx without SDP answer")
        except sdp.SdpError as exc:
            self._mark_answered(response.status)
            self._send_bye()
            self._finish(
                EndReason.FAILED,
                HangupBy.SYSTEM,
                code=488,
                sip_reason="Not Acceptable Here",
                error=f"bad SDP answer: {exc}",
            )
            return
        if self._cancel_reason is not None:
            # The 2xx crossed our CANCEL (RFC 3261 §9.1): the call is up, so end it with BYE.
            self._mark_answered(response.status)
            self._send_bye()
            self._finish(EndReason.COMPLETED, HangupBy.LOCAL)
            return
        self._mark_answered(response.status)

    def _send_ack(self) -> None:
        assert self.dialog is not None and self.invite is not None
        ack = self.dialog.create_ack(self.invite)
        self.endpoint.send_ack(self, ack)

    def _ack_and_bye(self, dialog: Dialog) -> None:
        assert self.invite is not None
        self.endpoint.send_ack(self, dialog.create_ack(self.invite), dialog=dialog)
        bye = dialog.create_request("BYE")
        self.endpoint.send_in_dialog(self, bye, lambda _ev: None, dialog=dialog)

    def _on_failure(self, response: SipResponse) -> None:
        code = response.status
        if code in (401, 407) and self._auth is not None and self._auth_attempts < 3:
            header = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
            assert self.invite is not None
            # The session remembers the realm so later in-dialog requests can reuse it,
            # and says when to stop (same nonce again = wrong credentials).
            credentials = self._auth.respond(
                response.headers.get_all(header),
                "INVITE",
                str(self.invite.uri),
                body=self._offer,
                proxy=code == 407,
            )
            if credentials:
                self._auth_attempts += 1
                self._cseq += 1
                self.endpoint.spawn(self._send_invite(credentials), name="reinvite-auth")
                return
        if self.state is CallState.ENDED:
            return
        if code == 487 and self._cancel_reason is not None:
            self._finish(self._cancel_reason, HangupBy.LOCAL, code=code, sip_reason=response.reason)
            return
        self._finish(
            end_reason_for_status(code),
            HangupBy.REMOTE,
            code=code,
            sip_reason=response.reason,
            error=None if code in (486, 600) else f"{code} {response.reason}",
        )

    # -- ending

    def _on_ring_timeout(self) -> None:
        if self.state in (CallState.CALLING, CallState.RINGING):
            self.cancel(EndReason.NO_ANSWER)

    def cancel(self, reason: EndReason = EndReason.CANCELED) -> None:
        """CANCEL a call not yet answered (RFC 3261 §9.1)."""
        if self.is_answered or self.state is CallState.ENDED:
            return
        self._cancel_reason = reason
        self._send_cancel()
        if self._provisional_seen:
            # The 487 normally ends the call; don't wait forever for a silent peer.
            self._later(CANCEL_GRACE, lambda: self._finish(reason, HangupBy.LOCAL))
        else:
            # §9.1: the layer holds the CANCEL until a provisional comes. End now for the
            # owner; a late 1xx still gets the CANCEL and a late 2xx its ACK and BYE.
            self._finish(reason, HangupBy.LOCAL)

    def _send_cancel(self) -> None:
        """CANCEL the INVITE; the layer holds it back until a provisional arrives (§9.1)."""
        if self._cancel_sent or self._invite_tx is None:
            return
        self._cancel_sent = True
        self.endpoint.cancel_invite(self._invite_tx)

    async def _end_unanswered(self) -> None:
        self.cancel(EndReason.CANCELED)


class InboundCall(Call):
    """A call someone placed to us (UAS). Handed to the endpoint's incoming-call handler."""

    direction = "inbound"

    def __init__(
        self,
        endpoint: SipEndpoint,
        invite: SipRequest,
        server_tx: ServerTransaction,
        source: tuple[str, int],
        transport: str,
    ) -> None:
        super().__init__(endpoint, invite.call_id)
        self.invite = invite
        self.server_tx = server_tx
        self.source = source
        self.transport = transport
        self.local_tag = new_tag()
        self.state = CallState.CALLING
        self.from_addr = invite.from_
        self.to_addr = invite.to
        self._offer: sdp.SessionDescription | None = None
        if invite.body and invite.content_type == "application/sdp":
            self._offer = sdp.SessionDescription.parse(invite.body)

    @property
    def number(self) -> str | None:
        """The dialled user part of the Request-URI (``7001`` in ``sip:7001@host``)."""
        return self.invite.uri.user if self.invite.uri is not None else None

    def _ensure_dialog(self) -> Dialog:
        if self.dialog is None:
            contact = self.endpoint.local_contact(self.transport)
            self.dialog = Dialog.from_uas_request(self.invite, self.local_tag, contact)
            self.endpoint._register_dialog(self)
        return self.dialog

    def _response(self, code: int, reason: str | None = None, body: bytes = b"") -> SipResponse:
        dialog = self._ensure_dialog() if code < 300 else None
        headers: list[tuple[str, str]] = []
        if dialog is not None:
            headers.append(("Contact", str(dialog.local_contact)))
        if code < 300:
            headers.append(("Allow", ALLOW))
        headers.append(("User-Agent", self.endpoint.user_agent))
        response = make_response(
            self.invite, code, reason, to_tag=self.local_tag, headers=headers, body=body
        )
        if body:
            response.headers.add("Content-Type", "application/sdp")
        return response

    async def ring(self, early_media: bool = False) -> None:
        """Send 180 Ringing (or 183 with SDP, for early media)."""
        if self.state is not CallState.CALLING:
            return
        body = b""
        if early_media:
            await self._prepare_media()
            body = self._answer_body
        self.endpoint.respond(
            self.server_tx, self._response(183 if early_media else 180, body=body)
        )
        self.state = CallState.RINGING
        self._emit(CallProgress(183 if early_media else 180, "Ringing", early_media))

    async def _prepare_media(self) -> None:
        if self.leg is None:
            self.leg = await self.endpoint.open_leg()
            self._answer_body = self._local_sdp(self._offer)
            if self._offer is None:
                self._offer_sent = self._answer_body

    _answer_body = b""

    async def answer(self) -> None:
        """Send 200 OK with our SDP; media starts now, confirmed when the ACK comes."""
        if self.state not in (CallState.CALLING, CallState.RINGING):
            return
        try:
            await self._prepare_media()
        except sdp.SdpNegotiationError:
            await self.reject(488)
            return
        if self.is_ended:  # the caller canceled while we opened the media leg
            return
        response = self._response(200, body=self._answer_body)
        self.endpoint.respond(self.server_tx, response)
        self._retransmit_2xx(response, self.server_tx)
        self._mark_answered(200)

    async def reject(self, code: int = 486, reason: str | None = None) -> None:
        if self.state not in (CallState.CALLING, CallState.RINGING):
            return
        response = self._response(code, reason)
        self.endpoint.respond(self.server_tx, response)
        self._finish(
            end_reason_for_status(code), HangupBy.LOCAL, code=code, sip_reason=response.reason
        )

    def on_cancel(self) -> None:
        """The caller gave up before we answered (RFC 3261 §9.2): 487 to the INVITE."""
        if self.state in (CallState.CALLING, CallState.RINGING):
            self.endpoint.respond(self.server_tx, self._response(487))
            self._finish(
                EndReason.CANCELED, HangupBy.REMOTE, code=487, sip_reason="Request Terminated"
            )

    async def _end_unanswered(self) -> None:
        await self.reject(480, "Temporarily Unavailable")
