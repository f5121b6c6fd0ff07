"""What a call reports to its owner: small, typed events (the session log's raw material)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CallState(enum.Enum):
    """Where a call is, seen from the SIP side (the API's status machine maps onto this)."""

    NEW = "new"
    CALLING = "calling"  # INVITE sent / received, nothing heard yet
    RINGING = "ringing"  # 180/183 seen (or sent)
    ANSWERED = "answered"  # 2xx sent or received: media flows
    ENDED = "ended"


class EndReason(enum.Enum):
    """Why a call ended: one value per terminal status of the API."""

    COMPLETED = "completed"  # was answered, then hung up by someone
    BUSY = "busy"  # 486 / 600
    NO_ANSWER = "no_answer"  # ring timeout, 408, 480
    FAILED = "failed"  # any other failure
    CANCELED = "canceled"  # canceled by us (or by the caller, inbound) before answer


class HangupBy(enum.Enum):
    REMOTE = "remote"
    LOCAL = "local"  # our side: flow, API or system decides the finer label
    TIMEOUT = "timeout"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class CallProgress:
    """A provisional response: 180 ringing or 183 session progress (early media when SDP)."""

    code: int
    reason: str
    early_media: bool


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The call is answered (2xx received, or for inbound: 2xx sent)."""

    code: int = 200


@dataclass(frozen=True, slots=True)
class CallConfirmed:
    """Inbound only: the caller's ACK for our 2xx arrived."""


@dataclass(frozen=True, slots=True)
class CallHold:
    """The far end put the call on hold (or resumed it) with a re-INVITE."""

    on_hold: bool


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over. ``code``/``sip_reason`` are the final SIP response when there was one."""

    reason: EndReason
    hangup_by: HangupBy | None
    code: int | None = None
    sip_reason: str | None = None
    error: str | None = None


CallEvent = CallProgress | CallAnswered | CallConfirmed | CallHold | CallEnded


def end_reason_for_status(code: int) -> EndReason:
    """API status for a final failure response (API.md: busy, no_answer, failed)."""
    if code in (486, 600):
        return EndReason.BUSY
    if code in (408, 480):
        return EndReason.NO_ANSWER
    return EndReason.FAILED
