"""The delivery policy without I/O: status classification, retry schedule, Retry-After,
the request body."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dialflow.webhooks.policy import (
    MAX_RETRY_DELAY,
    RETRYABLE,
    AttemptResult,
    classify_status,
    encode_payload,
    parse_retry_after,
    retry_base_from_env,
    retry_delay,
)

T0 = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "result", "retried"),
    [
        (200, AttemptResult.SUCCESS, False),
        (204, AttemptResult.SUCCESS, False),
        (299, AttemptResult.SUCCESS, False),
        (301, AttemptResult.REDIRECT, False),
        (302, AttemptResult.REDIRECT, False),
        (307, AttemptResult.REDIRECT, False),
        (400, AttemptResult.CLIENT_ERROR, False),
        (401, AttemptResult.CLIENT_ERROR, False),
        (404, AttemptResult.CLIENT_ERROR, False),
        (410, AttemptResult.CLIENT_ERROR, False),
        (429, AttemptResult.RATE_LIMITED, True),
        (500, AttemptResult.SERVER_ERROR, True),
        (503, AttemptResult.SERVER_ERROR, True),
        (599, AttemptResult.SERVER_ERROR, True),
    ],
)
def test_classify_status(status: int, result: AttemptResult, retried: bool) -> None:
    outcome = classify_status(status, None, T0)
    assert (outcome.result, outcome.status, outcome.retry_after) == (result, status, None)
    assert (outcome.result in RETRYABLE) is retried
    assert (outcome.error is None) is (result is AttemptResult.SUCCESS)


def test_retry_after_counts_on_429_and_503_only() -> None:
    assert classify_status(429, "12", T0).retry_after == 12.0
    assert classify_status(503, "12", T0).retry_after == 12.0
    assert classify_status(500, "12", T0).retry_after is None
    assert classify_status(429, "9999", T0).retry_after == MAX_RETRY_DELAY


def test_body_is_deterministic_compact_sorted_utf8() -> None:
    payload = {"type": "call.completed", "id": "evt_1", "call": {"to": "Zoë", "n": 1}}
    assert encode_payload(payload) == (
        '{"call":{"n":1,"to":"Zoë"},"id":"evt_1","type":"call.completed"}'.encode()
    )
    when = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert encode_payload({"at": when}) == b'{"at":"2024-05-01T10:00:00Z"}'
    with pytest.raises(ValueError):
        encode_payload({"x": float("nan")})


def test_parse_retry_after() -> None:
    now = T0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("100000", now) == MAX_RETRY_DELAY
    http_date = "Tue, 14 Nov 2023 22:13:50 GMT"  # T0 + 30 s
    assert parse_retry_after(http_date, now) == pytest.approx(30.0)
    assert parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_retry_schedule_math() -> None:
    # min(base × 2^(n-1), 300) ± 20 %, exact at the jitter bounds.
    nominal = [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    for n, expected in enumerate(nominal, start=1):
        assert retry_delay(n, 2.0, 0.5) == expected
        assert retry_delay(n, 2.0, 0.0) == pytest.approx(expected * 0.8)
        assert retry_delay(n, 2.0, 1.0) == pytest.approx(expected * 1.2)
    assert retry_delay(1, 2.0, 1.0) == pytest.approx(2.4)  # first retry within ~2.4 s
    # 10 attempts = 9 waits; even with the shortest jitter the last attempt comes > 10 min
    # after the first (648 s), with the longest < 17 min (972 s).
    shortest = sum(retry_delay(n, 2.0, 0.0) for n in range(1, 10))
    longest = sum(retry_delay(n, 2.0, 1.0) for n in range(1, 10))
    assert shortest == pytest.approx(648.0)
    assert longest == pytest.approx(972.0)
    assert retry_delay(1, 0.01, 0.5) == pytest.approx(0.01)


def test_retry_base_from_env() -> None:
    assert retry_base_from_env({}) == 2.0
    assert retry_base_from_env({"DIALFLOW_WEBHOOK_RETRY_BASE": "0.05"}) == 0.05
    for bad in ("0", "-1", "fast"):
        with pytest.raises(ValueError):
            retry_base_from_env({"DIALFLOW_WEBHOOK_RETRY_BASE": bad})
