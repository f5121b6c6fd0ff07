"""Call records, their event logs and idempotency keys: the hot write path.

Statements that run for every call are built once at import; SQLAlchemy's compiled
cache then reuses their SQL, so a call costs parameter binding only. Events go in with
one ``executemany`` per batch.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, func, insert, or_, select, update

from .base import Conflict
from .cursor import decode_cursor, encode_cursor
from .models import CallEvent, CallRecord, CallStatus, IdempotencyRecord
from .schema import call_events, calls, idempotency_keys
from .sql import SqlBase, _all, _execute, _first

# API.md: "the same key with the same body within 24 h returns the original session".
IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_PAGE = 1000

LIVE_STATUSES = tuple(status.value for status in CallStatus if not status.is_terminal)
SYSTEM_RESTART_ERROR = {
    "code": "system_restart",
    "message": "the server stopped while the call was live",
}

_INSERT_CALL = insert(calls)
_UPDATE_CALL = update(calls).where(calls.c.session_id == bindparam("b_session_id"))
_SELECT_CALL = select(calls).where(calls.c.session_id == bindparam("b_session_id"))
_INSERT_EVENTS = insert(call_events)

_SELECT_EVENTS = (
    select(call_events)
    .where(call_events.c.session_id == bindparam("b_session_id"))
    .order_by(call_events.c.seq)
)
_COUNT_LIVE = select(func.count()).where(
    calls.c.status.in_(LIVE_STATUSES), calls.c.org_id == bindparam("b_org_id")
)
_FAIL_CALL = (
    update(calls)
    .where(calls.c.session_id == bindparam("b_session_id"))
    .values(
        status=CallStatus.FAILED.value,
        hangup_by="system",
        ended_at=bindparam("b_ended_at"),
        duration_ms=bindparam("b_duration_ms"),
        error=SYSTEM_RESTART_ERROR,
    )
)


def _write_sessions(
    conn: Connection, event_rows: list[dict[str, Any]], call_rows: list[dict[str, Any]]
) -> None:
    if event_rows:
        conn.execute(_INSERT_EVENTS, event_rows)
    if call_rows:
        conn.execute(_UPDATE_CALL, call_rows)


def _mutable_call_values(record: CallRecord) -> dict[str, Any]:
    """Every column save_call rewrites: all but the key, the org and created_at
    (created_at is the pagination key; moving it would move the row between pages)."""
    return {
        "flow_id": record.flow_id,
        "flow_version": record.flow_version,
        "direction": record.direction,
        "mode": record.mode,
        "to_uri": record.to,
        "from_uri": record.from_,
        "request": record.request,
        "webhook_url": record.webhook_url,
        "idempotency_key": record.idempotency_key,
        "node_id": record.node_id,
        **_live_call_values(record),
    }


def _live_call_values(record: CallRecord) -> dict[str, Any]:
    """The columns a call changes after :meth:`insert_call` (status, timestamps, SIP,
    AMD, flow, outcome): what the session writer rewrites several times per call. The
    rest (the request, its destination and options) is fixed at insert, and the JSON
    of the request is the costliest value to encode."""
    return {
        "status": record.status.value,
        "amd": record.amd,
        "sip": record.sip,
        "hangup_by": record.hangup_by,
        "dialed_at": record.dialed_at,
        "ringing_at": record.ringing_at,
        "answered_at": record.answered_at,
        "ended_at": record.ended_at,
        "duration_ms": record.duration_ms,
        "flow": record.flow,
        "error": record.error,
        "recording_path": record.recording_path,
    }


def _call(row: Row[Any]) -> CallRecord:
    return CallRecord(
        session_id=row.session_id,
        org_id=row.org_id,
        flow_id=row.flow_id,
        flow_version=row.flow_version,
        direction=row.direction,
        mode=row.mode,
        to=row.to_uri,
        from_=row.from_uri,
        status=CallStatus(row.status),
        created_at=row.created_at,
        request=row.request,
        webhook_url=row.webhook_url,
        amd=row.amd,
        sip=row.sip,
        hangup_by=row.hangup_by,
        dialed_at=row.dialed_at,
        ringing_at=row.ringing_at,
        answered_at=row.answered_at,
        ended_at=row.ended_at,
        duration_ms=row.duration_ms,
        flow=row.flow,
        error=row.error,
        recording_path=row.recording_path,
        idempotency_key=row.idempotency_key,
        node_id=row.node_id,
    )


# -- query functions (run on the backend's connection; see sql.py) -------------------------


def _count(conn: Connection, org_id: str) -> int:
    return int(conn.execute(_COUNT_LIVE, {"b_org_id": org_id}).scalar_one())


def _fail_live_calls(conn: Connection, now: datetime, node_id: str) -> list[str]:
    rows = conn.execute(
        select(calls.c.session_id, calls.c.answered_at)
        .where(
            calls.c.status.in_(LIVE_STATUSES),
            # Rows from before calls had an owner belong to whichever node recovers first.
            or_(calls.c.node_id == node_id, calls.c.node_id.is_(None)),
        )
        .order_by(calls.c.created_at, calls.c.session_id)
    ).all()
    if rows:
        conn.execute(
            _FAIL_CALL,
            [
                {
                    "b_session_id": row.session_id,
                    "b_ended_at": now,
                    "b_duration_ms": (
                        0
                        if row.answered_at is None
                        else max(0, int((now - row.answered_at).total_seconds() * 1000))
                    ),
                }
                for row in rows
            ],
        )
    return [row.session_id for row in rows]


def _put_idempotency(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.org_id == values["org_id"],
            idempotency_keys.c.key == values["key"],
            idempotency_keys.c.created_at < values["created_at"] - IDEMPOTENCY_WINDOW,
        )
    )
    conn.execute(insert(idempotency_keys), values)


class CallsMixin(SqlBase):
    """Calls and their logs."""

    async def insert_call(self, record: CallRecord) -> None:
        """Raises Conflict if the session id exists (the organization must exist)."""
        values = _mutable_call_values(record)
        values["session_id"] = record.session_id
        values["org_id"] = record.org_id
        values["created_at"] = record.created_at
        await self._run_write(f"call {record.session_id!r}", _execute, _INSERT_CALL, values)

    async def save_call(self, record: CallRecord) -> None:
        """Update every summary field of an existing record (not org_id, created_at).

        A no-op for an unknown session id.
        """
        values = _mutable_call_values(record)
        values["b_session_id"] = record.session_id
        await self._run_write(f"call {record.session_id!r}", _execute, _UPDATE_CALL, values)

    async def append_events(self, events: list[CallEvent]) -> None:
        """Append to the sessions' logs in one executemany; Conflict if a (session, seq)
        exists (nothing of the batch is written then). The calls must exist."""
        if not events:
            return
        rows = [
            {"session_id": e.session_id, "seq": e.seq, "type": e.type, "at": e.at, "data": e.data}
            for e in events
        ]
        await self._run_write(f"events of {events[0].session_id!r}", _execute, _INSERT_EVENTS, rows)

    async def write_sessions(self, events: list[CallEvent], records: list[CallRecord]) -> None:
        """:meth:`append_events` and a save of each record's live columns
        (:func:`_live_call_values`) for many sessions as one write job: one transaction,
        one executemany each (no savepoint per statement, one thread hop). Nothing is
        written if any of it fails."""
        if not events and not records:
            return
        event_rows = [
            {"session_id": e.session_id, "seq": e.seq, "type": e.type, "at": e.at, "data": e.data}
            for e in events
        ]
        call_rows = []
        for record in records:
            values = _live_call_values(record)
            values["b_session_id"] = record.session_id
            call_rows.append(values)
        first = events[0].session_id if events else records[0].session_id
        await self._run_write(f"sessions from {first!r}", _write_sessions, event_rows, call_rows)

    async def get_call(self, org_id: str | None, session_id: str) -> CallRecord | None:
        """org_id None = any organization (admin). Does not load the events."""
        rows = await self._run_read(_all, _SELECT_CALL, {"b_session_id": session_id})
        if not rows or (org_id is not None and rows[0].org_id != org_id):
            return None
        return _call(rows[0])

    async def get_events(self, session_id: str) -> list[CallEvent]:
        """The session's log in seq order."""
        rows = await self._run_read(_all, _SELECT_EVENTS, {"b_session_id": session_id})
        return [CallEvent(r.session_id, r.seq, r.type, r.at, r.data) for r in rows]

    async def list_calls(
        self,
        org_id: str,
        *,
        status: CallStatus | None = None,
        flow_id: str | None = None,
        direction: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[CallRecord], str | None]:
        """Newest first by (created_at, session_id); keyset pagination.

        ``created_from`` is inclusive and ``created_to`` exclusive (half-open, so
        consecutive ranges neither overlap nor leave gaps). ``limit`` is 1..1000
        (ValueError otherwise); a bad cursor raises :class:`~.cursor.InvalidCursor`.
        The returned cursor is None on the last page.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1..{MAX_PAGE}, not {limit}")
        query = select(calls).where(calls.c.org_id == org_id)
        if status is not None:
            query = query.where(calls.c.status == CallStatus(status).value)
        if flow_id is not None:
            query = query.where(calls.c.flow_id == flow_id)
        if direction is not None:
            query = query.where(calls.c.direction == direction)
        if created_from is not None:
            query = query.where(calls.c.created_at >= created_from)
        if created_to is not None:
            query = query.where(calls.c.created_at < created_to)
        if cursor is not None:
            after_at, after_id = decode_cursor(cursor)
            # (created_at, session_id) < (after_at, after_id), written so the index
            # range on created_at <= after_at does the work on every database.
            query = query.where(
                calls.c.created_at <= after_at,
                or_(calls.c.created_at < after_at, calls.c.session_id < after_id),
            )
        query = query.order_by(calls.c.created_at.desc(), calls.c.session_id.desc()).limit(
            limit + 1
        )
        rows = await self._run_read(_all, query)
        records = [_call(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = records[-1]
            next_cursor = encode_cursor(last.created_at, last.session_id)
        return records, next_cursor

    async def count_live_calls(self, org_id: str) -> int:
        """Calls of the organization that are not in a terminal status."""
        return await self._run_read(_count, org_id)

    async def fail_live_calls(self, now: datetime, node_id: str = "") -> list[str]:
        """At start-up (or when another node finds this one dead): every non-terminal
        call of node ``node_id`` (and every one with no node) becomes failed, hangupBy
        system, ended
        now, error system_restart; durationMs from answeredAt to now (0 if never
        answered), as a terminal transition computes it. Returns their ids, oldest first.

        Appending the matching "status" event and queueing the final webhook is the
        call service's job (it knows each log's next seq).
        """
        return await self._run_write("live calls", _fail_live_calls, now, node_id)

    # -- idempotency keys --------------------------------------------------------------
    async def get_idempotency(
        self, org_id: str, key: str, since: datetime
    ) -> IdempotencyRecord | None:
        """The record for that key created at or after ``since``."""
        row = await self._run_read(
            _first,
            select(idempotency_keys).where(
                idempotency_keys.c.org_id == org_id,
                idempotency_keys.c.key == key,
                idempotency_keys.c.created_at >= since,
            ),
        )
        if row is None:
            return None
        return IdempotencyRecord(row.org_id, row.key, row.body_hash, row.session_id, row.created_at)

    async def put_idempotency(self, record: IdempotencyRecord) -> bool:
        """False if a record for (org, key) created within the window already exists
        (a concurrent request won the race). A record older than the 24 h window before
        ``record.created_at`` is replaced, in the same transaction."""
        values = {
            "org_id": record.org_id,
            "key": record.key,
            "body_hash": record.body_hash,
            "session_id": record.session_id,
            "created_at": record.created_at,
        }
        try:
            await self._run_write(f"idempotency key {record.key!r}", _put_idempotency, values)
        except Conflict:
            return False
        return True
