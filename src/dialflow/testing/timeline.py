"""A readable timeline of one or more calls from their event logs (``GET .../events``).

Used by ``dialflow demo`` (both legs of the call, side by side) and by the JUnit
report's ``<system-out>``. Times are relative to a zero, normally the moment the
tester's call was answered (negative before: INVITE, ringing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .results import TERMINAL

#: Event types that only mirror others (webhook bookkeeping, node exits).
_QUIET = frozenset({"webhook.answered", "webhook.amd", "flow.node.left"})


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of a timeline: seconds from zero, which side, a category and the text."""

    at: float
    side: str
    kind: str
    text: str


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time from the API (``...Z``), or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def answered_at(events: Iterable[Mapping[str, Any]]) -> datetime | None:
    """When the call was answered (its ``status: in_progress`` event)."""
    for event in events:
        if event.get("type") == "status" and event.get("status") == "in_progress":
            return parse_time(event.get("at"))
    return None


def _quote(text: Any) -> str:
    return '"' + str(text if text is not None else "").strip() + '"'


def amd_text(amd: Mapping[str, Any] | None) -> str:
    """``machine after 3120 ms (model, confidence 0.99)``, or why there is no result."""
    if not amd:
        return "not available (AMD was not run on this call)"
    result, reason = amd.get("result"), amd.get("reason")
    if result is None or reason == "not_available":
        return f"not available ({reason or 'no decision'})"
    text = f"{result}"
    if amd.get("decisionMs") is not None:
        text += f" after {amd['decisionMs']} ms"
    details = [str(reason)] if reason else []
    if amd.get("confidence") is not None:
        details.append(f"confidence {float(amd['confidence']):.2f}")
    if amd.get("beep"):
        details.append(f"beep at {amd.get('beepMs')} ms")
    return text + (f" ({', '.join(details)})" if details else "")


def describe(event: Mapping[str, Any], say_text: Mapping[str, str]) -> tuple[str, str] | None:
    """``(kind, text)`` for one event, or None for events the timeline leaves out.

    ``say_text`` maps a say node to its rendered text: the ``say`` event comes when
    the prompt ends, but the line belongs where the prompt starts.
    """
    kind = str(event.get("type"))
    if kind in _QUIET:
        return None
    if kind == "status":
        status = event.get("status")
        if status == "in_progress":
            code = event.get("code")
            return "status", "answered" + (f" ({code} OK)" if code == 200 else "")
        if status in TERMINAL:
            by = event.get("hangupBy")
            return "status", f"call {status}" + (f", hang-up by {by}" if by else "")
        if status == "ringing" and "code" not in event:
            return "status", "ringing"
        return None
    if kind == "sip.invite":
        return "sip", f"INVITE {event.get('target')}"
    if kind == "sip.progress":
        early = " with early media" if event.get("earlyMedia") else ""
        return "sip", f"{event.get('code')} {event.get('reason') or ''}".strip() + early
    if kind == "flow.started":
        return "flow", f"flow {event.get('flowId')} v{event.get('version')} starts"
    if kind == "flow.ended":
        error = f": {event['error']}" if event.get("error") else ""
        return "flow", f"flow ends: {event.get('outcome')}{error}"
    if kind == "flow.skipped":
        return "flow", f"flow skipped (AMD said {event.get('amd')})"
    if kind == "flow.node.entered":
        node, node_type = event.get("node"), event.get("nodeType")
        text = f"> {node} ({node_type})"
        if node_type == "say" and node in say_text:
            text += f" says {_quote(say_text[str(node)])}"
        return "node", text
    if kind == "say":
        if event.get("bargedIn"):
            return "say", f"prompt of {event.get('node')} interrupted (barge-in)"
        return None
    if kind == "assertion":
        mark = "PASS" if event.get("passed") else "FAIL"
        return (
            "pass" if event.get("passed") else "fail",
            f"{mark} expected {_quote(event.get('expected'))}, heard {_quote(event.get('heard'))}",
        )
    if kind == "listen":
        return "heard", f"heard {_quote(event.get('heard'))}"
    if kind == "gather":
        return "heard", f"gathered {event.get('kind')}: {_quote(event.get('value'))}"
    if kind == "dtmf":
        return "dtmf", f"received DTMF {event.get('digit')} ({event.get('source')})"
    if kind == "dtmf.sent":
        return "dtmf", f"sent DTMF {event.get('digits')}"
    if kind == "amd":
        return "amd", "AMD: " + amd_text(event)
    if kind == "beep":
        if not event.get("beep"):
            return "amd", f"{event.get('node')}: no beep"
        return "amd", f"{event.get('node')}: beep after {event.get('beepMs')} ms of listening"
    if kind == "hangup":
        reason = f" ({event['reason']})" if event.get("reason") else ""
        return "flow", f"hangs up{reason}"
    if kind == "record":
        return "flow", f"recorded {event.get('durationMs')} ms"
    if kind == "transfer":
        return "flow", f"transfer to {event.get('to')}: {'ok' if event.get('ok') else 'failed'}"
    if kind == "limit.max_duration":
        return "status", "maxDuration reached"
    extra = {k: v for k, v in event.items() if k not in ("seq", "type", "at")}
    return "other", f"{kind} {extra}" if extra else kind


def prompts_of(flow_document: Mapping[str, Any] | None) -> dict[str, str]:
    """The text of each ``say`` node of a flow document (templates unrendered)."""
    nodes = (flow_document or {}).get("nodes") or {}
    return {
        str(name): str(node.get("text"))
        for name, node in nodes.items()
        if isinstance(node, Mapping) and node.get("type") == "say" and node.get("text")
    }


def build_timeline(
    sides: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
    zero: datetime | None = None,
    prompts: Mapping[str, Mapping[str, str]] | None = None,
) -> list[TimelineEntry]:
    """Merge the event logs of ``sides`` (``(label, events)``) in time order.

    ``zero`` defaults to the first side's answer time (else its first event).
    ``prompts`` (by side label, see :func:`prompts_of`) gives the text of prompts that
    never finished (the call ended while they played), which have no ``say`` event.
    """
    if zero is None and sides:
        first = sides[0][1]
        zero = answered_at(first) or (parse_time(first[0].get("at")) if first else None)
    entries: list[tuple[datetime, int, int, TimelineEntry]] = []
    for side_index, (label, events) in enumerate(sides):
        say_text = dict((prompts or {}).get(label) or {})
        say_text.update(
            {str(e.get("node")): str(e.get("text", "")) for e in events if e.get("type") == "say"}
        )
        for event in events:
            at = parse_time(event.get("at"))
            described = describe(event, say_text)
            if at is None or described is None:
                continue
            offset = (at - zero).total_seconds() if zero is not None else 0.0
            seq = int(event.get("seq") or 0)
            # Same millisecond: keep each side's own order, the tester's side first.
            entries.append((at, side_index, seq, TimelineEntry(offset, label, *described)))
    entries.sort(key=lambda item: (item[0], item[1], item[2]))
    return [entry for *_, entry in entries]


def format_lines(entries: Iterable[TimelineEntry]) -> list[str]:
    """Plain-text lines (``  +4.22 s  tester  PASS expected ...``)."""
    items = list(entries)
    width = max((len(e.side) for e in items), default=0)
    return [f"{e.at:+8.2f} s  {e.side:<{width}}  {e.text}" for e in items]
