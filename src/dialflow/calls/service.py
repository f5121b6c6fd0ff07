"""The call service: creates sessions, dials them, runs their flows, and ends them.

It is the only place that maps the SIP side (:mod:`dialflow.telephony`) onto the API's
status machine (:mod:`dialflow.calls.session`). Each call runs in its own task owned
by the service; one call's failure ends that call (failed, hangupBy system) and
nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..sip.auth import DigestCredentials
from ..sip.uri import SipUri, parse_uri
from ..store.base import Store
from ..store.models import (
    TERMINAL_STATUSES,
    CallEvent,
    CallRecord,
    CallStatus,
    FlowVersion,
    Organization,
    WebhookDelivery,
)
from ..telephony.call import Call, InboundCall, OutboundCall
from ..telephony.endpoint import SipEndpoint
from ..telephony.events import CallEnded, CallProgress, EndReason, HangupBy
from .amd_run import CallAmd
from .amd_words import AmdWordsPool
from .limits import Limiter, LimitExceeded, LimitsUnavailable, OrgLimiter
from .options import AmdOptions, CallOptions
from .persist import SessionWriter
from .policy import Destination, check_destination, parse_destination
from .recorder import CallRecorder
from .session import CallSession, call_view, iso, new_session_id, utcnow

log = logging.getLogger(__name__)

WEBHOOK_TYPES = {
    "ringing": "call.ringing",
    "answered": "call.answered",
    "amd": "call.amd",
    "failed": "call.failed",
    "completed": "call.completed",
}

_END_STATUS = {
    EndReason.COMPLETED: CallStatus.COMPLETED,
    EndReason.BUSY: CallStatus.BUSY,
    EndReason.NO_ANSWER: CallStatus.NO_ANSWER,
    EndReason.FAILED: CallStatus.FAILED,
    EndReason.CANCELED: CallStatus.CANCELED,
}


class NoTrunk(Exception):
    """A phone number was dialled but the organization has no (such) trunk."""


@dataclass(slots=True)
class FlowContext:
    """What a flow run gets: the session (log, variables), the live call and the document."""

    session: CallSession
    call: Call
    flow: dict[str, Any]
    variables: dict[str, Any]
    amd: dict[str, Any] | None
    amd_events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)


@dataclass(slots=True)
class FlowResult:
    outcome: str  # completed | error | passed | failed
    path: list[str] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)
    assertions: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


class FlowRunner(Protocol):
    async def run(self, ctx: FlowContext) -> FlowResult: ...


class HangupFlowRunner:
    """Plays nothing and ends: the runner used until the flow executor is wired in."""

    async def run(self, ctx: FlowContext) -> FlowResult:
        return FlowResult("completed", [], dict(ctx.variables))


class MetricsSink(Protocol):
    def call_ended(self, status: str) -> None: ...

    def active_calls(self, count: int) -> None: ...


class CallService:
    def __init__(
        self,
        store: Store,
        endpoint: SipEndpoint,
        *,
        data_dir: Path,
        flow_runner: FlowRunner | None = None,
        enqueue_webhook: Callable[[WebhookDelivery], Any] | None = None,
        metrics: MetricsSink | None = None,
        amd_words: AmdWordsPool | None = None,
        node_id: str = "",
    ) -> None:
        self.store = store
        self.node_id = node_id
        self.amd_words = amd_words
        self.endpoint = endpoint
        self.data_dir = data_dir
        self.flow_runner: FlowRunner = flow_runner or HangupFlowRunner()
        self.metrics = metrics
        self.limiter: Limiter = OrgLimiter()
        self.writer = SessionWriter(store, enqueue_webhook)
        self._live: dict[str, CallSession] = {}
        # Ended sessions whose last rows are still being written: reads come from here.
        self._ending: dict[str, CallSession] = {}
        self._calls: dict[str, Call] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._webhooks_enabled = enqueue_webhook is not None

    # -- life cycle

    async def start(self) -> list[str]:
        """Recover from a crash (this node's live calls → failed) and start the writer."""
        self.writer.start()
        failed = await self.recover(self.node_id)
        if failed:
            log.warning("%d calls were live when the server stopped: marked failed", len(failed))
        return failed

    async def recover(self, node_id: str) -> list[str]:
        """Mark the live calls of a stopped node failed (this one at start, or a dead
        peer's) and send each its terminal webhook; returns their session ids."""
        failed = await self.store.fail_live_calls(utcnow(), node_id)
        for session_id in failed:
            record = await self.store.get_call(None, session_id)
            if record is None or not record.webhook_url or not self._webhooks_enabled:
                continue
            # Every session ends with exactly one terminal webhook, even across a crash.
            kind = "completed" if record.answered_at is not None else "failed"
            self.writer.webhook(self._delivery(record, kind, seq=10_000))
        return failed

    async def stop(self) -> None:
        for session in list(self._live.values()):
            await self.hangup(session, by="system")
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.writer.stop()

    def live(self, session_id: str) -> CallSession | None:
        """The session in memory: running, or ended with its last rows not stored yet."""
        session = self._live.get(session_id)
        return session if session is not None else self._ending.get(session_id)

    @property
    def active_calls(self) -> int:
        return len(self._live)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- creating calls

    async def resolve_destination(
        self, org: Organization, options: CallOptions
    ) -> tuple[Destination, dict[str, Any]]:
        """Parse and police ``to``; for phone numbers pick the trunk. Raises on refusal."""
        destination = parse_destination(options.to)
        check_destination(destination, org.allowed_destinations)
        route: dict[str, Any] = {}
        if destination.kind == "pstn":
            trunk = (
                await self.store.get_trunk(org.id, options.trunk)
                if options.trunk
                else await self.store.get_default_trunk(org.id)
            )
            if trunk is None:
                raise NoTrunk(
                    f"no trunk {options.trunk!r}" if options.trunk else "no default trunk"
                )
            proxy = parse_uri(trunk.proxy)
            if not isinstance(proxy, SipUri):
                raise NoTrunk(f"trunk {trunk.id} has no SIP proxy")
            host = proxy.host if proxy.port is None else f"{proxy.host}:{proxy.port}"
            route = {
                "uri": f"sip:{destination.number}@{host}",
                "proxy": str(proxy),
                "credentials": DigestCredentials(trunk.username, trunk.password or "")
                if trunk.username
                else None,
                "fromUser": options.from_ or trunk.from_user,
                "trunk": trunk.id,
            }
        return destination, route

    async def create_call(
        self,
        org: Organization,
        flow: FlowVersion,
        options: CallOptions,
        *,
        request: dict[str, Any],
        idempotency_key: str | None = None,
    ) -> CallSession:
        """Validate limits, store the session (queued) and start dialling in the background.

        Raises DestinationError / DestinationNotAllowed / NoTrunk / LimitExceeded before
        anything is stored.
        """
        destination, route = await self.resolve_destination(org, options)
        session_id = new_session_id()
        await self.limiter.acquire(
            org.id, session_id, org.max_concurrent_calls, org.calls_per_second
        )
        try:
            record = CallRecord(
                session_id=session_id,
                org_id=org.id,
                flow_id=flow.flow_id,
                flow_version=flow.version,
                direction="outbound",
                mode=options.mode,
                to=options.to,
                from_=options.from_,
                status=CallStatus.QUEUED,
                created_at=utcnow(),
                request=request,
                webhook_url=options.webhook_url,
                idempotency_key=idempotency_key,
                flow={"outcome": None, "path": [], "variables": {}, "assertions": []},
                node_id=self.node_id or None,
            )
            await self.store.insert_call(record)
        except BaseException:
            self.limiter.release(org.id, session_id)
            raise
        session = self._open_session(record, org)
        session.record_event("status", status="queued")
        self._spawn(
            self._run_outbound(session, org, flow, options, destination, route),
            name=f"call-{record.session_id}",
        )
        return session

    def _open_session(self, record: CallRecord, org: Organization) -> CallSession:
        session = CallSession(record)
        session.subscribe(self._persist)
        if record.webhook_url and self._webhooks_enabled:
            session.subscribe(self._webhook_for_event)
        self._live[record.session_id] = session
        if self.metrics is not None:
            self.metrics.active_calls(len(self._live))
        return session

    # -- running outbound calls

    async def _run_outbound(
        self,
        session: CallSession,
        org: Organization,
        flow: FlowVersion,
        options: CallOptions,
        destination: Destination,
        route: dict[str, Any],
    ) -> None:
        call: OutboundCall | None = None
        try:
            if session.is_terminal:
                return  # canceled while queued
            session.transition(CallStatus.DIALING)
            # The URI parsed when the destination was checked: place_call need not parse
            # it again (str() of it is destination.text).
            target = route.get("uri") or destination.sip_uri or destination.text
            headers = dict(options.sip_headers)
            call = await self.endpoint.place_call(
                target,
                from_user=route.get("fromUser") or options.from_ or "dialflow",
                proxy=route.get("proxy"),
                credentials=route.get("credentials"),
                headers=headers,
                ring_timeout=options.ring_timeout,
            )
            self._calls[session.id] = call
            session.record.sip["callId"] = call.call_id
            session.record_event("sip.invite", callId=call.call_id, target=str(target))
            call.on_event(lambda ev: self._on_sip_event(session, ev))
            if session.local_hangup_by == "api":
                call.cancel(EndReason.CANCELED)  # DELETE arrived while the INVITE was built
            answered = await call.wait_answered()
            if answered and not call.is_ended:
                await self._run_answered(session, call, flow, options)
            end = await call.wait_ended()
            self._finish_from_sip(session, call, end)
        except asyncio.CancelledError:
            if call is not None:
                await call.hangup()
            self._finish(
                session,
                CallStatus.FAILED,
                hangup_by="system",
                error={"code": "shutdown", "message": "the server stopped"},
            )
            raise
        except Exception as exc:
            log.exception("call %s failed", session.id)
            if call is not None and not call.is_ended:
                with contextlib.suppress(Exception):
                    await call.hangup()
            status = CallStatus.FAILED
            self._finish(
                session,
                status,
                hangup_by="system" if session.record.answered_at else None,
                error={"code": "internal_error", "message": str(exc) or type(exc).__name__},
            )
        finally:
            self._close(session, org.id)

    def _on_sip_event(self, session: CallSession, event: object) -> None:
        if isinstance(event, CallProgress):
            session.record_event(
                "sip.progress", code=event.code, reason=event.reason, earlyMedia=event.early_media
            )
            if session.status is CallStatus.DIALING:
                session.transition(CallStatus.RINGING, code=event.code)

    async def _run_answered(
        self, session: CallSession, call: Call, flow: FlowVersion, options: CallOptions
    ) -> None:
        session.record.sip["finalCode"] = call.final_code
        session.record.sip["finalReason"] = call.final_reason
        amd = options.amd if options.amd and options.amd.enabled else None
        session.transition(
            CallStatus.IN_PROGRESS,
            code=call.final_code,
            amdPending=amd is not None and amd.mode == "sync",
        )
        if options.max_duration:
            loop = asyncio.get_running_loop()
            timer = loop.call_later(options.max_duration, self._max_duration_reached, session, call)
            call.on_event(lambda ev: timer.cancel() if isinstance(ev, CallEnded) else None)
        recorder: CallRecorder | None = None
        if options.record and call.leg is not None:
            recorder = CallRecorder(self.data_dir / "recordings" / f"{session.id}.wav")
            recorder.attach(call.leg)
            session.record.recording_path = str(recorder.path)
        try:
            await self._run_flow(session, call, flow, options, amd)
        finally:
            if recorder is not None:
                await recorder.close()

    def _max_duration_reached(self, session: CallSession, call: Call) -> None:
        if not call.is_ended:
            session.local_hangup_by = session.local_hangup_by or "timeout"
            session.record_event("limit.max_duration")
            self._spawn(call.hangup(), name=f"max-duration-{session.id}")

    async def _run_flow(
        self,
        session: CallSession,
        call: Call,
        flow: FlowVersion,
        options: CallOptions,
        amd: AmdOptions | None,
    ) -> None:
        variables = {**flow.document.get("vars", {}), **options.variables}
        amd_run: CallAmd | None = None
        if amd is not None and call.leg is not None:
            amd_run = CallAmd(
                session,
                amd,
                on_beep=lambda state: session.record_event("webhook.amd", **state),
                words=self.amd_words,
            )
            amd_run.start(call.leg)
            session.record.amd = dict(amd_run.state)
        try:
            await self._run_flow_with_amd(session, call, flow, variables, amd, amd_run)
        finally:
            if amd_run is not None and call.is_ended:
                amd_run.stop()

    async def _run_flow_with_amd(
        self,
        session: CallSession,
        call: Call,
        flow: FlowVersion,
        variables: dict[str, Any],
        amd: AmdOptions | None,
        amd_run: CallAmd | None,
    ) -> None:
        if amd is not None and amd_run is not None and amd.mode == "sync":
            # The flow waits for the decision; call.answered carries it (API.md).
            ended: asyncio.Future[Any] = asyncio.ensure_future(call.wait_ended())
            waiters: set[asyncio.Future[Any]] = {amd_run.decision, ended}
            try:
                await asyncio.wait(waiters, return_when="FIRST_COMPLETED")
            finally:
                ended.cancel()
            if not amd_run.decision.done():
                amd_run.stop()  # the far end hung up first: decide with what was heard
            session.record_event("webhook.answered")
            decided = amd_run.decision.result()
            if decided["result"] not in amd.run_flow_on:
                self._skip_flow(session, variables, decided["result"])
                session.local_hangup_by = session.local_hangup_by or "flow"
                await call.hangup()
                return
        else:
            session.record_event("webhook.answered")
        session.record_event("flow.started", flowId=flow.flow_id, version=flow.version)
        ctx = FlowContext(
            session, call, flow.document, variables, amd_run.state if amd_run else None
        )
        flow_task = asyncio.ensure_future(self.flow_runner.run(ctx))
        skipped: list[str] = []
        if amd is not None and amd_run is not None and amd.mode == "async":

            def on_decided(future: asyncio.Future[dict[str, Any]]) -> None:
                if future.cancelled():
                    return
                decided = future.result()
                session.record_event("webhook.amd", **decided)
                if decided["result"] not in amd.run_flow_on and not flow_task.done():
                    skipped.append(str(decided["result"]))
                    flow_task.cancel()

            amd_run.decision.add_done_callback(on_decided)
        try:
            result = await flow_task
        except asyncio.CancelledError:
            if not skipped:
                raise
            self._skip_flow(session, variables, skipped[0])
            session.local_hangup_by = session.local_hangup_by or "flow"
            await call.hangup()
            return
        except Exception as exc:
            log.exception("flow crashed on %s", session.id)
            result = FlowResult("error", error=f"{type(exc).__name__}: {exc}")
        session.record.flow = {
            "outcome": result.outcome,
            "path": result.path,
            "variables": result.variables,
            "assertions": result.assertions,
        }
        if result.error:
            session.record.error = {"code": "flow_error", "message": result.error}
        session.record_event("flow.ended", outcome=result.outcome, error=result.error)
        if not call.is_ended:
            session.local_hangup_by = session.local_hangup_by or "flow"
            await call.hangup()

    def _skip_flow(self, session: CallSession, variables: dict[str, Any], result: str) -> None:
        """AMD said something runFlowOn does not list: no flow, hang up (outcome skipped)."""
        session.record.flow = {
            "outcome": "skipped",
            "path": [],
            "variables": variables,
            "assertions": [],
        }
        session.record_event("flow.skipped", amd=result)

    def _finish_from_sip(self, session: CallSession, call: Call, end: CallEnded) -> None:
        record = session.record
        if end.code is not None and record.answered_at is None:
            record.sip["finalCode"] = end.code
            record.sip["finalReason"] = end.sip_reason
        hangup_by: str | None
        if end.hangup_by is HangupBy.REMOTE:
            hangup_by = "remote"
        elif end.hangup_by is None:
            hangup_by = None  # e.g. no response at all (Timer B)
        elif end.reason is EndReason.NO_ANSWER and session.local_hangup_by is None:
            hangup_by = "timeout"  # our ring timeout sent the CANCEL
        else:
            hangup_by = session.local_hangup_by or "system"
        status = _END_STATUS[end.reason]
        if record.answered_at is not None:
            status = CallStatus.COMPLETED
        elif status is CallStatus.CANCELED and hangup_by == "system":
            status = CallStatus.FAILED  # we gave up (shutdown), nobody asked to cancel
        error = record.error
        if status is CallStatus.FAILED and error is None:
            error = {
                "code": "sip_failure" if end.code else "call_failed",
                "message": end.error or (f"{end.code} {end.sip_reason}" if end.code else "failed"),
            }
        self._finish(session, status, hangup_by=hangup_by, error=error)

    def _finish(
        self,
        session: CallSession,
        status: CallStatus,
        *,
        hangup_by: str | None,
        error: dict[str, Any] | None = None,
    ) -> None:
        if session.is_terminal:
            return
        if session.status is CallStatus.IN_PROGRESS and status is not CallStatus.FAILED:
            status = CallStatus.COMPLETED
        session.record.hangup_by = hangup_by
        if error is not None:
            session.record.error = error
        session.transition(status, hangupBy=hangup_by)
        if self.metrics is not None:
            self.metrics.call_ended(status.value)

    def _close(self, session: CallSession, org_id: str) -> None:
        if self._live.pop(session.id, None) is not None:
            # A webhook or a sync response may already have told the client it ended:
            # a GET must not read the older row from the store meanwhile.
            self._ending[session.id] = session
            self.writer.when_written(lambda: self._forget(session.id))
        self._calls.pop(session.id, None)
        self.limiter.release(org_id, session.id)
        if self.metrics is not None:
            self.metrics.active_calls(len(self._live))

    def _forget(self, session_id: str) -> None:
        self._ending.pop(session_id, None)

    # -- control from the API

    async def hangup(self, session: CallSession, *, by: str = "api") -> None:
        """DELETE: cancel before answer (→ canceled), BYE after (→ completed, hangupBy api)."""
        if session.is_terminal:
            return
        session.local_hangup_by = session.local_hangup_by or by
        call = self._calls.get(session.id)
        if session.status is CallStatus.QUEUED or call is None:
            if session.status in (CallStatus.QUEUED, CallStatus.DIALING):
                self._finish(session, CallStatus.CANCELED, hangup_by=by)
            return
        if isinstance(call, OutboundCall) and not call.is_answered:
            call.cancel(EndReason.CANCELED)
        else:
            await call.hangup()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.ended.wait(), timeout=10)

    # -- inbound calls

    async def handle_inbound(self, call: InboundCall, org: Organization, flow: FlowVersion) -> None:
        """Answer an INVITE to one of the organization's numbers and run its flow."""
        session_id = new_session_id()
        try:
            admitted = await self.limiter.admit_inbound(
                org.id, session_id, org.max_concurrent_calls
            )
        except LimitsUnavailable:
            log.warning("inbound call refused: the shared limits are unavailable")
            await call.reject(503, "Service Unavailable")
            return
        if not admitted:
            await call.reject(486, "Busy Here")
            return
        record = CallRecord(
            session_id=session_id,
            org_id=org.id,
            flow_id=flow.flow_id,
            flow_version=flow.version,
            direction="inbound",
            mode="poll",
            to=str(call.invite.uri),
            from_=str(call.from_addr.uri),
            status=CallStatus.QUEUED,
            created_at=utcnow(),
            flow={"outcome": None, "path": [], "variables": {}, "assertions": []},
            sip={"callId": call.call_id},
            node_id=self.node_id or None,
        )
        try:
            await self.store.insert_call(record)
        except BaseException:
            self.limiter.release(org.id, session_id)
            await call.reject(500)
            raise
        session = self._open_session(record, org)
        self._calls[session.id] = call
        session.record_event("status", status="queued")
        try:
            session.transition(CallStatus.DIALING)
            await call.ring()
            session.transition(CallStatus.RINGING, code=180)
            await call.answer()
            if call.is_answered:
                record.sip["finalCode"] = 200
                record.sip["finalReason"] = "OK"
                session.transition(CallStatus.IN_PROGRESS, code=200)
                options = CallOptions(to=record.to)
                await self._run_flow(session, call, flow, options, None)
            end = await call.wait_ended()
            self._finish_from_sip(session, call, end)
        except Exception as exc:
            log.exception("inbound call %s failed", session.id)
            with contextlib.suppress(Exception):
                await call.hangup()
            self._finish(
                session,
                CallStatus.FAILED,
                hangup_by="system",
                error={"code": "internal_error", "message": str(exc)},
            )
        finally:
            self._close(session, org.id)

    # -- persistence and webhooks (session listeners)

    def _persist(self, session: CallSession, event: CallEvent) -> None:
        self.writer.event_and_save(event, session.record)

    def _webhook_for_event(self, session: CallSession, event: CallEvent) -> None:
        kind: str | None = None
        if event.type == "status":
            status = event.data.get("status")
            if status == CallStatus.RINGING.value:
                kind = "ringing"
            elif status in TERMINAL_STATUSES:  # StrEnum: equal to their values
                kind = "completed" if session.record.answered_at else "failed"
        elif event.type == "webhook.answered":
            kind = "answered"
        elif event.type == "webhook.amd":
            kind = "amd"
        if kind is not None:
            self.writer.webhook(self._delivery(session.record, kind, seq=event.seq))

    def _delivery(self, record: CallRecord, kind: str, *, seq: int) -> WebhookDelivery:
        event_id = "evt_" + secrets.token_hex(12)
        now = utcnow()
        payload = {
            "id": event_id,
            "type": WEBHOOK_TYPES[kind],
            "occurredAt": iso(now),
            "sessionId": record.session_id,
            "orgId": record.org_id,
            "call": call_view(record),
        }
        assert record.webhook_url is not None
        return WebhookDelivery(
            id=event_id,
            session_id=record.session_id,
            org_id=record.org_id,
            seq=seq,
            event_type=WEBHOOK_TYPES[kind],
            url=record.webhook_url,
            payload=payload,
            next_attempt_at=now,
            created_at=now,
        )


__all__ = [
    "CallService",
    "FlowContext",
    "FlowResult",
    "FlowRunner",
    "HangupFlowRunner",
    "LimitExceeded",
    "NoTrunk",
]
