"""Operations: restarts (records, crashed calls, pending webhooks), flows-dir, metrics, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dialflow.store.factory import open_store
from dialflow.store.models import CallRecord, CallStatus, Organization

from ..interop.peers import Sipp
from .conftest import ADMIN, Receiver, Server, free_tcp_port, start_server, stop_server

pytestmark = pytest.mark.interop

BYE = {"id": "bye", "start": "end", "nodes": {"end": {"type": "hangup"}}}


async def test_calls_live_at_a_crash_become_failed_with_their_last_webhook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    monkeypatch.setenv("DIALFLOW_WEBHOOK_ALLOW_PRIVATE", "1")
    store = await open_store(None, tmp_path / "data")
    now = datetime.now(UTC)
    await store.create_org(Organization("acme", "Acme", webhook_secret="whsec_x"))
    await store.insert_call(
        CallRecord(
            session_id="c_crashed",
            org_id="acme",
            flow_id="bye",
            flow_version=1,
            direction="outbound",
            mode="webhook",
            to="sip:a@127.0.0.1",
            from_=None,
            status=CallStatus.IN_PROGRESS,
            created_at=now,
            answered_at=now,
            webhook_url=receiver.url,
        )
    )
    await store.close()
    srv = await start_server(tmp_path)
    try:
        r = await srv.http.get("/v1/organizations/acme/calls/c_crashed", headers=srv.admin())
        call = r.json()
        assert call["status"] == "failed" and call["hangupBy"] == "system"
        assert call["error"]["code"] == "system_restart"
        for _ in range(100):
            if receiver.requests:
                break
            await asyncio.sleep(0.05)
        assert [q["json"]["type"] for q in receiver.requests] == ["call.completed"]
    finally:
        await stop_server(srv)


async def test_pending_webhook_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIALFLOW_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("DIALFLOW_WEBHOOK_RETRY_BASE", "0.5")
    receiver = Receiver(port=free_tcp_port())  # not listening yet: connection refused
    srv = await start_server(tmp_path)
    try:
        _, headers = await srv.org("acme")
        await srv.flow("acme", headers, BYE)
        r = await srv.http.post(
            "/v1/organizations/acme/flows/bye/calls",
            json={"to": "+15550100", "mode": "webhook", "webhookUrl": receiver.url},
            headers=headers,
        )
        assert r.status_code == 422  # no trunk: nothing stored, nothing sent
        with Sipp("uas_busy", timeout=10) as uas:
            r = await srv.http.post(
                "/v1/organizations/acme/flows/bye/calls",
                json={"to": uas.uri("b"), "mode": "webhook", "webhookUrl": receiver.url},
                headers=headers,
            )
            session_id = r.json()["sessionId"]
            await srv.wait_status("acme", session_id, headers)
            await asyncio.to_thread(uas.wait)
        await asyncio.sleep(0.3)
        d = await srv.http.get(
            f"/v1/organizations/acme/calls/{session_id}/webhook-deliveries", headers=headers
        )
        attempts = d.json()["data"]
        assert attempts and attempts[0]["statusCode"] is None and attempts[0]["willRetry"]
    finally:
        await stop_server(srv)
    await receiver.start()
    srv = await start_server(tmp_path)
    try:
        for _ in range(200):
            if any(q["json"]["type"] == "call.failed" for q in receiver.requests):
                break
            await asyncio.sleep(0.05)
        types = [q["json"]["type"] for q in receiver.requests]
        assert types == ["call.failed"], types  # uas_busy sends no 180
    finally:
        await stop_server(srv)
        await receiver.close()


async def test_flows_dir_and_metrics(tmp_path: Path) -> None:
    flows = tmp_path / "flows" / "acme"
    flows.mkdir(parents=True)
    (flows / "bye.yaml").write_text("id: bye\nstart: end\nnodes:\n  end: {type: hangup}\n")
    (flows / "broken.yaml").write_text("id: broken\nstart: nowhere\nnodes: {}\n")
    srv = await start_server(tmp_path)
    try:
        await srv.org("acme")
    finally:
        await stop_server(srv)
    srv = await start_server(tmp_path, flows_dir=tmp_path / "flows")
    try:
        r = await srv.http.get("/v1/organizations/acme/flows", headers=srv.admin())
        assert [f["id"] for f in r.json()["data"]] == ["bye"]
        with Sipp("uas_busy", timeout=10) as uas:
            r = await srv.http.post(
                "/v1/organizations/acme/flows/bye/calls",
                json={"to": uas.uri("b"), "mode": "sync"},
                headers=srv.admin(),
            )
            await asyncio.to_thread(uas.wait)
        assert r.json()["status"] == "busy"
        text = (await srv.http.get("/metrics")).text
        assert 'dialflow_calls_total{status="busy"} 1.0' in text
        assert "dialflow_api_request_duration_seconds_bucket" in text
        assert "dialflow_active_calls 0.0" in text
    finally:
        await stop_server(srv)


async def test_cli_push_and_call(server: Server, tmp_path: Path) -> None:
    _, headers = await server.org("acme")
    flow_file = tmp_path / "bye.yaml"
    flow_file.write_text("id: bye\nstart: end\nnodes:\n  end: {type: hangup}\n")
    env = {
        **os.environ,
        "DIALFLOW_URL": server.base_url,
        "DIALFLOW_TOKEN": ADMIN,
        "DIALFLOW_ORG": "acme",
    }
    exe = str(Path(sys.executable).with_name("dialflow"))

    async def run(*args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            exe, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode()

    code, out = await run("flows", "push", str(flow_file))
    assert code == 0 and "flow bye version 1" in out, out
    code, out = await run("flows", "push", str(flow_file))
    assert code == 0 and "version 2" in out, out
    with Sipp("uas_busy", timeout=10) as uas:
        code, out = await run("call", "--flow", "bye", "--to", uas.uri("b"), "--json")
        await asyncio.to_thread(uas.wait)
    call = json.loads(out.strip().splitlines()[-1])
    assert code == 1 and call["status"] == "busy"
    code, out = await run("call", "--flow", "nope", "--to", "sip:a@127.0.0.1")
    assert code == 2 and "404" in out
