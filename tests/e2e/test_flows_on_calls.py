"""Flows on real calls: a tester flow dials an IVR flow on an inbound number of the same
server (SIP, RTP, TTS, ASR and DTMF between two real call legs), and node-level checks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from .conftest import Receiver, Server

pytestmark = pytest.mark.interop


def _ivr(crm_url: str) -> dict[str, Any]:
    return {
        "id": "ivr",
        "start": "greet",
        "vars": {"name": "caller"},
        "nodes": {
            "greet": {
                "type": "say",
                "text": "Hello {{ vars.name }}. Press one to confirm, or two to cancel.",
                "next": "ask",
            },
            "ask": {
                "type": "gather",
                "input": ["dtmf"],
                "numDigits": 1,
                "timeout": 8,
                "saveAs": "choice",
                "next": "route",
            },
            "route": {
                "type": "branch",
                "cases": [{"when": "vars.choice == '1'", "next": "lookup"}],
                "default": "bye",
            },
            "lookup": {
                "type": "http",
                "method": "POST",
                "url": crm_url,
                "json": {"choice": "{{ vars.choice }}"},
                "timeout": 3,
                "saveAs": "crm",
                "onError": "bye",
                "next": "mark",
            },
            "mark": {"type": "set", "values": {"order": "{{ vars.crm.order }}"}, "next": "confirm"},
            "confirm": {
                "type": "say",
                "text": "Your order is confirmed. Goodbye.",
                "bargeIn": False,
                "next": "rec",
            },
            "rec": {
                "type": "record",
                "maxSeconds": 3,
                "silenceTimeout": 1,
                "saveAs": "msg",
                "next": "bye",
            },
            "bye": {"type": "hangup"},
        },
    }


TESTER = {
    "id": "tester",
    "start": "hear-menu",
    "nodes": {
        "hear-menu": {
            "type": "expect",
            "heard": "press one to confirm",
            "within": 15,
            "next": "press",
        },
        "press": {"type": "send_dtmf", "digits": "1", "next": "hear-confirm"},
        "hear-confirm": {
            "type": "expect",
            "heard": "your order is confirmed",
            "within": 15,
            "next": "leave-message",
        },
        "leave-message": {
            "type": "say",
            "text": "Please call me back tomorrow.",
            "bargeIn": False,
            "next": "wait",
        },
        "wait": {"type": "pause", "seconds": 3, "next": "end"},
        "end": {"type": "hangup"},
    },
}


async def test_tester_flow_drives_ivr_flow_end_to_end(server: Server, receiver: Receiver) -> None:
    _, headers = await server.org("acme")
    receiver.response = {"order": "A-42"}
    crm_url = receiver.url
    await server.flow("acme", headers, _ivr(crm_url))
    await server.flow("acme", headers, TESTER)
    r = await server.http.post(
        "/v1/organizations/acme/numbers", json={"number": "7001", "flowId": "ivr"}, headers=headers
    )
    assert r.status_code == 201, r.text
    sip_uri = r.json()["sipUri"]
    r = await server.http.post(
        "/v1/organizations/acme/flows/tester/calls",
        json={"to": sip_uri, "mode": "sync", "syncTimeout": 30},
        headers=headers,
    )
    tester = r.json()
    assert r.status_code == 200, tester
    assert tester["flow"]["outcome"] == "passed", json.dumps(tester, indent=1)
    assertions = tester["flow"]["assertions"]
    assert [a["passed"] for a in assertions] == [True, True]
    # The IVR hangs up after recording, possibly while the tester waits.
    assert tester["flow"]["path"][:4] == ["hear-menu", "press", "hear-confirm", "leave-message"]
    # The IVR side: an inbound call with its own record.
    await asyncio.sleep(0.5)
    listed = await server.http.get(
        "/v1/organizations/acme/calls?direction=inbound", headers=headers
    )
    ivr = listed.json()["data"][0]
    assert ivr["direction"] == "inbound" and ivr["status"] == "completed"
    assert ivr["flow"]["path"][:6] == ["greet", "ask", "route", "lookup", "mark", "confirm"]
    assert ivr["flow"]["variables"]["choice"] == "1"
    assert ivr["flow"]["variables"]["choice_kind"] == "dtmf"
    assert ivr["flow"]["variables"]["order"] == "A-42"
    assert receiver.requests and receiver.requests[0]["json"] == {"choice": "1"}
    if "rec" in ivr["flow"]["path"]:
        assert ivr["flow"]["variables"]["msg"]["durationMs"] > 500
        rec = await server.http.get(
            f"/v1/organizations/acme/calls/{ivr['sessionId']}/recording", headers=headers
        )
        assert rec.status_code == 200 and rec.headers["content-type"] == "audio/wav"
    events = await server.http.get(
        f"/v1/organizations/acme/calls/{ivr['sessionId']}/events", headers=headers
    )
    kinds = [e["type"] for e in events.json()["data"]]
    assert "flow.node.entered" in kinds and "dtmf" in kinds
