"""End-to-end fixtures: the real server (uvicorn, SIP, SQLite) on free loopback ports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from dialflow.api.app import create_app
from dialflow.calls.session import utcnow
from dialflow.config import Settings
from dialflow.store.models import CallRecord, CallStatus

from ..interop.peers import find_free_udp_port
from ..pg_server import drop_database, new_database, postgres_server  # noqa: F401
from ..ports import free_tcp_port

ADMIN = "test-admin-token"


@dataclass
class Server:
    base_url: str
    settings: Settings
    http: httpx.AsyncClient
    uvicorn: uvicorn.Server

    @property
    def app_state(self) -> Any:
        return self.uvicorn.config.loaded_app.app.state.dialflow  # type: ignore[attr-defined]

    @property
    def sip_port(self) -> int:
        return int(self.app_state.endpoint.port)

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN}"}

    async def org(
        self, org_id: str = "acme", **fields: Any
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """Create an organization and an API key; returns (org body, key headers)."""
        body = {"id": org_id, "name": org_id.title(), **fields}
        r = await self.http.post("/v1/organizations", json=body, headers=self.admin())
        assert r.status_code == 201, r.text
        k = await self.http.post(
            f"/v1/organizations/{org_id}/api-keys", json={"name": "test"}, headers=self.admin()
        )
        assert k.status_code == 201, k.text
        return r.json(), {"Authorization": f"Bearer {k.json()['key']}"}

    async def flow(
        self, org_id: str, headers: dict[str, str], doc: dict[str, Any]
    ) -> dict[str, Any]:
        r = await self.http.post(f"/v1/organizations/{org_id}/flows", json=doc, headers=headers)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def wait_status(
        self, org_id: str, session_id: str, headers: dict[str, str], timeout: float = 20
    ) -> dict[str, Any]:
        """Poll until the call is terminal."""
        terminal = {"completed", "busy", "no_answer", "failed", "canceled"}
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            r = await self.http.get(
                f"/v1/organizations/{org_id}/calls/{session_id}", headers=headers
            )
            assert r.status_code == 200, r.text
            call = dict(r.json())
            if call["status"] in terminal:
                return call
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"call still {call['status']}")
            await asyncio.sleep(0.05)


async def start_server(tmp_path: Path, **overrides: Any) -> Server:
    rtp = find_free_udp_port(span=60)
    settings = Settings.from_env(
        host="127.0.0.1",
        port=free_tcp_port(),
        sip_host="127.0.0.1",
        sip_port=find_free_udp_port(tcp=True),
        rtp_ports=(rtp, rtp + 58),
        data_dir=tmp_path / "data",
        admin_token=ADMIN,
        **overrides,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            lifespan="on",
            loop="none",
        )
    )
    task = asyncio.get_running_loop().create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    base = f"http://{settings.host}:{settings.port}"
    http = httpx.AsyncClient(base_url=base, timeout=40)
    result = Server(base, settings, http, server)
    result._task = task  # type: ignore[attr-defined]
    return result


async def stop_server(server: Server) -> None:
    await server.http.aclose()
    server.uvicorn.should_exit = True
    await asyncio.wait_for(server._task, timeout=20)  # type: ignore[attr-defined]


@pytest.fixture
async def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Server]:
    monkeypatch.setenv("DIALFLOW_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("DIALFLOW_WEBHOOK_RETRY_BASE", "0.05")
    srv = await start_server(tmp_path)
    try:
        yield srv
    finally:
        await stop_server(srv)


@dataclass
class Receiver:
    """A local webhook endpoint: records requests; answers from a script of statuses."""

    port: int = 0
    statuses: list[int] = field(default_factory=list)  # consumed per request; then 200
    requests: list[dict[str, Any]] = field(default_factory=list)
    response: dict[str, Any] = field(default_factory=dict)  # JSON body of every answer
    _server: asyncio.base_events.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self.statuses.pop(0) if self.statuses else 200
                self.requests.append(
                    {
                        "headers": headers,
                        "body": body,
                        "json": json.loads(body) if body else None,
                        "status": status,
                    }
                )
                payload = json.dumps(self.response).encode()
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\nConnection: keep-alive\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    try:
        yield r
    finally:
        await r.close()


@pytest.fixture
async def shared_database_url(postgres_server: str) -> AsyncIterator[str]:  # noqa: F811
    """One PostgreSQL database for several servers in a test (dropped after it)."""
    url = await new_database(postgres_server)
    yield url
    await drop_database(url)


def live_call(session_id: str, node_id: str, **fields: Any) -> CallRecord:
    """A call row as a node writes it mid-call (in progress), for recovery tests."""
    values: dict[str, Any] = {
        "session_id": session_id,
        "org_id": "acme",
        "flow_id": None,
        "flow_version": None,
        "direction": "outbound",
        "mode": "poll",
        "to": "sip:bob@127.0.0.1:9",
        "from_": None,
        "status": CallStatus.IN_PROGRESS,
        "created_at": utcnow(),
        "node_id": node_id,
        **fields,
    }
    return CallRecord(**values)
