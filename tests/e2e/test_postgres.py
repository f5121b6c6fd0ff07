"""One server on PostgreSQL without Redis (embedded mode): a real call through the HTTP
API, SIP (SIPp as the far end) and the webhook queue, stored in PostgreSQL; then a
restart that recovers this node's live calls and leaves another node's alone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dialflow.calls.session import utcnow
from dialflow.store.postgres import PostgresStore

from ..interop.peers import Sipp
from .conftest import Receiver, live_call, start_server, stop_server

pytestmark = pytest.mark.interop

# SIPp's uas_answer aborts on a BYE within milliseconds of its ACK: pause first.
SHORT_FLOW = {
    "id": "short",
    "start": "wait",
    "nodes": {"wait": {"type": "pause", "seconds": 0.3, "next": "end"}, "end": {"type": "hangup"}},
}


async def test_a_call_on_postgresql_and_recovery_of_only_this_nodes_calls(
    tmp_path: Path,
    shared_database_url: str,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIALFLOW_WEBHOOK_ALLOW_PRIVATE", "1")
    srv = await start_server(tmp_path, database_url=shared_database_url)
    try:
        assert isinstance(srv.app_state.store, PostgresStore)
        node_id = srv.app_state.service.node_id
        _, headers = await srv.org("acme")
        await srv.flow("acme", headers, SHORT_FLOW)
        with Sipp("uas_answer", timeout=15) as uas:
            r = await srv.http.post(
                "/v1/organizations/acme/flows/short/calls",
                json={"to": uas.uri("bob"), "mode": "webhook", "webhookUrl": receiver.url},
                headers=headers,
            )
            assert r.status_code == 202, r.text
            session_id = r.json()["sessionId"]
            call = await srv.wait_status("acme", session_id, headers)
            result = await asyncio.to_thread(uas.wait)
        assert call["status"] == "completed", call
        assert call["hangupBy"] == "flow" and call["flow"]["path"] == ["wait", "end"]
        assert result.ok, result.summary()
        for _ in range(200):
            if receiver.requests and receiver.requests[-1]["json"]["type"] == "call.completed":
                break
            await asyncio.sleep(0.05)
        types = [q["json"]["type"] for q in receiver.requests]
        assert types == ["call.ringing", "call.answered", "call.completed"], types
        events = await srv.http.get(
            f"/v1/organizations/acme/calls/{session_id}/events", headers=headers
        )
        statuses = [e["status"] for e in events.json()["data"] if e["type"] == "status"]
        assert statuses[0] == "queued" and statuses[-1] == "completed", statuses
        stored = await srv.app_state.store.get_call("acme", session_id)
        assert stored is not None and stored.node_id == node_id
    finally:
        await stop_server(srv)

    # Calls left live in the shared database: one of this node's (it died mid-call) and
    # one another node is running right now.
    store = PostgresStore(shared_database_url)
    await store.open()
    try:
        await store.insert_call(live_call("mine", node_id, answered_at=utcnow()))
        await store.insert_call(live_call("theirs", "elsewhere", answered_at=utcnow()))
    finally:
        await store.close()

    srv = await start_server(tmp_path, database_url=shared_database_url)  # same data dir
    try:
        assert srv.app_state.service.node_id == node_id
        mine = (await srv.http.get("/v1/organizations/acme/calls/mine", headers=headers)).json()
        assert mine["status"] == "failed" and mine["hangupBy"] == "system", mine
        assert mine["error"]["code"] == "system_restart"
        theirs = await srv.http.get("/v1/organizations/acme/calls/theirs", headers=headers)
        assert theirs.json()["status"] == "in_progress"
    finally:
        await stop_server(srv)
