"""Server settings: command-line options over environment variables over defaults (API.md)."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _count(name: str) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return 0
    try:
        n = int(value)
    except ValueError:
        raise SystemExit(f"dialflow: {name} must be a whole number, not {value!r}") from None
    if n < 0:
        raise SystemExit(f"dialflow: {name} must be 0 or more, not {n}")
    return n


def default_node_id(data_dir: Path) -> str:
    """``<hostname>-<8 hex of the data dir's absolute path>``: the same after a restart
    (a node recovers its own calls), different for two servers on one host."""
    path = str(Path(data_dir).expanduser().resolve())
    digest = hashlib.sha256(path.encode()).hexdigest()[:8]
    return f"{socket.gethostname()}-{digest}"


@dataclass(slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    rtp_ports: tuple[int, int] = (10000, 20000)
    data_dir: Path = field(default_factory=lambda: Path("./data"))
    flows_dir: Path | None = None
    admin_token: str = ""
    admin_token_generated: bool = False
    webhook_allow_private: bool = False
    webhook_retry_base: float = 2.0
    database_url: str | None = None
    redis_url: str | None = None
    node_id: str = ""
    """This server among several sharing a database/Redis (``DIALFLOW_NODE_ID``; default
    :func:`default_node_id`). Calls are owned by the node that runs them."""
    metrics_enabled: bool = True
    max_body_bytes: int = 1024 * 1024
    amd_transcripts: int = 0
    """Calls whose AMD also runs the speech recognizer at once (0: acoustic AMD only)."""

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Environment first (DIALFLOW_*), then explicit overrides (command-line options)."""
        settings = cls(
            admin_token=os.environ.get("DIALFLOW_ADMIN_TOKEN", ""),
            webhook_allow_private=_flag("DIALFLOW_WEBHOOK_ALLOW_PRIVATE"),
            webhook_retry_base=float(os.environ.get("DIALFLOW_WEBHOOK_RETRY_BASE", "2")),
            database_url=os.environ.get("DIALFLOW_DATABASE_URL") or None,
            redis_url=os.environ.get("DIALFLOW_REDIS_URL") or None,
            node_id=os.environ.get("DIALFLOW_NODE_ID", "").strip(),
            metrics_enabled=_flag("DIALFLOW_METRICS", True),
            amd_transcripts=_count("DIALFLOW_AMD_TRANSCRIPTS"),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(settings, key, value)
        settings.data_dir = Path(settings.data_dir)
        if not settings.node_id:
            settings.node_id = default_node_id(settings.data_dir)
        if not settings.admin_token:
            # API.md: if unset, one is generated and printed once at start.
            settings.admin_token = "adm_" + secrets.token_urlsafe(24)
            settings.admin_token_generated = True
        return settings
