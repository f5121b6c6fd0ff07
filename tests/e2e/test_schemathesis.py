"""Schemathesis against /openapi.json of the running server: no input may cause a 5xx."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from .conftest import Server

pytestmark = pytest.mark.interop


def _schemathesis() -> str:
    local = Path(sys.executable).with_name("schemathesis")
    found = str(local) if local.exists() else shutil.which("schemathesis")
    if found is None:
        pytest.fail("schemathesis is not installed (it is a dev dependency)")
    return found


async def test_no_server_errors_for_generated_requests(server: Server, tmp_path: Path) -> None:
    # Calls may only go to loopback: generated destinations never leave the machine.
    _, headers = await server.org("acme", allowedDestinations=["sip:*@127.0.0.1"])
    await server.flow(
        "acme", headers, {"id": "bye", "start": "end", "nodes": {"end": {"type": "hangup"}}}
    )
    config = tmp_path / "schemathesis.toml"
    config.write_text('[parameters]\n"path.org_id" = "acme"\n"path.flow_id" = "bye"\n')
    proc = await asyncio.create_subprocess_exec(
        _schemathesis(),
        "--config-file",
        str(config),
        "run",
        f"{server.base_url}/openapi.json",
        "-H",
        "Authorization: Bearer test-admin-token",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "20",
        "--seed",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=240)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]
    assert "passed" in text
