"""Two servers as one: a shared database and a shared Redis (DIALFLOW_REDIS_URL).

Each node has its own HTTP port, SIP endpoint and data dir (so its own node id); a load
balancer would send any request to either. SIPp is the far end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dialflow.api.app import create_app
from dialflow.calls.session import utcnow
from dialflow.cluster.node import ClusterError
from dialflow.config import Settings
from dialflow.store.models import CallStatus

from ..interop.peers import Sipp, find_free_udp_port
from ..redis_server import redis_url  # noqa: F401  (the session fixture)
from .conftest import Server, live_call, start_server, stop_server

pytestmark = pytest.mark.interop

PAUSE_FLOW = {
    "id": "hold",
    "start": "wait",
    "nodes": {"wait": {"type": "pause", "seconds": 30, "next": "end"}, "end": {"type": "hangup"}},
}


@pytest.fixture
async def nodes(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    shared_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Server, Server]]:
    monkeypatch.setenv("DIALFLOW_WEBHOOK_ALLOW_PRIVATE", "1")
    a = await start_server(tmp_path / "a", database_url=shared_database_url, redis_url=redis_url)
    b = await start_server(tmp_path / "b", database_url=shared_database_url, redis_url=redis_url)
    try:
        yield a, b
    finally:
        await stop_server(a)
        await stop_server(b)


async def _wait_for(server: Server, path: str, headers: dict[str, str], status: str) -> None:
    for _ in range(200):
        got = await server.http.get(path, headers=headers)
        if got.json()["status"] == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {status}: {got.json()['status']}")


async def test_two_nodes_share_limits_calls_and_keys(nodes: tuple[Server, Server]) -> None:
    a, b = nodes
    assert a.app_state.cluster.node_id != b.app_state.cluster.node_id
    _, headers = await a.org("acme", maxConcurrentCalls=1, callsPerSecond=100)
    await a.flow("acme", headers, PAUSE_FLOW)
    health = await b.http.get("/healthz")
    assert health.status_code == 200 and health.json()["checks"]["redis"] is True

    with Sipp("uas_answer", timeout=20) as uas:
        first = await a.http.post(
            "/v1/organizations/acme/flows/hold/calls",
            json={"to": uas.uri("bob")},
            headers=headers,
        )
        assert first.status_code == 202, first.text
        path = first.headers["location"]
        # Node b sees node a's call (the shared database) …
        await _wait_for(b, path, headers, "in_progress")
        # … counts it against the organization's one slot …
        second = await b.http.post(
            "/v1/organizations/acme/flows/hold/calls",
            json={"to": uas.uri("carol")},
            headers=headers,
        )
        assert second.status_code == 429, second.text
        assert second.json()["error"]["code"] == "rate_limited"
        # … and hangs it up: node a holds the SIP dialog, node b asks it over Redis.
        await asyncio.sleep(0.2)  # SIPp 3.6 aborts on a BYE right after its ACK
        ended = await b.http.delete(path, headers=headers)
        result = await asyncio.to_thread(uas.wait)
    assert ended.status_code == 200
    assert ended.json()["status"] == "completed", ended.json()
    assert ended.json()["hangupBy"] == "api"
    assert result.ok, result.summary()  # SIPp got node a's BYE

    # The slot is free again for either node.
    again = await b.http.post(
        "/v1/organizations/acme/flows/hold/calls",
        json={"to": "sip:nobody@127.0.0.1:9", "ringTimeout": 1},
        headers=headers,
    )
    assert again.status_code == 202, again.text


async def test_a_key_revoked_on_one_node_is_refused_by_the_other_at_once(
    nodes: tuple[Server, Server],
) -> None:
    a, b = nodes
    _, headers = await a.org("acme")
    k = await a.http.post(
        "/v1/organizations/acme/api-keys", json={"name": "second"}, headers=a.admin()
    )
    second = {"Authorization": f"Bearer {k.json()['key']}"}
    assert (await b.http.get("/v1/organizations/acme", headers=second)).status_code == 200
    r = await a.http.delete(f"/v1/organizations/acme/api-keys/{k.json()['id']}", headers=a.admin())
    assert r.status_code == 204
    # Without Redis node b would accept the key from its cache for up to 2 s more.
    for _ in range(20):
        refused = await b.http.get("/v1/organizations/acme", headers=second)
        if refused.status_code == 401:
            break
        await asyncio.sleep(0.01)
    assert refused.status_code == 401
    assert (await b.http.get("/v1/organizations/acme", headers=headers)).status_code == 200
    renamed = await a.http.patch(
        "/v1/organizations/acme", json={"name": "Renamed"}, headers=a.admin()
    )
    assert renamed.status_code == 200
    for _ in range(20):
        org = await b.http.get("/v1/organizations/acme", headers=headers)
        if org.json()["name"] == "Renamed":
            break
        await asyncio.sleep(0.01)
    assert org.json()["name"] == "Renamed"


async def test_one_idempotency_key_on_two_nodes_makes_one_call(
    nodes: tuple[Server, Server],
) -> None:
    a, b = nodes
    _, headers = await a.org("acme")
    await a.flow("acme", headers, PAUSE_FLOW)
    body = {"to": "sip:nobody@127.0.0.1:9", "ringTimeout": 1}
    idem = {**headers, "Idempotency-Key": "order-42"}

    async def post(server: Server) -> Any:
        return await server.http.post(
            "/v1/organizations/acme/flows/hold/calls", json=body, headers=idem
        )

    results = await asyncio.gather(post(a), post(b), post(a), post(b))
    assert {r.status_code for r in results} == {202}
    assert len({r.json()["sessionId"] for r in results}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in results) == 3


async def test_a_server_refuses_to_start_without_its_redis(tmp_path: Path) -> None:
    settings = Settings.from_env(
        sip_port=find_free_udp_port(tcp=True),
        data_dir=tmp_path / "data",
        redis_url="redis://:secret@127.0.0.1:1/0",
    )
    app = create_app(settings)
    with pytest.raises(ClusterError) as exc:
        async with app.router.lifespan_context(app):
            pass
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in str(exc.value)
    assert "secret" not in str(exc.value)


async def test_a_dead_nodes_live_calls_are_failed_by_another_node(
    nodes: tuple[Server, Server],
) -> None:
    a, b = nodes
    await a.org("acme")
    store = a.app_state.store
    a_node = a.app_state.cluster

    # "ghost" ran a call and died: it is a known node without a liveness key.
    await store.insert_call(live_call("ghost-call", "ghost"))
    await store.insert_call(live_call("a-call", a_node.node_id))
    await a_node.redis.sadd("dialflow:nodes", "ghost")
    assert await b.app_state.cluster.dead_nodes() == ["ghost"]
    reaped = await b.app_state.cluster.reap(b.app_state.service)
    assert reaped == ["ghost-call"]
    ghost = await store.get_call("acme", "ghost-call")
    assert ghost.status is CallStatus.FAILED and ghost.hangup_by == "system"
    # The live node's call is untouched, and the dead node is forgotten.
    assert (await store.get_call("acme", "a-call")).status is CallStatus.IN_PROGRESS
    assert await b.app_state.cluster.dead_nodes() == []
    await store.fail_live_calls(utcnow(), a_node.node_id)  # tidy: no SIP dialog behind it
