"""``dialflow serve``: the HTTP API, the SIP/RTP endpoint and the workers in one process."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import uvicorn

from .api.app import create_app
from .config import Settings

log = logging.getLogger("dialflow")


def build_server(settings: Settings) -> uvicorn.Server:
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        loop="none",  # we install uvloop (or not) ourselves
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


async def serve(settings: Settings) -> int:
    server = build_server(settings)
    if settings.admin_token_generated:
        # Printed once (API.md); set DIALFLOW_ADMIN_TOKEN to choose your own.
        print(f"dialflow: generated admin token: {settings.admin_token}", flush=True)
    print(
        f"dialflow: API on http://{settings.host}:{settings.port} (docs at /docs), "
        f"SIP on {settings.sip_host}:{settings.sip_port}, data in {Path(settings.data_dir)}",
        flush=True,
    )
    await server.serve()
    return 0 if not server.should_exit or server.started else 1


def run(settings: Settings) -> int:
    return asyncio.run(serve(settings))
