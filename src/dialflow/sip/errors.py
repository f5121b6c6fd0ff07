"""The SIP layer's error hierarchy.

One place maps every protocol failure into a small tree, as httpcore does, so callers
can catch what they mean: a peer sent garbage (:class:`SipParseError`), we were asked
to do something the protocol forbids (:class:`LocalProtocolError`), or a call ended
with a final failure response (:class:`CallFailed`).
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of every error raised by :mod:`dialflow.sip`."""


class SipParseError(SipError, ValueError):
    """Bytes that are not a well-formed SIP message (RFC 3261 §25).

    ``status`` is the response code a server should answer with when it can form a
    response at all (400 by default); ``reason`` is a short phrase for that response.
    """

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RemoteProtocolError(SipError):
    """The peer broke the protocol in a message that parsed fine (e.g. a CSeq out of order)."""


class LocalProtocolError(SipError):
    """We were asked to do something the protocol does not allow in the current state."""


class CallFailed(SipError):
    """A call ended with a final non-2xx response (or a local timeout expressed as one)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason
