"""The call API end to end: the real server (HTTP, SIP, SQLite) against SIPp as the far end."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import pytest

from dialflow.webhooks.signing import verify

from ..interop.peers import Sipp
from .conftest import Receiver, Server, start_server, stop_server

pytestmark = pytest.mark.interop

HANGUP_FLOW = {"id": "bye", "start": "end", "nodes": {"end": {"type": "hangup"}}}
# SIPp's uas_answer aborts on a BYE that lands in the very millisecond after the ACK
# (while it walks its optional steps), so the short flow waits a moment first.
SHORT_FLOW = {
    "id": "short",
    "start": "wait",
    "nodes": {"wait": {"type": "pause", "seconds": 0.3, "next": "end"}, "end": {"type": "hangup"}},
}
PAUSE_FLOW = {
    "id": "hold",
    "start": "wait",
    "nodes": {"wait": {"type": "pause", "seconds": 30, "next": "end"}, "end": {"type": "hangup"}},
}


async def _setup(server: Server, **org: Any) -> dict[str, str]:
    _, headers = await server.org("acme", **org)
    await server.flow("acme", headers, HANGUP_FLOW)
    await server.flow("acme", headers, PAUSE_FLOW)
    await server.flow("acme", headers, SHORT_FLOW)
    return headers


async def _call(
    server: Server, headers: dict[str, str], body: dict[str, Any], flow: str = "bye", **kw: Any
) -> Any:
    return await server.http.post(
        f"/v1/organizations/acme/flows/{flow}/calls", json=body, headers=headers, **kw
    )


# -- statuses, one per SIPp scenario


async def test_completed_in_sync_mode(server: Server) -> None:
    headers = await _setup(server)
    with Sipp("uas_answer", timeout=15) as uas:  # waits for our BYE
        r = await _call(
            server,
            headers,
            {"to": uas.uri("bob"), "mode": "sync", "from": "+15550001111", "record": True},
            flow="short",
        )
        result = await asyncio.to_thread(uas.wait)
    assert r.status_code == 200, r.text
    rec = await server.http.get(r.json()["recordingUrl"], headers=headers)
    assert rec.status_code == 200 and rec.headers["content-type"] == "audio/wav"
    assert rec.content[:4] == b"RIFF" and len(rec.content) > 44 + 16000 * 0.2
    call = r.json()
    assert call["status"] == "completed"
    assert call["sip"]["finalCode"] == 200 and call["sip"]["callId"]
    assert call["hangupBy"] == "flow" and call["flow"]["outcome"] == "completed"
    assert call["flow"]["path"] == ["wait", "end"]
    assert call["answeredAt"] and call["endedAt"] and call["durationMs"] is not None
    assert call["flowVersion"] == 1 and call["direction"] == "outbound"
    assert call["from"] == "+15550001111"
    assert result.ok, result.summary()


async def test_busy_poll_mode_with_location(server: Server) -> None:
    headers = await _setup(server)
    with Sipp("uas_busy", timeout=15) as uas:
        r = await _call(server, headers, {"to": uas.uri("busy")})
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "queued"
        location = r.headers["location"]
        assert location == f"/v1/organizations/acme/calls/{r.json()['sessionId']}"
        call = await server.wait_status("acme", r.json()["sessionId"], headers)
        result = await asyncio.to_thread(uas.wait)
    assert call["status"] == "busy" and call["sip"]["finalCode"] == 486
    assert result.ok, result.summary()


async def test_no_answer_sends_cancel(server: Server) -> None:
    headers = await _setup(server)
    with Sipp("uas_ring_cancel", timeout=15) as uas:
        r = await _call(server, headers, {"to": uas.uri("ring"), "ringTimeout": 1, "mode": "sync"})
        result = await asyncio.to_thread(uas.wait)
    call = r.json()
    assert call["status"] == "no_answer", call
    assert call["hangupBy"] == "timeout"
    assert result.ok, result.summary()  # the scenario only passes if our CANCEL arrived


async def test_failed_with_final_code(server: Server) -> None:
    headers = await _setup(server)
    with Sipp("uas_503", timeout=15) as uas:
        r = await _call(server, headers, {"to": uas.uri("x"), "mode": "sync"})
        result = await asyncio.to_thread(uas.wait)
    call = r.json()
    assert call["status"] == "failed"
    assert call["sip"]["finalCode"] == 503 and call["sip"]["finalReason"] == "Service Unavailable"
    assert call["error"]["code"] == "sip_failure"
    assert result.ok, result.summary()


async def test_delete_while_ringing_cancels(server: Server) -> None:
    headers = await _setup(server)
    with Sipp("uas_ring_cancel", timeout=15) as uas:
        r = await _call(server, headers, {"to": uas.uri("ring")})
        session_id = r.json()["sessionId"]
        for _ in range(100):
            got = await server.http.get(
                f"/v1/organizations/acme/calls/{session_id}", headers=headers
            )
            if got.json()["status"] == "ringing":
                break
            await asyncio.sleep(0.05)
        d = await server.http.delete(f"/v1/organizations/acme/calls/{session_id}", headers=headers)
        result = await asyncio.to_thread(uas.wait)
    assert d.status_code == 200
    assert d.json()["status"] == "canceled" and d.json()["hangupBy"] == "api"
    assert result.ok, result.summary()


async def test_delete_after_answer_hangs_up(server: Server) -> None:
    headers = await _setup(server)
    with Sipp("uas_answer", timeout=15) as uas:
        r = await _call(server, headers, {"to": uas.uri("bob")}, flow="hold")
        session_id = r.json()["sessionId"]
        for _ in range(100):
            got = await server.http.get(
                f"/v1/organizations/acme/calls/{session_id}", headers=headers
            )
            if got.json()["status"] == "in_progress":
                break
            await asyncio.sleep(0.05)
        # SIPp 3.6 aborts uas_answer on a BYE that arrives within a few ms of its ACK
        # (see tests/interop/test_tester_vs_peers.py); ours can, so let the ACK land.
        await asyncio.sleep(0.2)
        d = await server.http.delete(f"/v1/organizations/acme/calls/{session_id}", headers=headers)
        result = await asyncio.to_thread(uas.wait)
    assert d.json()["status"] == "completed" and d.json()["hangupBy"] == "api"
    assert result.ok, result.summary()  # SIPp got our BYE


async def test_sync_timeout_returns_202_and_max_duration(server: Server) -> None:
    headers = await _setup(server)
    with Sipp("uas_answer", timeout=15) as uas:
        r = await _call(
            server,
            headers,
            {"to": uas.uri("bob"), "mode": "sync", "syncTimeout": 1, "maxDuration": 2},
            flow="hold",
        )
        assert r.status_code == 202 and r.json()["status"] == "in_progress"
        call = await server.wait_status("acme", r.json()["sessionId"], headers)
        result = await asyncio.to_thread(uas.wait)
    assert call["status"] == "completed" and call["hangupBy"] == "timeout"
    assert 1500 <= call["durationMs"] <= 4000
    assert result.ok, result.summary()


# -- webhooks


async def test_webhooks_in_order_signed_and_retried(server: Server, receiver: Receiver) -> None:
    org, headers = await server.org("acme")
    await server.flow("acme", headers, HANGUP_FLOW)
    receiver.statuses = [500, 503]  # the first event fails twice, then succeeds
    with Sipp("uas_answer", uas_bye=True, hold_ms=300, timeout=15) as uas:
        r = await _call(
            server, headers, {"to": uas.uri("bob"), "mode": "webhook", "webhookUrl": receiver.url}
        )
        assert r.status_code == 202
        session_id = r.json()["sessionId"]
        await server.wait_status("acme", session_id, headers)
        await asyncio.to_thread(uas.wait)
    for _ in range(200):
        if receiver.requests and receiver.requests[-1]["json"]["type"] == "call.completed":
            break
        await asyncio.sleep(0.05)
    delivered = [q for q in receiver.requests if q["status"] == 200]
    types = [q["json"]["type"] for q in delivered]
    assert types == ["call.ringing", "call.answered", "call.completed"], types
    for q in receiver.requests:
        assert verify(org["webhookSecret"], q["body"], q["headers"]["dialflow-signature"])
        assert q["headers"]["dialflow-event-id"] == q["json"]["id"]
    assert [q["json"]["type"] for q in receiver.requests[:3]] == ["call.ringing"] * 3
    d = await server.http.get(
        f"/v1/organizations/acme/calls/{session_id}/webhook-deliveries", headers=headers
    )
    attempts = d.json()["data"]
    assert [a["statusCode"] for a in attempts][:3] == [500, 503, 200]
    assert attempts[0]["willRetry"] and not attempts[2]["willRetry"]


async def test_webhook_url_must_be_public_without_the_flag(tmp_path: Path) -> None:
    srv = await start_server(tmp_path, webhook_allow_private=False)
    try:
        _, headers = await srv.org("acme")
        await srv.flow("acme", headers, HANGUP_FLOW)
        r = await srv.http.post(
            "/v1/organizations/acme/flows/bye/calls",
            json={
                "to": "sip:bob@127.0.0.1:5999",
                "mode": "webhook",
                "webhookUrl": "http://127.0.0.1:9/hook",
            },
            headers=headers,
        )
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "webhook_url_not_allowed"
        assert r.json()["error"]["details"][0]["path"] == "body.webhookUrl"
    finally:
        await stop_server(srv)


# -- idempotency, limits, policy


async def test_idempotency_key(server: Server) -> None:
    headers = await _setup(server)
    with Sipp("uas_busy", timeout=15) as uas:
        body = {"to": uas.uri("busy")}
        key = {**headers, "Idempotency-Key": "k-1"}
        first = await _call(server, key, body)
        second = await _call(server, key, body)
        conflict = await _call(server, key, {"to": uas.uri("other")})
        await asyncio.to_thread(uas.wait)
    assert first.status_code == 202 and second.status_code == 202
    assert first.json()["sessionId"] == second.json()["sessionId"]
    assert conflict.status_code == 409
    listed = await server.http.get("/v1/organizations/acme/calls", headers=headers)
    assert len(listed.json()["data"]) == 1


async def test_concurrency_and_cps_limits(server: Server) -> None:
    headers = await _setup(server, maxConcurrentCalls=1, callsPerSecond=100)
    with Sipp("uas_ring_cancel", timeout=15) as uas:
        first = await _call(server, headers, {"to": uas.uri("ring"), "ringTimeout": 2})
        second = await _call(server, headers, {"to": uas.uri("ring")})
        await asyncio.to_thread(uas.wait)
    assert first.status_code == 202
    assert second.status_code == 429 and second.headers["retry-after"] == "1"
    assert second.json()["error"]["code"] == "rate_limited"

    r = await server.http.patch(
        "/v1/organizations/acme",
        json={"maxConcurrentCalls": 50, "callsPerSecond": 1},
        headers=server.admin(),
    )
    assert r.status_code == 200
    codes = []
    for _ in range(3):
        res = await _call(server, headers, {"to": "sip:nobody@127.0.0.1:9", "ringTimeout": 1})
        codes.append(res.status_code)
    assert codes[0] == 202 and 429 in codes


async def test_destination_policy(server: Server) -> None:
    headers = await _setup(server, allowedDestinations=["sip:*@127.0.0.1", "+1*"])
    r = await _call(server, headers, {"to": "sip:bob@192.0.2.10"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "destination_not_allowed"
    r = await _call(server, headers, {"to": "+4420"})
    assert r.status_code == 403
    for bad in ("sip:x@169.254.169.254", "sip:x@224.0.0.1", "sip:x@[fe80::1]"):
        r = await _call(server, headers, {"to": bad})
        assert r.status_code == 403, bad
    r = await _call(server, headers, {"to": "+14155550100"})  # allowed, but no trunk
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "body.trunk"


async def test_pstn_number_goes_through_default_trunk_with_digest(server: Server) -> None:
    headers = await _setup(server)
    with Sipp("uas_auth", timeout=15) as trunk:
        t = await server.http.post(
            "/v1/organizations/acme/trunks",
            json={
                "id": "main",
                "proxy": f"sip:{trunk.address}",
                "username": "alice",
                "password": "secret",
                "fromUser": "+15550001111",
                "default": True,
            },
            headers=headers,
        )
        assert t.status_code == 201, t.text
        assert "password" not in t.json() and t.json()["hasPassword"] is True
        r = await _call(server, headers, {"to": "tel:+14155550100", "mode": "sync"}, flow="bye")
        result = await asyncio.to_thread(trunk.wait)
    assert r.json()["status"] == "completed", r.json()
    assert result.ok, result.summary()
    invite = next(m for m in result.messages.split("\n\n") if "INVITE sip:+14155550100@" in m)
    assert "+15550001111" in invite
    listed = await server.http.get("/v1/organizations/acme/trunks", headers=headers)
    assert "secret" not in listed.text


# -- tenancy and bad input


async def test_tenancy_and_auth(server: Server) -> None:
    _, acme = await server.org("acme")
    _, other = await server.org("other")
    await server.flow("acme", acme, HANGUP_FLOW)
    r = await server.http.get("/v1/organizations/acme")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = await server.http.get("/v1/organizations/acme", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    for path in (
        "/v1/organizations/acme",
        "/v1/organizations/acme/flows/bye",
        "/v1/organizations/acme/calls",
        "/v1/organizations/acme/trunks",
    ):
        r = await server.http.get(path, headers=other)
        assert r.status_code == 404, path
    r = await server.http.post(
        "/v1/organizations/acme/flows/bye/calls", json={"to": "sip:a@127.0.0.1"}, headers=other
    )
    assert r.status_code == 404
    r = await server.http.post("/v1/organizations", json={"id": "x", "name": "X"}, headers=acme)
    assert r.status_code == 403
    r = await server.http.get("/v1/organizations/acme", headers=acme)
    assert r.status_code == 200 and "webhookSecret" not in r.json()


async def test_bad_input(server: Server) -> None:
    headers = await _setup(server)
    url = "/v1/organizations/acme/flows/bye/calls"
    r = await server.http.post(
        url, content=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    r = await _call(server, headers, {"to": "sip:a@127.0.0.1", "amd": {"timeoutMs": "soon"}})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == "body.amd.timeoutMs"
    r = await _call(server, headers, {"to": "sip:a@127.0.0.1", "ringTimeout": 500})
    assert r.json()["error"]["details"][0]["path"] == "body.ringTimeout"
    r = await _call(server, headers, {"to": "sip:a@127.0.0.1", "colour": "blue"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "body.colour"
    r = await _call(server, headers, {"to": "sip:a@127.0.0.1", "mode": "webhook"})
    assert r.json()["error"]["details"][0]["path"] == "body.webhookUrl"
    r = await _call(server, headers, {"to": "mailto:bob@example.com"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "body.to"
    r = await server.http.post(url, content=b"x" * (2 * 1024 * 1024), headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = await server.http.get("/v1/organizations/acme/calls?limit=0", headers=headers)
    assert r.status_code == 422
    r = await server.http.get("/v1/organizations/acme/calls?from=yesterday", headers=headers)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == "query.from"


# -- flows, records, listing


async def test_flow_versions_and_validation(server: Server) -> None:
    _, headers = await server.org("acme")
    yaml_doc = (
        "id: menu\nstart: a\nnodes:\n  a: {type: say, text: hi, next: b}\n  b: {type: hangup}\n"
    )
    r = await server.http.post(
        "/v1/organizations/acme/flows",
        content=yaml_doc,
        headers={**headers, "Content-Type": "application/yaml"},
    )
    assert r.status_code == 201 and r.json()["version"] == 1
    r = await server.http.put(
        "/v1/organizations/acme/flows/menu", json=HANGUP_FLOW | {"id": "menu"}, headers=headers
    )
    assert r.status_code == 200 and r.json()["version"] == 2
    bad = {
        "id": "bad",
        "start": "a",
        "nodes": {"a": {"type": "say", "text": "x", "next": "nowhere"}, "b": {"type": "teleport"}},
    }
    r = await server.http.post("/v1/organizations/acme/flows", json=bad, headers=headers)
    assert r.status_code == 422
    paths = {d["path"] for d in r.json()["error"]["details"]}
    assert "nodes.a.next" in paths and any(p.startswith("nodes.b") for p in paths)
    r = await server.http.get("/v1/organizations/acme/flows/menu?version=1", headers=headers)
    assert r.json()["version"] == 1 and r.json()["document"]["nodes"]["a"]["type"] == "say"
    # Versions that cannot exist are not found, even beyond what SQLite can bind.
    for version in ("0", "-1", str(2**63), str(-(2**64))):
        r = await server.http.get(
            f"/v1/organizations/acme/flows/menu?version={version}", headers=headers
        )
        assert r.status_code == 404, version


async def test_list_filters_pagination_csv_and_restart(tmp_path: Path) -> None:
    srv = await start_server(tmp_path)
    try:
        headers = await _setup(srv)
        with Sipp("uas_busy", calls=5, timeout=20) as uas:
            ids = []
            for _ in range(5):
                r = await _call(srv, headers, {"to": uas.uri("busy")})
                ids.append(r.json()["sessionId"])
                await srv.wait_status("acme", ids[-1], headers)
            await asyncio.to_thread(uas.wait)
        seen: list[str] = []
        cursor = None
        while True:
            q = "/v1/organizations/acme/calls?limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = (await srv.http.get(q, headers=headers)).json()
            seen += [c["sessionId"] for c in page["data"]]
            cursor = page["nextCursor"]
            if not cursor:
                break
        assert seen == list(reversed(ids))
        r = await srv.http.get("/v1/organizations/acme/calls?status=completed", headers=headers)
        assert r.json()["data"] == []
        r = await srv.http.get(
            "/v1/organizations/acme/calls", headers={**headers, "Accept": "text/csv"}
        )
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert r.headers["content-type"].startswith("text/csv")
        assert len(rows) == 5 and {row["status"] for row in rows} == {"busy"}
    finally:
        await stop_server(srv)
    srv = await start_server(tmp_path)  # same data dir: records survive a restart
    try:
        r = await srv.http.get(f"/v1/organizations/acme/calls/{ids[0]}", headers=headers)
        assert r.status_code == 200 and r.json()["status"] == "busy"
        ev = await srv.http.get(f"/v1/organizations/acme/calls/{ids[0]}/events", headers=headers)
        statuses = [e["status"] for e in ev.json()["data"] if e["type"] == "status"]
        assert statuses == ["queued", "dialing", "ringing", "busy"] or statuses == [
            "queued",
            "dialing",
            "busy",
        ]
    finally:
        await stop_server(srv)


async def test_health_metrics_openapi(server: Server) -> None:
    r = await server.http.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    r = await server.http.get("/metrics")
    assert r.status_code == 200 and "dialflow_active_calls" in r.text
    r = await server.http.get("/openapi.json")
    paths = r.json()["paths"]
    for path in (
        "/v1/organizations",
        "/v1/organizations/{org_id}/flows/{flow_id}/calls",
        "/v1/organizations/{org_id}/calls/{session_id}/webhook-deliveries",
    ):
        assert path in paths
