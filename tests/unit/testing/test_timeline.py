"""Timelines from event logs: merged sides, times from answer, readable lines."""

from __future__ import annotations

from dialflow.testing.timeline import (
    amd_text,
    build_timeline,
    describe,
    format_lines,
    prompts_of,
)

TESTER = [
    {"seq": 1, "type": "status", "at": "2026-01-01T00:00:00.000Z", "status": "queued"},
    {"seq": 2, "type": "sip.invite", "at": "2026-01-01T00:00:00.010Z", "target": "sip:7001@h"},
    {
        "seq": 3,
        "type": "sip.progress",
        "at": "2026-01-01T00:00:00.020Z",
        "code": 180,
        "reason": "Ringing",
        "earlyMedia": False,
    },
    {
        "seq": 4,
        "type": "status",
        "at": "2026-01-01T00:00:00.020Z",
        "status": "ringing",
        "code": 180,
    },
    {
        "seq": 5,
        "type": "status",
        "at": "2026-01-01T00:00:00.050Z",
        "status": "in_progress",
        "code": 200,
    },
    {"seq": 6, "type": "webhook.answered", "at": "2026-01-01T00:00:00.050Z"},
    {
        "seq": 7,
        "type": "amd",
        "at": "2026-01-01T00:00:02.550Z",
        "result": "machine",
        "decisionMs": 2500,
        "reason": "model",
        "confidence": 0.987,
        "beep": None,
    },
    {
        "seq": 8,
        "type": "assertion",
        "at": "2026-01-01T00:00:04.050Z",
        "node": "hear",
        "expected": "press one",
        "heard": "press one",
        "passed": True,
    },
    {"seq": 9, "type": "dtmf.sent", "at": "2026-01-01T00:00:04.100Z", "node": "p", "digits": "1"},
    {
        "seq": 10,
        "type": "status",
        "at": "2026-01-01T00:00:06.050Z",
        "status": "completed",
        "hangupBy": "flow",
    },
]
IVR = [
    {
        "seq": 1,
        "type": "flow.node.entered",
        "at": "2026-01-01T00:00:00.040Z",
        "node": "menu",
        "nodeType": "say",
    },
    {"seq": 2, "type": "dtmf", "at": "2026-01-01T00:00:04.100Z", "digit": "1", "source": "rfc4733"},
    {
        "seq": 3,
        "type": "say",
        "at": "2026-01-01T00:00:04.100Z",
        "node": "menu",
        "text": "Press one.",
        "bargedIn": True,
    },
    {
        "seq": 4,
        "type": "flow.node.entered",
        "at": "2026-01-01T00:00:04.110Z",
        "node": "confirmed",
        "nodeType": "say",
    },
    {
        "seq": 5,
        "type": "flow.node.left",
        "at": "2026-01-01T00:00:06.050Z",
        "node": "confirmed",
        "result": "hangup",
    },
]


def test_two_sides_merge_in_time_order_from_answer() -> None:
    prompts = {"ivr": {"confirmed": "Confirmed {{ vars.x }}.", "menu": "template menu"}}
    entries = build_timeline([("tester", TESTER), ("ivr", IVR)], prompts=prompts)
    lines = [(round(e.at, 2), e.side, e.text) for e in entries]
    assert lines == [
        (-0.04, "tester", "INVITE sip:7001@h"),
        (-0.03, "tester", "180 Ringing"),
        (-0.01, "ivr", '> menu (say) says "Press one."'),  # the rendered text wins
        (0.0, "tester", "answered (200 OK)"),
        (2.5, "tester", "AMD: machine after 2500 ms (model, confidence 0.99)"),
        (4.0, "tester", 'PASS expected "press one", heard "press one"'),
        (4.05, "tester", "sent DTMF 1"),  # same millisecond: the tester's side first
        (4.05, "ivr", "received DTMF 1 (rfc4733)"),
        (4.05, "ivr", "prompt of menu interrupted (barge-in)"),
        (4.06, "ivr", '> confirmed (say) says "Confirmed {{ vars.x }}."'),  # never finished
        (6.0, "tester", "call completed, hang-up by flow"),
    ]
    assert format_lines(entries[:1]) == ["   -0.04 s  tester  INVITE sip:7001@h"]


def test_amd_text() -> None:
    assert amd_text(None) == "not available (AMD was not run on this call)"
    assert amd_text({"result": None, "reason": "not_available"}) == "not available (not_available)"
    assert amd_text({"result": "unknown", "reason": "not_available"}) == (
        "not available (not_available)"
    )
    assert amd_text({"result": "machine", "decisionMs": 900, "beep": True, "beepMs": 4100}) == (
        "machine after 900 ms (beep at 4100 ms)"
    )


def test_describe_unknown_and_quiet_events() -> None:
    assert describe({"type": "webhook.amd"}, {}) is None
    assert describe({"type": "status", "status": "queued"}, {}) is None
    assert describe({"type": "gather", "node": "g", "kind": "speech", "value": "yes"}, {}) == (
        "heard",
        'gathered speech: "yes"',
    )
    assert describe({"type": "listen", "node": "l", "heard": " hello "}, {}) == (
        "heard",
        'heard "hello"',
    )
    assert describe({"seq": 1, "type": "brand.new", "at": "x", "k": 1}, {}) == (
        "other",
        "brand.new {'k': 1}",
    )


def test_prompts_of() -> None:
    document = {"nodes": {"a": {"type": "say", "text": "Hi"}, "b": {"type": "hangup"}}}
    assert prompts_of(document) == {"a": "Hi"}
    assert prompts_of(None) == {}
