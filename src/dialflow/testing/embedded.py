"""The whole dialflow server inside this process, for ``dialflow test --embedded`` and
``dialflow demo``: the same app as ``dialflow serve`` (``create_app``) under uvicorn,
on free loopback ports, with a temporary data directory and a generated admin token.

    async with EmbeddedServer() as server:
        key = await server.create_org("acme")
        ...  # talk to server.base_url with the key; dial sip:N@{server.sip_address}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ..api.app import create_app
from ..config import Settings

log = logging.getLogger(__name__)


class EmbeddedError(RuntimeError):
    """The embedded server could not start."""


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handlers: Ctrl-C reaches asyncio.run, which cancels
    the main task, so the caller's ``finally`` shuts the server down in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass


class EmbeddedServer:
    """A dialflow server (HTTP API + SIP/RTP + flows + SQLite) running in this event loop."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        sip_port: int = 0,
        rtp_ports: tuple[int, int] | None = None,
        data_dir: Path | None = None,
        admin_token: str | None = None,
        keep_data: bool = False,
    ) -> None:
        self.host = host
        self._want_port = port
        self._want_sip_port = sip_port
        self._rtp_ports = rtp_ports
        self._own_data = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="dialflow-embedded-"))
        self.keep_data = keep_data
        self.admin_token = admin_token or "adm_" + secrets.token_urlsafe(24)
        self.port = 0
        self.settings: Settings | None = None
        self._app: Any = None
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        self._warm: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self, *, warm_up: bool = True) -> EmbeddedServer:
        """Start the server; with ``warm_up``, start the speech recognizer's workers in the
        background (await :meth:`wait_warm` before the first call that listens)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._want_port))
        except OSError as exc:
            sock.close()
            raise EmbeddedError(f"cannot listen on {self.host}:{self._want_port}: {exc}") from None
        self.port = int(sock.getsockname()[1])
        overrides: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "sip_host": self.host,
            "sip_port": self._want_sip_port,  # 0: the kernel picks a free UDP port
            "data_dir": self.data_dir,
            "admin_token": self.admin_token,
        }
        if self._rtp_ports is not None:
            overrides["rtp_ports"] = self._rtp_ports
        settings = Settings.from_env(**overrides)
        # Self-contained: never the DATABASE/REDIS of the environment (a real deployment).
        settings.database_url = None
        settings.redis_url = None
        self.settings = settings
        self._app = create_app(settings)
        config = uvicorn.Config(
            self._app,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            loop="none",
        )
        self._server = _Uvicorn(config)
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[sock]), name="dialflow-embedded"
        )
        try:
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises what startup raised, if anything
                    raise EmbeddedError("the embedded server did not start (see the log above)")
                await asyncio.sleep(0.02)
        except BaseException:
            sock.close()
            await self._cleanup()
            raise
        if warm_up:
            self._warm = asyncio.get_running_loop().create_task(self._warm_up(), name="warm-up")
        return self

    async def _warm_up(self) -> None:
        runner = self.app_state.service.flow_runner
        speech = getattr(runner, "speech", None)
        if speech is None:
            return
        try:
            await speech.warm_up()
        except Exception as exc:  # the first call will start them (and say why if it fails)
            log.warning("speech warm-up failed: %s", exc)

    async def wait_warm(self) -> None:
        """Wait for the speech warm-up started by :meth:`start` (no-op without one)."""
        if self._warm is not None:
            await self._warm

    async def stop(self) -> None:
        """Shut down (calls still up are ended by the server) and remove the temp data."""
        if self._warm is not None and not self._warm.done():
            self._warm.cancel()
            await asyncio.gather(self._warm, return_exceptions=True)
        if self._server is not None and self._task is not None and not self._task.done():
            self._server.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=20)
            except TimeoutError:
                self._server.force_exit = True
                await asyncio.gather(self._task, return_exceptions=True)
        await self._cleanup()

    async def _cleanup(self) -> None:
        if self._own_data and not self.keep_data:
            await asyncio.to_thread(shutil.rmtree, self.data_dir, True)

    async def serve_forever(self) -> None:
        """Wait until the server stops (Ctrl-C cancels this)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def __aenter__(self) -> EmbeddedServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what callers need -------------------------------------------------------------

    @property
    def app_state(self) -> Any:
        """The running app's :class:`~dialflow.api.app.AppState`."""
        return self._app.state.dialflow

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def sip_port(self) -> int:
        return int(self.app_state.endpoint.port)

    @property
    def sip_address(self) -> str:
        """``host:port`` of the SIP endpoint (what ``{sip}`` stands for in suites)."""
        return f"{self.host}:{self.sip_port}"

    def admin_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=httpx.Timeout(30.0, connect=5.0),
        )

    async def create_org(self, org_id: str, name: str | None = None) -> str:
        """Create organization ``org_id`` (if it is not there) and an API key; the key."""
        async with self.admin_client() as http:
            response = await http.post(
                "/v1/organizations", json={"id": org_id, "name": name or org_id}
            )
            if response.status_code not in (201, 409):
                raise EmbeddedError(f"cannot create organization {org_id}: {response.text}")
            response = await http.post(
                f"/v1/organizations/{org_id}/api-keys", json={"name": "dialflow-embedded"}
            )
            if response.status_code != 201:
                raise EmbeddedError(f"cannot create an API key for {org_id}: {response.text}")
            return str(response.json()["key"])
