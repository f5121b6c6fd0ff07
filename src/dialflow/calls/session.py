"""A call session: the one status machine, its event log, and the views made from it.

Every change to a call goes through :meth:`CallSession.record` (an event appended to
the log) and status changes through :meth:`CallSession.transition`, which refuses
any move the status machine does not allow. The Call object (:func:`call_view`), the
webhooks and the stored record are all derived from the session, so they never
disagree.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..store.models import CallEvent, CallRecord, CallStatus

log = logging.getLogger(__name__)

S = CallStatus
# API.md: queued → dialing → ringing → in_progress → one terminal status.
ALLOWED: dict[CallStatus, frozenset[CallStatus]] = {
    S.QUEUED: frozenset({S.DIALING, S.CANCELED, S.FAILED}),
    S.DIALING: frozenset({S.RINGING, S.IN_PROGRESS, S.BUSY, S.NO_ANSWER, S.FAILED, S.CANCELED}),
    S.RINGING: frozenset({S.IN_PROGRESS, S.BUSY, S.NO_ANSWER, S.FAILED, S.CANCELED}),
    S.IN_PROGRESS: frozenset({S.COMPLETED, S.FAILED}),
}

_TIMESTAMP_FOR = {
    S.DIALING: "dialed_at",
    S.RINGING: "ringing_at",
    S.IN_PROGRESS: "answered_at",
}

_ALPHABET = string.ascii_letters + string.digits
_ID_LENGTH = 22
# Bytes below this map evenly onto the 62 characters (4 × 62); the rest are skipped.
_ACCEPT = 256 - 256 % len(_ALPHABET)
_TO_CHAR = bytes(ord(_ALPHABET[b % len(_ALPHABET)]) for b in range(_ACCEPT)) + bytes(256 - _ACCEPT)
_REJECTED = bytes(range(_ACCEPT, 256))


def new_session_id() -> str:
    """``c_`` + 22 uniform characters of [A-Za-z0-9] (~131 bits).

    One urandom read per id (``secrets.choice`` 22 times cost ~21 µs): rejection
    sampling keeps every character uniform, and 32 bytes almost always suffice.
    """
    chars = b""
    while len(chars) < _ID_LENGTH:
        chars += secrets.token_bytes(32).translate(_TO_CHAR, _REJECTED)
    return "c_" + chars[:_ID_LENGTH].decode()


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime | None) -> str | None:
    """RFC 3339 UTC with milliseconds, e.g. 2026-11-21T10:55:44.123Z."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class InvalidTransition(RuntimeError):
    pass


Listener = Callable[["CallSession", CallEvent], None]


class CallSession:
    """One call's live state. The record is the durable part; the log is its history."""

    def __init__(self, record: CallRecord) -> None:
        self.record = record
        self.events: list[CallEvent] = []
        self._listeners: list[Listener] = []
        self.ended = asyncio.Event()
        self._seq = 0
        # Who asked our side to hang up, for hangupBy: "api", "flow", "timeout", "system".
        self.local_hangup_by: str | None = None
        self.flow_variables: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<CallSession {self.record.session_id} {self.record.status.value}>"

    @property
    def id(self) -> str:
        return self.record.session_id

    @property
    def status(self) -> CallStatus:
        return self.record.status

    @property
    def is_terminal(self) -> bool:
        return self.record.status.is_terminal

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def record_event(self, type_: str, **data: Any) -> CallEvent:
        """Append an event to the log and tell the listeners (store writer, webhooks…)."""
        self._seq += 1
        event = CallEvent(self.id, self._seq, type_, utcnow(), data)
        self.events.append(event)
        for listener in list(self._listeners):
            try:
                listener(self, event)
            except Exception:  # a broken listener must not break the call
                log.exception("session listener failed on %s", type_)
        return event

    def transition(self, status: CallStatus, **data: Any) -> bool:
        """Move to ``status`` if the machine allows it; False (and no event) otherwise.

        Terminal moves fill ``ended_at`` and ``duration_ms`` and set :attr:`ended`.
        """
        current = self.record.status
        if status == current:
            return False
        if status not in ALLOWED.get(current, frozenset()):
            if current.is_terminal:
                return False
            raise InvalidTransition(f"{current.value} → {status.value}")
        now = utcnow()
        record = self.record
        record.status = status
        attr = _TIMESTAMP_FOR.get(status)
        if attr is not None and getattr(record, attr) is None:
            setattr(record, attr, now)
        if status.is_terminal:
            record.ended_at = now
            if record.answered_at is not None:
                record.duration_ms = int((now - record.answered_at).total_seconds() * 1000)
            else:
                record.duration_ms = 0
        self.record_event("status", status=status.value, **data)
        if status.is_terminal:
            self.ended.set()
        return True


def call_view(record: CallRecord) -> dict[str, Any]:
    """The Call object of API.md, from a record (live or stored)."""
    flow = record.flow or {}
    return {
        "sessionId": record.session_id,
        "orgId": record.org_id,
        "flowId": record.flow_id,
        "flowVersion": record.flow_version,
        "direction": record.direction,
        "mode": record.mode,
        "to": record.to,
        "from": record.from_,
        "status": record.status.value,
        "amd": record.amd,
        "sip": {
            "callId": record.sip.get("callId"),
            "finalCode": record.sip.get("finalCode"),
            "finalReason": record.sip.get("finalReason"),
        },
        "hangupBy": record.hangup_by,
        "createdAt": iso(record.created_at),
        "dialedAt": iso(record.dialed_at),
        "ringingAt": iso(record.ringing_at),
        "answeredAt": iso(record.answered_at),
        "endedAt": iso(record.ended_at),
        "durationMs": record.duration_ms,
        "flow": {
            "outcome": flow.get("outcome"),
            "path": flow.get("path", []),
            "variables": flow.get("variables", {}),
            "assertions": flow.get("assertions", []),
        },
        "recordingUrl": (
            f"/v1/organizations/{record.org_id}/calls/{record.session_id}/recording"
            if record.recording_path
            else None
        ),
        "error": record.error,
    }


def event_view(event: CallEvent) -> dict[str, Any]:
    return {"seq": event.seq, "type": event.type, "at": iso(event.at), **event.data}
