"""Call records, event logs, live calls and idempotency keys (store/sql_calls.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import event

from dialflow.store import (
    CallEvent,
    CallRecord,
    CallStatus,
    Conflict,
    IdempotencyRecord,
    InvalidCursor,
    SqliteStore,
    StoreError,
)
from dialflow.store.cursor import encode_cursor

from .conftest import MakeCall, at

S = CallStatus


def full_record(make_call: MakeCall, session_id: str = "c_full") -> CallRecord:
    return make_call(
        session_id,
        5.0,
        status=S.COMPLETED,
        request={"to": "sip:bob@127.0.0.1:5070", "amd": {"enabled": True, "timeoutMs": 5000}},
        webhook_url="https://example.com/hook",
        amd={"result": "machine", "decisionMs": 2380, "beep": True, "confidence": 0.93},
        sip={"callId": "abc@host", "finalCode": 200, "finalReason": "OK"},
        hangup_by="remote",
        dialed_at=at(5.1),
        ringing_at=at(5.5),
        answered_at=at(8.25),
        ended_at=at(22.46),
        duration_ms=14210,
        flow={"outcome": "completed", "path": ["greet", "bye"], "variables": {"choice": "1"}},
        error={"code": "x", "message": "y", "details": [1, None, "ü"]},
        recording_path="/data/rec/c_full.wav",
        idempotency_key="idem-1",
    )


async def test_call_round_trip_keeps_every_field(store: SqliteStore, make_call: MakeCall) -> None:
    record = full_record(make_call)
    await store.insert_call(record)
    assert await store.get_call("acme", "c_full") == record
    assert await store.get_call(None, "c_full") == record  # admin: any organization
    assert await store.get_call("other", "c_full") is None  # never another org's call
    assert await store.get_call("acme", "missing") is None


async def test_minimal_call_keeps_nulls(store: SqliteStore, make_call: MakeCall) -> None:
    record = make_call("c_min", flow_id=None, flow_version=None, from_=None)
    await store.insert_call(record)
    got = await store.get_call("acme", "c_min")
    assert got == record
    assert got is not None and got.amd is None and got.error is None


async def test_duplicate_session_conflicts(store: SqliteStore, make_call: MakeCall) -> None:
    await store.insert_call(make_call("c1"))
    with pytest.raises(Conflict):
        await store.insert_call(make_call("c1", status=S.FAILED))


async def test_call_of_unknown_org_is_an_error_not_a_conflict(
    store: SqliteStore, make_call: MakeCall
) -> None:
    with pytest.raises(StoreError) as info:
        await store.insert_call(make_call("c1", org_id="ghost"))
    assert not isinstance(info.value, Conflict)


async def test_save_call_updates_every_summary_field(
    store: SqliteStore, make_call: MakeCall
) -> None:
    await store.insert_call(make_call("c_full", 5.0))
    record = full_record(make_call)
    await store.save_call(record)
    assert await store.get_call("acme", "c_full") == record

    # And back to nulls.
    plain = make_call("c_full", 5.0)
    await store.save_call(plain)
    assert await store.get_call("acme", "c_full") == plain


async def test_save_call_keeps_org_and_created_at(store: SqliteStore, make_call: MakeCall) -> None:
    await store.insert_call(make_call("c1", 1.0))
    await store.save_call(make_call("c1", 99.0, org_id="other", status=S.DIALING))
    got = await store.get_call(None, "c1")
    assert got is not None
    assert (got.org_id, got.created_at, got.status) == ("acme", at(1.0), S.DIALING)


async def test_save_of_an_unknown_call_is_a_noop(store: SqliteStore, make_call: MakeCall) -> None:
    await store.save_call(make_call("ghost"))
    assert await store.get_call(None, "ghost") is None


# -- events ----------------------------------------------------------------------------


async def test_events_append_in_batches_and_read_in_seq_order(
    store: SqliteStore, make_call: MakeCall
) -> None:
    await store.insert_call(make_call("c1"))
    await store.insert_call(make_call("c2"))
    e = [
        CallEvent("c1", 2, "sip.progress", at(1), {"code": 180}),
        CallEvent("c2", 1, "status", at(1), {"status": "queued"}),
        CallEvent("c1", 1, "status", at(0), {"status": "queued"}),
    ]
    await store.append_events(e)
    await store.append_events([CallEvent("c1", 3, "dtmf", at(2), {"digit": "5", "n": [1, 2]})])
    await store.append_events([])
    assert await store.get_events("c1") == [
        e[2],
        e[0],
        CallEvent("c1", 3, "dtmf", at(2), {"digit": "5", "n": [1, 2]}),
    ]
    assert await store.get_events("c2") == [e[1]]
    assert await store.get_events("none") == []


async def test_duplicate_seq_conflicts_and_writes_nothing_of_the_batch(
    store: SqliteStore, make_call: MakeCall
) -> None:
    await store.insert_call(make_call("c1"))
    await store.append_events([CallEvent("c1", 1, "status", at(0))])
    with pytest.raises(Conflict):
        await store.append_events(
            [CallEvent("c1", 2, "status", at(1)), CallEvent("c1", 1, "again", at(1))]
        )
    assert [ev.seq for ev in await store.get_events("c1")] == [1]


async def test_events_of_an_unknown_call_are_refused(store: SqliteStore) -> None:
    with pytest.raises(StoreError):
        await store.append_events([CallEvent("ghost", 1, "status", at(0))])


async def test_get_call_does_not_read_the_events(store: SqliteStore, make_call: MakeCall) -> None:
    await store.insert_call(make_call("c1"))
    await store.append_events([CallEvent("c1", 1, "status", at(0))])
    statements: list[str] = []
    reader = store._reader if isinstance(store, SqliteStore) else store._engine.sync_engine
    assert reader is not None
    event.listen(
        reader,
        "before_cursor_execute",
        lambda conn, cursor, sql, params, context, many: statements.append(sql),
    )
    assert await store.get_call("acme", "c1") is not None
    assert statements and all("call_events" not in sql for sql in statements)


# -- list_calls ------------------------------------------------------------------------


async def page_ids(store: SqliteStore, **kwargs: object) -> list[str]:
    records, _ = await store.list_calls("acme", **kwargs)  # type: ignore[arg-type]
    return [r.session_id for r in records]


async def test_list_is_newest_first_with_session_id_breaking_ties(
    store: SqliteStore, make_call: MakeCall
) -> None:
    for sid, created in [("c_b", 1), ("c_a", 1), ("c_c", 1), ("c_old", 0), ("c_new", 2)]:
        await store.insert_call(make_call(sid, created))
    await store.insert_call(make_call("c_theirs", 3, org_id="other"))
    records, cursor = await store.list_calls("acme")
    assert [r.session_id for r in records] == ["c_new", "c_c", "c_b", "c_a", "c_old"]
    assert cursor is None


async def test_pages_join_up_without_dupes_or_gaps(store: SqliteStore, make_call: MakeCall) -> None:
    # 25 calls, several sharing a created_at (ties straddle page boundaries).
    for i in range(25):
        await store.insert_call(make_call(f"c{i:02d}", i // 3))
    expected = [r.session_id for r in (await store.list_calls("acme", limit=1000))[0]]
    assert len(expected) == 25

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        records, cursor = await store.list_calls("acme", limit=4, cursor=cursor)
        seen += [r.session_id for r in records]
        pages += 1
        # New calls arrive between page requests: they are newer than the cursor.
        await store.insert_call(make_call(f"n{pages:02d}", 100 + pages))
        if cursor is None:
            break
    assert seen == expected
    assert pages == 7  # 6 full pages of 4 and one of 1


async def test_exact_multiple_of_the_limit_ends_without_a_cursor(
    store: SqliteStore, make_call: MakeCall
) -> None:
    for i in range(6):
        await store.insert_call(make_call(f"c{i}", i))
    first, cursor = await store.list_calls("acme", limit=3)
    assert [r.session_id for r in first] == ["c5", "c4", "c3"]
    assert cursor == encode_cursor(at(3), "c3")
    second, cursor2 = await store.list_calls("acme", limit=3, cursor=cursor)
    assert [r.session_id for r in second] == ["c2", "c1", "c0"]
    assert cursor2 is None


async def test_pagination_while_inserts_run_concurrently(
    store: SqliteStore, make_call: MakeCall
) -> None:
    for i in range(40):
        await store.insert_call(make_call(f"c{i:02d}", i))

    async def writer() -> None:
        for i in range(40):
            await store.insert_call(make_call(f"z{i:02d}", 1000 + i))
            await asyncio.sleep(0)

    async def reader() -> list[str]:
        seen: list[str] = []
        cursor = None
        while True:
            records, cursor = await store.list_calls("acme", limit=3, cursor=cursor)
            seen += [r.session_id for r in records]
            if cursor is None:
                return seen

    _, seen = await asyncio.gather(writer(), reader())
    old = [s for s in seen if s.startswith("c")]
    assert old == [f"c{i:02d}" for i in reversed(range(40))]
    assert len(seen) == len(set(seen))


async def test_list_filters(store: SqliteStore, make_call: MakeCall) -> None:
    await store.insert_call(make_call("q1", 0))
    await store.insert_call(make_call("done", 10, status=S.COMPLETED))
    await store.insert_call(make_call("busy", 20, status=S.BUSY, flow_id="other-flow"))
    await store.insert_call(make_call("in", 30, direction="inbound", status=S.COMPLETED))

    assert await page_ids(store, status=S.COMPLETED) == ["in", "done"]
    assert await page_ids(store, flow_id="other-flow") == ["busy"]
    assert await page_ids(store, direction="inbound") == ["in"]
    assert await page_ids(store, direction="outbound", status=S.COMPLETED) == ["done"]
    # created_from inclusive, created_to exclusive.
    assert await page_ids(store, created_from=at(10)) == ["in", "busy", "done"]
    assert await page_ids(store, created_to=at(20)) == ["done", "q1"]
    assert await page_ids(store, created_from=at(10), created_to=at(30)) == ["busy", "done"]
    assert await page_ids(store, status=S.NO_ANSWER) == []


async def test_filters_hold_across_pages(store: SqliteStore, make_call: MakeCall) -> None:
    for i in range(10):
        await store.insert_call(make_call(f"c{i}", i, status=S.COMPLETED if i % 2 else S.BUSY))
    first, cursor = await store.list_calls("acme", status=S.COMPLETED, limit=3)
    second, cursor = await store.list_calls("acme", status=S.COMPLETED, limit=3, cursor=cursor)
    assert [r.session_id for r in first + second] == ["c9", "c7", "c5", "c3", "c1"]
    assert cursor is None


@pytest.mark.parametrize("limit", [0, -1, 1001])
async def test_limit_is_1_to_1000(store: SqliteStore, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.list_calls("acme", limit=limit)


async def test_limit_bounds_are_accepted(store: SqliteStore, make_call: MakeCall) -> None:
    await store.insert_call(make_call("c1", 0))
    await store.insert_call(make_call("c2", 1))
    records, cursor = await store.list_calls("acme", limit=1)
    assert [r.session_id for r in records] == ["c2"] and cursor is not None
    records, cursor = await store.list_calls("acme", limit=1000)
    assert len(records) == 2 and cursor is None


async def test_bad_cursor_is_refused(store: SqliteStore) -> None:
    with pytest.raises(InvalidCursor):
        await store.list_calls("acme", cursor="not a cursor")


# -- live calls ------------------------------------------------------------------------


async def test_count_live_calls(store: SqliteStore, make_call: MakeCall) -> None:
    statuses = [S.QUEUED, S.DIALING, S.RINGING, S.IN_PROGRESS, S.COMPLETED, S.FAILED, S.BUSY]
    for i, status in enumerate(statuses):
        await store.insert_call(make_call(f"c{i}", i, status=status))
    await store.insert_call(make_call("theirs", 0, org_id="other", status=S.RINGING))
    assert await store.count_live_calls("acme") == 4
    assert await store.count_live_calls("other") == 1
    assert await store.count_live_calls("nobody") == 0


async def test_fail_live_calls(store: SqliteStore, make_call: MakeCall) -> None:
    await store.insert_call(make_call("q", 0, status=S.QUEUED))
    await store.insert_call(make_call("r", 1, status=S.RINGING, org_id="other"))
    await store.insert_call(
        make_call("talking", 2, status=S.IN_PROGRESS, answered_at=at(10), hangup_by=None)
    )
    done = make_call("done", 3, status=S.COMPLETED, hangup_by="remote", ended_at=at(5))
    await store.insert_call(done)

    now = at(70)
    assert await store.fail_live_calls(now) == ["q", "r", "talking"]
    for sid, duration in [("q", 0), ("r", 0), ("talking", 60_000)]:
        got = await store.get_call(None, sid)
        assert got is not None
        assert got.status is S.FAILED
        assert got.hangup_by == "system"
        assert got.ended_at == now
        assert got.duration_ms == duration
        assert got.error == {
            "code": "system_restart",
            "message": "the server stopped while the call was live",
        }
    assert await store.get_call(None, "done") == done
    assert await store.count_live_calls("acme") == 0
    assert await store.fail_live_calls(at(80)) == []


async def test_fail_live_calls_takes_only_the_nodes_own_and_ownerless_calls(
    store: SqliteStore, make_call: MakeCall
) -> None:
    # Several servers share the database: a node that starts (or reaps a dead peer)
    # must not fail the calls another live node is running.
    await store.insert_call(make_call("mine", 0, status=S.RINGING, node_id="n1"))
    await store.insert_call(make_call("theirs", 1, status=S.RINGING, node_id="n2"))
    await store.insert_call(make_call("legacy", 2, status=S.QUEUED))  # stored before 0002
    assert (await store.get_call(None, "mine")).node_id == "n1"  # type: ignore[union-attr]
    assert await store.fail_live_calls(at(10), "n1") == ["mine", "legacy"]
    assert (await store.get_call(None, "theirs")).status is S.RINGING  # type: ignore[union-attr]
    assert await store.fail_live_calls(at(20), "n2") == ["theirs"]


# -- idempotency -----------------------------------------------------------------------


async def test_idempotency_put_get_and_race(store: SqliteStore) -> None:
    first = IdempotencyRecord("acme", "key-1", "hash-a", "c1", at(0))
    assert await store.put_idempotency(first) is True
    # A concurrent request with the same key loses.
    assert (
        await store.put_idempotency(IdempotencyRecord("acme", "key-1", "h", "c2", at(1))) is False
    )
    assert await store.get_idempotency("acme", "key-1", at(0)) == first
    # Keys are per organization.
    assert (
        await store.put_idempotency(IdempotencyRecord("other", "key-1", "h", "c3", at(1))) is True
    )
    assert await store.get_idempotency("other", "key-1", at(0)) is not None
    assert await store.get_idempotency("acme", "key-2", at(0)) is None


async def test_idempotency_window(store: SqliteStore) -> None:
    record = IdempotencyRecord("acme", "k", "hash-a", "c1", at(0))
    await store.put_idempotency(record)
    assert await store.get_idempotency("acme", "k", since=at(0)) == record  # inclusive
    assert await store.get_idempotency("acme", "k", since=at(0.001)) is None

    day = timedelta(hours=24)
    # Still inside the window (exactly 24 h old): the old record stands.
    same_window = IdempotencyRecord("acme", "k", "hash-b", "c2", at(0) + day)
    assert await store.put_idempotency(same_window) is False
    # Past it: the stale record is replaced.
    later = IdempotencyRecord("acme", "k", "hash-b", "c3", at(1) + day)
    assert await store.put_idempotency(later) is True
    assert await store.get_idempotency("acme", "k", since=at(0)) == later


async def test_racing_idempotency_puts_have_one_winner(store: SqliteStore) -> None:
    results = await asyncio.gather(
        *(
            store.put_idempotency(IdempotencyRecord("acme", "k", "h", f"c{i}", at(i)))
            for i in range(5)
        )
    )
    assert sorted(results) == [False, False, False, False, True]


async def test_write_sessions_appends_and_saves_in_one_go(
    store: SqliteStore, make_call: MakeCall
) -> None:
    c1, c2 = make_call("c1"), make_call("c2")
    await store.insert_call(c1)
    await store.insert_call(c2)
    c1.status = CallStatus.DIALING
    c2.status = CallStatus.RINGING
    c2.sip = {"callId": "abc@host"}
    events = [
        CallEvent("c1", 1, "status", at(1), {"status": "dialing"}),
        CallEvent("c2", 1, "status", at(1), {"status": "ringing"}),
        CallEvent("c1", 2, "sip.invite", at(2)),
    ]
    await store.write_sessions(events, [c1, c2])
    got1, got2 = await store.get_call("acme", "c1"), await store.get_call("acme", "c2")
    assert got1 is not None and got1.status is CallStatus.DIALING
    assert got2 is not None and got2.status is CallStatus.RINGING
    assert got2.sip == {"callId": "abc@host"}
    assert [e.seq for e in await store.get_events("c1")] == [1, 2]
    await store.write_sessions([], [])  # nothing to do

    # All or nothing: a duplicate seq leaves the record unsaved too.
    c1.status = CallStatus.RINGING
    with pytest.raises(Conflict):
        await store.write_sessions([CallEvent("c1", 2, "again", at(3))], [c1])
    again = await store.get_call("acme", "c1")
    assert again is not None and again.status is CallStatus.DIALING


async def test_write_sessions_saves_what_a_live_call_changes(
    store: SqliteStore, make_call: MakeCall
) -> None:
    full = full_record(make_call)
    inserted = make_call(
        "c_full",
        5.0,
        request=full.request,
        webhook_url=full.webhook_url,
        idempotency_key=full.idempotency_key,
    )
    await store.insert_call(inserted)
    await store.write_sessions([], [full])
    assert await store.get_call("acme", "c_full") == full

    # What insert_call stored and a call never changes is left as it was.
    moved = make_call("c_full", 5.0, to="sip:carol@127.0.0.1", request={"to": "x"})
    await store.write_sessions([], [moved])
    got = await store.get_call("acme", "c_full")
    assert got is not None and got.status is S.QUEUED and got.answered_at is None
    assert got.to == full.to and got.request == full.request
