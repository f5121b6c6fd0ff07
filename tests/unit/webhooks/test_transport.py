"""The guarded transport over TLS: connect to the checked IP, but SNI and certificate
verification use the URL's host name (a local CA made with the openssl CLI)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from dialflow.webhooks.transport import GuardedTransport
from dialflow.webhooks.urls import WebhookUrlNotAllowed

from .receiver import Receiver

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "1",
            "-subj", "/CN=hooks.test", "-addext", "subjectAltName=DNS:hooks.test",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, crt


async def to_localhost(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


async def test_https_uses_the_name_for_sni_and_verification(cert: tuple[Path, Path]) -> None:
    key, crt = cert
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(crt, key)
    sni: list[str | None] = []

    def record_sni(_obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni.append(name)

    server_ctx.sni_callback = record_sni
    client_ctx = ssl.create_default_context(cafile=str(crt))

    async with Receiver(ssl_context=server_ctx) as rx:
        transport = GuardedTransport(allow_private=True, resolver=to_localhost, verify=client_ctx)
        async with httpx.AsyncClient(transport=transport) as client:
            r = await client.post(rx.url(host="hooks.test"), content=b"{}")
            assert r.status_code == 200
            # Same address, another name: the certificate does not cover it, so it fails.
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await client.post(rx.url(host="other.test"), content=b"{}")
    assert sni[0] == "hooks.test"
    assert rx.requests[0].headers["host"] == f"hooks.test:{rx.port}"
    assert len(rx.requests) == 1


async def test_transport_refuses_before_connecting() -> None:
    transport = GuardedTransport(allow_private=False, resolver=to_localhost)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(WebhookUrlNotAllowed, match="loopback"):
            await client.post("http://hooks.test:9/x", content=b"{}")
        with pytest.raises(WebhookUrlNotAllowed, match="metadata"):
            await client.get("http://169.254.169.254/latest/meta-data/")
