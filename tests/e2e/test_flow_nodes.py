"""Every node type of FLOWS.md on real calls: a flow using all of them calls a peer flow on
an inbound number of the same server; transfer (REFER) is checked against SIPp."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ..interop.peers import Sipp, write_wav
from .conftest import Receiver, Server

pytestmark = pytest.mark.interop

PEER = {
    "id": "peer",
    "start": "greeting",
    "nodes": {
        "greeting": {"type": "play", "file": "beep.wav", "bargeIn": False, "next": "hear"},
        "hear": {
            "type": "listen",
            "maxSeconds": 8,
            "silenceTimeout": 1,
            "saveAs": "heard",
            "next": "keys",
        },
        "keys": {"type": "send_dtmf", "digits": "42", "next": "thanks"},
        "thanks": {
            "type": "say",
            "text": "Thank you for calling.",
            "bargeIn": False,
            "next": "linger",
        },
        "linger": {"type": "pause", "seconds": 10, "next": "end"},
        "end": {"type": "hangup"},
    },
}

ALL_NODES = {
    "id": "all-nodes",
    "start": "init",
    "vars": {"count": 0},
    "nodes": {
        "init": {"type": "set", "values": {"count": "{{ vars.count + 1 }}"}, "next": "lookup"},
        "lookup": {
            "type": "http",
            "method": "GET",
            "url": "RECEIVER",
            "timeout": 3,
            "saveAs": "api",
            "next": "gate",
        },
        "gate": {
            "type": "branch",
            "cases": [{"when": "vars.api.ok", "next": "beep"}],
            "default": "end",
        },
        "beep": {"type": "wait_for_beep", "timeout": 6, "next": "talk"},
        "talk": {
            "type": "say",
            "text": "Testing one two three.",
            "bargeIn": False,
            "next": "digits",
        },
        "digits": {
            "type": "gather",
            "input": ["dtmf"],
            "numDigits": 2,
            "timeout": 10,
            "saveAs": "code",
            "next": "thanks",
        },
        "thanks": {
            "type": "expect",
            "heard": "thank you for calling",
            "within": 10,
            "next": "rest",
        },
        "rest": {
            "type": "listen",
            "maxSeconds": 1,
            "silenceTimeout": 1,
            "saveAs": "after",
            "next": "keep",
        },
        "keep": {"type": "record", "maxSeconds": 1, "saveAs": "clip", "next": "tone"},
        "tone": {"type": "play", "file": "beep.wav", "next": "breathe"},
        "breathe": {"type": "pause", "seconds": 0.2, "next": "end"},
        "end": {"type": "hangup"},
    },
}


def _beep_wav(path: Path) -> Path:
    rate = 8000
    t = np.arange(int(rate * 0.5)) / rate
    quiet = np.random.default_rng(2).normal(0, 20, rate // 2)
    tone = 8000 * np.sin(2 * np.pi * 1000 * t)
    return write_wav(path, np.concatenate([quiet, tone, quiet]).astype(np.int16))


async def test_a_flow_using_every_node_type(server: Server, receiver: Receiver) -> None:
    media = server.settings.data_dir / "media"
    media.mkdir(parents=True, exist_ok=True)
    _beep_wav(media / "beep.wav")
    receiver.response = {"ok": True}
    _, headers = await server.org("acme")
    await server.flow("acme", headers, PEER)
    flow: dict[str, Any] = {**ALL_NODES, "nodes": dict(ALL_NODES["nodes"])}
    flow["nodes"]["lookup"] = {**flow["nodes"]["lookup"], "url": receiver.url}
    await server.flow("acme", headers, flow)
    r = await server.http.post(
        "/v1/organizations/acme/numbers", json={"number": "7100", "flowId": "peer"}, headers=headers
    )
    r = await server.http.post(
        "/v1/organizations/acme/flows/all-nodes/calls",
        json={"to": r.json()["sipUri"], "mode": "sync"},
        headers=headers,
    )
    call = r.json()
    assert r.status_code == 200, call
    variables = call["flow"]["variables"]
    assert call["flow"]["outcome"] == "passed", call
    assert call["flow"]["path"] == [
        "init",
        "lookup",
        "gate",
        "beep",
        "talk",
        "digits",
        "thanks",
        "rest",
        "keep",
        "tone",
        "breathe",
        "end",
    ]
    assert variables["count"] == 1 and variables["api"] == {"ok": True}
    assert variables["code"] == "42" and variables["code_kind"] == "dtmf"
    assert variables["clip"]["durationMs"] >= 900
    events = (
        await server.http.get(
            f"/v1/organizations/acme/calls/{call['sessionId']}/events", headers=headers
        )
    ).json()["data"]
    beeps = [e for e in events if e["type"] == "beep"]
    assert beeps and beeps[0]["beep"] is True
    await asyncio.sleep(0.5)
    inbound = (
        await server.http.get("/v1/organizations/acme/calls?direction=inbound", headers=headers)
    ).json()["data"][0]
    heard = inbound["flow"]["variables"]["heard"]
    assert "three" in heard or "testing" in heard, heard


async def test_transfer_sends_refer_and_ends_the_flow(server: Server) -> None:
    _, headers = await server.org("acme")
    await server.flow(
        "acme",
        headers,
        {
            "id": "xfer",
            "start": "wait",
            "nodes": {
                "wait": {"type": "pause", "seconds": 0.3, "next": "go"},
                "go": {"type": "transfer", "to": "sip:agent@127.0.0.1:5999"},
            },
        },
    )
    with Sipp("uas_refer", timeout=15) as uas:
        r = await server.http.post(
            "/v1/organizations/acme/flows/xfer/calls",
            json={"to": uas.uri("bob"), "mode": "sync"},
            headers=headers,
        )
        result = await asyncio.to_thread(uas.wait)
    call = r.json()
    assert result.ok, result.summary()  # SIPp saw REFER, sent NOTIFY 200, got our BYE
    assert call["status"] == "completed" and call["hangupBy"] == "flow"
    assert call["flow"]["outcome"] == "completed" and call["flow"]["path"] == ["wait", "go"]
    assert "Refer-To: <sip:agent@127.0.0.1:5999>" in result.messages


async def test_barge_in_max_steps_and_flow_version_pinning(server: Server) -> None:
    """DTMF stops a prompt with bargeIn and is kept for the next gather; a loop ends at
    maxSteps with outcome error; a running call keeps the flow version it started with."""
    _, headers = await server.org("acme")
    long_text = "This is a very long announcement that nobody wants to hear to the end. " * 3
    await server.flow(
        "acme",
        headers,
        {
            "id": "menu",
            "start": "prompt",
            "nodes": {
                "prompt": {"type": "say", "text": long_text, "next": "ask"},
                "ask": {
                    "type": "gather",
                    "input": ["dtmf"],
                    "numDigits": 1,
                    "timeout": 5,
                    "saveAs": "key",
                    "next": "end",
                },
                "end": {"type": "hangup"},
            },
        },
    )
    await server.flow(
        "acme",
        headers,
        {
            "id": "presser",
            "start": "wait",
            "nodes": {
                "wait": {"type": "pause", "seconds": 1, "next": "press"},
                "press": {"type": "send_dtmf", "digits": "7", "next": "hold"},
                "hold": {"type": "pause", "seconds": 10},
            },
        },
    )
    r = await server.http.post(
        "/v1/organizations/acme/numbers", json={"number": "7200", "flowId": "menu"}, headers=headers
    )
    uri = r.json()["sipUri"]
    r = await server.http.post(
        "/v1/organizations/acme/flows/presser/calls", json={"to": uri}, headers=headers
    )
    presser = r.json()["sessionId"]
    # New version while the call runs: the running call keeps version 1.
    await server.http.put(
        "/v1/organizations/acme/flows/presser",
        headers=headers,
        json={
            "id": "presser",
            "start": "x",
            "nodes": {"x": {"type": "hangup"}},
        },
    )
    call = await server.wait_status("acme", presser, headers, timeout=30)
    assert call["flowVersion"] == 1 and call["flow"]["path"] == ["wait", "press", "hold"]
    inbound = (
        await server.http.get("/v1/organizations/acme/calls?direction=inbound", headers=headers)
    ).json()["data"][0]
    assert inbound["flow"]["variables"]["key"] == "7"
    assert inbound["durationMs"] < 8000  # the 15 s prompt was cut short by the digit
    events = (
        await server.http.get(
            f"/v1/organizations/acme/calls/{inbound['sessionId']}/events", headers=headers
        )
    ).json()["data"]
    assert [e["bargedIn"] for e in events if e["type"] == "say"] == [True]

    await server.flow(
        "acme",
        headers,
        {
            "id": "loop",
            "start": "a",
            "maxSteps": 5,
            "nodes": {
                "a": {"type": "pause", "seconds": 0.05, "next": "b"},
                "b": {"type": "branch", "cases": [{"when": "true", "next": "a"}], "default": "a"},
            },
        },
    )
    with Sipp("uas_answer", timeout=15) as uas:
        r = await server.http.post(
            "/v1/organizations/acme/flows/loop/calls",
            json={"to": uas.uri("l"), "mode": "sync"},
            headers=headers,
        )
        await asyncio.to_thread(uas.wait)
    call = r.json()
    assert call["flow"]["outcome"] == "error" and "maxSteps" in call["error"]["message"]
    assert len(call["flow"]["path"]) == 5


async def test_expect_cut_short_by_hangup_records_a_failed_assertion(server: Server) -> None:
    _, headers = await server.org("acme")
    await server.flow(
        "acme",
        headers,
        {
            "id": "brief",
            "start": "hi",
            "nodes": {
                "hi": {
                    "type": "say",
                    "text": "Your appointment is confirmed.",
                    "bargeIn": False,
                    "next": "end",
                },
                "end": {"type": "hangup"},
            },
        },
    )
    await server.flow(
        "acme",
        headers,
        {
            "id": "patient",
            "start": "wait-for-it",
            "vars": {"phrase": "press nine for the operator"},
            "nodes": {
                "wait-for-it": {"type": "expect", "heard": "{{ vars.phrase }}", "within": 20}
            },
        },
    )
    r = await server.http.post(
        "/v1/organizations/acme/numbers",
        json={"number": "7300", "flowId": "brief"},
        headers=headers,
    )
    r = await server.http.post(
        "/v1/organizations/acme/flows/patient/calls",
        json={"to": r.json()["sipUri"], "mode": "sync"},
        headers=headers,
    )
    call = r.json()
    assert call["hangupBy"] == "remote"
    assert call["flow"]["outcome"] == "failed", call["flow"]
    [assertion] = call["flow"]["assertions"]
    assert assertion["expected"] == "press nine for the operator"  # the template, rendered
    assert assertion["passed"] is False and "confirmed" in assertion["heard"], assertion
