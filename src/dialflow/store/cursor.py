"""The opaque pagination cursor of ``list_calls``: a keyset position, not an offset.

The cursor names the last row of a page by its sort key ``(created_at, session_id)``;
the next page is every row strictly after it in the order ``created_at DESC,
session_id DESC``. Rows inserted between two page requests therefore never shift the
pages (an offset would repeat or skip rows), and the query is an index range scan.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime


class InvalidCursor(ValueError):
    """The cursor was not made by :func:`encode_cursor` (the API answers 422)."""


_SEPARATOR = "|"  # never appears in an ISO 8601 timestamp


def encode_cursor(created_at: datetime, session_id: str) -> str:
    """URL-safe base64 of ``<created_at ISO 8601 UTC>|<session_id>``, without padding."""
    raw = f"{created_at.astimezone(UTC).isoformat()}{_SEPARATOR}{session_id}"
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The ``(created_at, session_id)`` a cursor names; raises :class:`InvalidCursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
        stamp, separator, session_id = raw.partition(_SEPARATOR)
        if not separator or not session_id:
            raise ValueError("no session id")
        created_at = datetime.fromisoformat(stamp)
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise InvalidCursor(f"invalid cursor {cursor!r}") from exc
    if created_at.tzinfo is None:
        raise InvalidCursor(f"invalid cursor {cursor!r}")
    return created_at.astimezone(UTC), session_id
