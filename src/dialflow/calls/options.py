"""A validated call request, as the call service sees it (the API's pydantic model maps onto it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True, frozen=True)
class AmdOptions:
    enabled: bool = True
    mode: str = "sync"  # "sync": the flow waits for the decision; "async": it starts at answer
    timeout_ms: int = 5000
    detect_beep: bool = False
    run_flow_on: tuple[str, ...] = ("human", "unknown")


@dataclass(slots=True, frozen=True)
class CallOptions:
    to: str
    from_: str | None = None
    mode: str = "poll"
    webhook_url: str | None = None
    ring_timeout: float = 30.0
    max_duration: float = 3600.0
    sync_timeout: float = 30.0
    amd: AmdOptions | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    sip_headers: dict[str, str] = field(default_factory=dict)
    trunk: str | None = None
    record: bool = False
