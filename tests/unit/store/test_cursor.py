"""The list_calls cursor (store/cursor.py)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialflow.store.cursor import InvalidCursor, decode_cursor, encode_cursor


def test_known_encoding() -> None:
    stamp = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    cursor = encode_cursor(stamp, "c_2Jx")
    assert base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)) == (
        b"2026-03-01T12:00:00.250000+00:00|c_2Jx"
    )
    assert "=" not in cursor
    assert decode_cursor(cursor) == (stamp, "c_2Jx")


def test_other_offsets_are_normalized_to_utc() -> None:
    stamp = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    decoded, _ = decode_cursor(encode_cursor(stamp, "x"))
    assert decoded == stamp and decoded.tzinfo is UTC and decoded.hour == 12


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s),
)
def test_round_trip(stamp: datetime, session_id: str) -> None:
    assert decode_cursor(encode_cursor(stamp, session_id)) == (stamp, session_id)


@given(st.text(max_size=60))
def test_garbage_is_only_ever_invalid_cursor(cursor: str) -> None:
    try:
        stamp, session_id = decode_cursor(cursor)
    except InvalidCursor:
        return
    assert stamp.tzinfo is UTC and session_id


@pytest.mark.parametrize(
    "raw",
    [
        b"2026-03-01T12:00:00+00:00",  # no separator
        b"2026-03-01T12:00:00+00:00|",  # no session id
        b"2026-03-01T12:00:00|c1",  # naive time
        b"yesterday|c1",
        b"\xff\xfe|c1",
    ],
)
def test_malformed_cursors(raw: bytes) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(base64.urlsafe_b64encode(raw).decode())


def test_invalid_cursor_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        decode_cursor("!!!")
