"""Webhook delivery policy, without I/O: attempt results, the retry schedule, Retry-After,
and the exact bytes of a request body.

API.md (Webhooks): 2xx = delivered; timeouts, connection errors, 429 and 5xx are retried;
other 4xx are not. Retry n waits ``min(base × 2^(n-1), 300)`` seconds ± 20 % jitter.
"""

from __future__ import annotations

import email.utils
import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

RETRY_BASE_ENV = "DIALFLOW_WEBHOOK_RETRY_BASE"
DEFAULT_RETRY_BASE = 2.0
MAX_RETRY_DELAY = 300.0
JITTER = 0.2


class AttemptResult(enum.StrEnum):
    """How one attempt ended: the label of the "attempts by result" metric."""

    SUCCESS = "success"  # 2xx
    REDIRECT = "redirect"  # 3xx, not followed
    CLIENT_ERROR = "client_error"  # 4xx other than 429
    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 5xx (and any other non-standard status)
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"  # DNS failure, refused, reset, protocol error
    REFUSED = "refused"  # the SSRF guard refused the URL or the address at send time
    NO_SECRET = "no_secret"  # the organization has no webhook secret (or is gone)
    INVALID_PAYLOAD = "invalid_payload"  # the payload is not JSON-serialisable (a bug)


RETRYABLE = frozenset(
    {
        AttemptResult.RATE_LIMITED,
        AttemptResult.SERVER_ERROR,
        AttemptResult.TIMEOUT,
        AttemptResult.CONNECTION_ERROR,
    }
)


def retry_base_from_env(environ: Mapping[str, str] | None = None) -> float:
    """``DIALFLOW_WEBHOOK_RETRY_BASE`` in seconds (default 2.0); ValueError if not > 0."""
    raw = (os.environ if environ is None else environ).get(RETRY_BASE_ENV, "").strip()
    if not raw:
        return DEFAULT_RETRY_BASE
    value = float(raw)
    if not value > 0:
        raise ValueError(f"{RETRY_BASE_ENV} must be a positive number of seconds, got {raw!r}")
    return value


def retry_delay(retry: int, base: float, u: float) -> float:
    """Seconds before retry number ``retry`` (1 = the second attempt).

    ``min(base × 2^(retry-1), 300)`` scaled by ``0.8 + 0.4·u`` (±20 % jitter, ``u`` uniform
    in [0, 1)). Jitter keeps receivers that failed for many sessions at once from being hit
    by all the retries in the same instant.
    """
    nominal = min(base * 2.0 ** (retry - 1), MAX_RETRY_DELAY)
    return nominal * (1.0 - JITTER + 2.0 * JITTER * u)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """RFC 9110 §10.2.3 ``Retry-After`` (seconds or an HTTP-date) as a delay in [0, 300]."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), MAX_RETRY_DELAY)


@dataclass(slots=True)
class AttemptOutcome:
    """What one attempt came to, before the dispatcher decides on a retry."""

    result: AttemptResult
    status: int | None = None  # None: no HTTP answer
    error: str | None = None
    retry_after: float | None = None  # seconds the receiver asked for (429/503), capped


def classify_status(status: int, retry_after: str | None, now: float) -> AttemptOutcome:
    """The outcome of an HTTP answer (``retry_after`` is the raw header, ``now`` unix s)."""
    if 200 <= status < 300:
        return AttemptOutcome(AttemptResult.SUCCESS, status)
    if 300 <= status < 400:
        # Not followed: the Location could point anywhere, including where the SSRF guard
        # would never let the original URL go; and a moved endpoint should be re-configured.
        error = f"HTTP {status}: redirects are not followed"
        return AttemptOutcome(AttemptResult.REDIRECT, status, error)
    if status == 429:
        delay = parse_retry_after(retry_after, now)
        return AttemptOutcome(AttemptResult.RATE_LIMITED, status, "HTTP 429", delay)
    if 400 <= status < 500:
        return AttemptOutcome(AttemptResult.CLIENT_ERROR, status, f"HTTP {status}")
    # 5xx, and anything non-standard (1xx as final, 6xx+): the receiver is not well; retry.
    delay = parse_retry_after(retry_after, now) if status == 503 else None
    return AttemptOutcome(AttemptResult.SERVER_ERROR, status, f"HTTP {status}", delay)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The request body: compact JSON with sorted keys, UTF-8.

    Sorted keys make every attempt of an event byte-identical, even after the payload made
    a round trip through a database that reorders JSON objects (PostgreSQL jsonb).
    """
    text = json.dumps(
        payload,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_json_default,
    )
    return text.encode("utf-8")
