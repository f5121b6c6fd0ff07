"""Webhook signatures: ``Dialflow-Signature: t=<unix>,v1=<hex>``.

``v1 = HMAC_SHA256(secret, "<t>.<raw body>")`` (API.md, Webhooks), the scheme Stripe made
familiar: the timestamp is inside the MAC so a captured request cannot be replayed later
than the receiver's tolerance, and the MAC covers the exact bytes sent, so receivers must
verify the raw body before parsing it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Dialflow-Signature"
EVENT_ID_HEADER = "Dialflow-Event-Id"
DEFAULT_TOLERANCE_S = 300


def _mac(secret: str, body: bytes, timestamp: int) -> str:
    signed = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Dialflow-Signature`` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1={_mac(secret, body, timestamp)}"


def parse_signature(header: str) -> tuple[int, list[str]] | None:
    """``(t, [v1, …])`` from a header value, or None when it is malformed.

    Several ``v1`` entries are accepted (a sender may sign with the old and the new secret
    while a rotation is in progress); unknown schemes (``v0=…``) are ignored.
    """
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if key == "t":
            if timestamp is not None or not value.isdigit() or len(value) > 12:
                return None
            timestamp = int(value)
        elif key == "v1":
            macs.append(value.lower())
    if timestamp is None or not macs:
        return None
    return timestamp, macs


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True when ``header`` is a valid signature of ``body`` made within ``tolerance_s``.

    The MAC comparison is constant-time (``hmac.compare_digest``). ``now`` defaults to the
    wall clock (unix seconds). A timestamp further than ``tolerance_s`` in the past or the
    future is refused: the receiver's defence against replays.
    """
    parsed = parse_signature(header)
    if parsed is None:
        return False
    timestamp, macs = parsed
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, body, timestamp).encode("ascii")
    ok = False
    for candidate in macs:
        # No early exit: every candidate is compared, so timing does not say which matched.
        # Bytes, not str: compare_digest refuses non-ASCII str (a hostile header could hold some).
        ok |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return ok
