"""The suite runner against a scripted HTTP API (httpx.MockTransport): preparation,
polling, expectations, rate limits, time-outs, the far end. No sockets, no sleeping."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dialflow.testing.runner import (
    SetupError,
    SuiteRunner,
    TestStatus,
    check_expectations,
    sip_address_of,
    unfinished_expects,
)
from dialflow.testing.suite import SuiteTest, suite_from_data

SIP = "127.0.0.1:5070"
FLOW = {"id": "tester", "start": "a", "nodes": {"a": {"type": "hangup"}}}


def _call(status: str, **fields: Any) -> dict[str, Any]:
    call: dict[str, Any] = {
        "sessionId": "c_1",
        "flowId": "tester",
        "flowVersion": 2,
        "status": status,
        "to": f"sip:7001@{SIP}",
        "createdAt": "2026-01-01T00:00:00.000Z",
        "answeredAt": None,
        "durationMs": None,
        "hangupBy": None,
        "amd": None,
        "sip": {"callId": "abc@h"},
        "flow": {"outcome": None, "path": [], "variables": {}, "assertions": []},
    }
    call.update(fields)
    return call


DONE = _call(
    "completed",
    answeredAt="2026-01-01T00:00:01.000Z",
    durationMs=4200,
    hangupBy="flow",
    flow={
        "outcome": "passed",
        "path": ["hear", "bye"],
        "variables": {},
        "assertions": [{"node": "hear", "expected": "hi", "heard": "hi there", "passed": True}],
    },
)
EVENTS = [
    {"seq": 1, "type": "status", "at": "2026-01-01T00:00:01.000Z", "status": "in_progress"},
    {
        "seq": 2,
        "type": "flow.node.entered",
        "at": "2026-01-01T00:00:01.010Z",
        "node": "hear",
        "nodeType": "expect",
    },
    {
        "seq": 3,
        "type": "assertion",
        "at": "2026-01-01T00:00:03.000Z",
        "node": "hear",
        "expected": "hi",
        "heard": "hi there",
        "passed": True,
    },
]


class FakeApi:
    """Answers the runner's requests from a script; records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.calls: list[dict[str, Any]] = [_call("queued"), _call("in_progress"), DONE]
        self.create: list[httpx.Response] = []
        self.flow_exists = False
        self.number_flow: str | None = None  # set: the number exists, routing there
        self.org_status = 200
        self.inbound: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body: Any = None
        if request.content:
            try:
                body = json.loads(request.content)
            except ValueError:
                body = request.content.decode()
        path = request.url.path
        self.requests.append((request.method, path, body))
        org = "/v1/organizations/acme"
        if (request.method, path) == ("GET", org):
            return httpx.Response(self.org_status, json={"id": "acme"})
        if (request.method, path) == ("POST", f"{org}/flows"):
            if self.flow_exists:
                return httpx.Response(409, json={"error": {"code": "conflict", "message": "x"}})
            return httpx.Response(201, json={"id": "tester", "version": 1})
        if (request.method, path) == ("PUT", f"{org}/flows/tester"):
            return httpx.Response(200, json={"id": "tester", "version": 2})
        if request.method == "GET" and path.startswith(f"{org}/flows/"):
            return httpx.Response(200, json={"id": "tester", "document": FLOW})
        if (request.method, path) == ("POST", f"{org}/numbers"):
            if self.number_flow is not None:
                return httpx.Response(409, json={"error": {"code": "conflict", "message": "x"}})
            return httpx.Response(
                201, json={"number": "7001", "flowId": body["flowId"], "sipUri": f"sip:7001@{SIP}"}
            )
        if (request.method, path) == ("GET", f"{org}/numbers/7001"):
            return httpx.Response(
                200,
                json={"number": "7001", "flowId": self.number_flow, "sipUri": f"sip:7001@{SIP}"},
            )
        if (request.method, path) == ("POST", f"{org}/flows/tester/calls"):
            if self.create:
                return self.create.pop(0)
            return httpx.Response(202, json=self.calls[0])
        if (request.method, path) == ("GET", f"{org}/calls/c_1"):
            call = self.calls.pop(0) if len(self.calls) > 1 else self.calls[0]
            return httpx.Response(200, json=call)
        if (request.method, path) == ("GET", f"{org}/calls/c_1/events"):
            return httpx.Response(200, json={"data": EVENTS})
        if (request.method, path) == ("GET", f"{org}/calls"):
            return httpx.Response(200, json={"data": self.inbound, "nextCursor": None})
        if (request.method, path) == ("GET", f"{org}/calls/c_in/events"):
            return httpx.Response(200, json={"data": []})
        if (request.method, path) == ("DELETE", f"{org}/calls/c_1"):
            return httpx.Response(200, json=self.calls[0])
        return httpx.Response(404, json={"error": {"code": "not_found", "message": path}})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _runner(
    api: FakeApi, clock: Clock, tests: list[dict[str, Any]] | None = None, **suite: Any
) -> SuiteRunner:
    document = {
        "org": "acme",
        "numbers": [{"number": "7001", "flowId": "ivr"}],
        "tests": tests or [{"name": "t", "flow": "tester", "to": "sip:7001@{sip}", "timeout": 20}],
        **suite,
    }
    http = httpx.AsyncClient(base_url="http://api", transport=httpx.MockTransport(api))
    return SuiteRunner(
        suite_from_data(document, [FLOW]),
        server="http://api",
        token="k",
        http=http,
        clock=clock,
        sleep=clock.sleep,
        poll_interval=0.25,
    )


async def test_prepare_pushes_a_new_version_and_accepts_an_existing_number() -> None:
    api, clock = FakeApi(), Clock()
    api.flow_exists, api.number_flow = True, "ivr"
    runner = _runner(api, clock)
    messages: list[str] = []
    runner.listener.setup = messages.append  # type: ignore[method-assign]
    await runner.prepare()
    assert [(m, p) for m, p, _ in api.requests] == [
        ("GET", "/v1/organizations/acme"),
        ("POST", "/v1/organizations/acme/flows"),
        ("PUT", "/v1/organizations/acme/flows/tester"),
        ("POST", "/v1/organizations/acme/numbers"),
        ("GET", "/v1/organizations/acme/numbers/7001"),
    ]
    assert api.requests[1][2] == FLOW  # the document as written, JSON
    assert runner.sip_address == SIP  # from the number's sipUri
    assert messages[0] == "flow tester pushed (version 2)"


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (lambda api: setattr(api, "number_flow", "other"), "routes to flow 'other'"),
        (lambda api: setattr(api, "org_status", 404), "organization 'acme' not found"),
        (lambda api: setattr(api, "org_status", 401), "token was refused"),
    ],
)
async def test_prepare_refuses(setup: Callable[[FakeApi], None], error: str) -> None:
    api, clock = FakeApi(), Clock()
    setup(api)
    with pytest.raises(SetupError, match=error):
        await _runner(api, clock).prepare()


async def test_sip_placeholder_without_numbers_is_a_setup_error() -> None:
    api, clock = FakeApi(), Clock()
    runner = _runner(api, clock, numbers=[])
    with pytest.raises(SetupError, match=r"--sip HOST:PORT"):
        await runner.prepare()


async def test_a_passing_call_is_polled_to_the_end() -> None:
    api, clock = FakeApi(), Clock()
    api.inbound = [
        _call("completed", sessionId="c_in", flowId="ivr", direction="inbound"),
        _call("completed", sessionId="c_other", sip={"callId": "zzz"}),
    ]
    runner = _runner(
        api,
        clock,
        tests=[
            {
                "name": "t",
                "flow": "tester",
                "to": "sip:7001@{sip}",
                "timeout": 20,
                "variables": {"name": "Ada"},
                "expect": {"amdResult": None},
            }
        ],
    )
    report = await runner.run()
    [result] = report.results
    assert result.status is TestStatus.PASSED, result.summary()
    create = next(b for m, p, b in api.requests if m == "POST" and p.endswith("/calls"))
    assert create == {
        "to": f"sip:7001@{SIP}",
        "mode": "poll",
        "maxDuration": 20,
        "variables": {"name": "Ada"},
    }
    assert clock.slept == [0.25, 0.25, 0.25]  # polls: queued, in_progress, completed
    assert result.session_id == "c_1" and result.duration_seconds == 4.2
    assert result.heard == ["hear: hi there"]
    assert result.leg is not None and result.leg.events == EVENTS
    assert result.leg.flow == FLOW
    assert result.far_end is not None and result.far_end.call["sessionId"] == "c_in"
    listing = next(r for r in api.requests if r[1] == "/v1/organizations/acme/calls")
    assert listing[0] == "GET"
    assert report.ok and (report.passed, report.failed, report.errors) == (1, 0, 0)


async def test_expectations_that_do_not_hold_fail_the_test() -> None:
    api, clock = FakeApi(), Clock()
    runner = _runner(
        api,
        clock,
        tests=[
            {
                "name": "t",
                "flow": "tester",
                "to": "sip:7001@{sip}",
                "expect": {
                    "status": "completed",
                    "flowOutcome": "passed",
                    "hangupBy": "remote",
                    "amdResult": "human",
                },
            }
        ],
    )
    [result] = (await runner.run()).results
    assert result.status is TestStatus.FAILED
    assert [(m.field, m.expected, m.actual) for m in result.mismatches] == [
        ("amd.result", "human", "None"),
        ("hangupBy", "remote", "flow"),
    ]
    create = next(b for m, p, b in api.requests if m == "POST" and p.endswith("/calls"))
    assert create["amd"]["mode"] == "async"  # implied by expect.amdResult
    assert result.summary() == (
        "amd.result: expected human, got None; hangupBy: expected remote, got flow"
    )


async def test_rate_limit_is_waited_out() -> None:
    api, clock = FakeApi(), Clock()
    api.create = [
        httpx.Response(
            429,
            headers={"Retry-After": "2"},
            json={"error": {"code": "rate_limited", "message": "x"}},
        )
    ]
    runner = _runner(api, clock)
    await runner.prepare()
    [result] = (await runner.run_tests()).results
    assert result.status is TestStatus.PASSED
    assert clock.slept[0] == 2.0


async def test_refused_call_is_an_error_with_the_api_message() -> None:
    api, clock = FakeApi(), Clock()
    api.create = [
        httpx.Response(
            403,
            json={
                "error": {
                    "code": "destination_not_allowed",
                    "message": "no",
                    "details": [{"path": "body.to", "message": "denied"}],
                }
            },
        )
    ]
    runner = _runner(api, clock)
    await runner.prepare()
    [result] = (await runner.run_tests()).results
    assert result.status is TestStatus.ERROR
    assert result.error == (
        "call not created: HTTP 403 destination_not_allowed: no\n  body.to: denied"
    )
    assert result.short_reason() == "call not created: HTTP 403 destination_not_allowed: no"


async def test_a_call_that_outlives_its_timeout_is_canceled() -> None:
    api, clock = FakeApi(), Clock()
    api.calls = [_call("ringing")]  # forever
    runner = _runner(
        api, clock, tests=[{"name": "t", "flow": "tester", "to": "sip:7001@{sip}", "timeout": 3}]
    )
    await runner.prepare()
    [result] = (await runner.run_tests()).results
    assert result.status is TestStatus.ERROR
    assert result.error is not None and result.error.startswith("timed out after 3 s")
    assert ("DELETE", "/v1/organizations/acme/calls/c_1", None) in api.requests
    assert 8.0 <= sum(clock.slept) <= 8.5  # timeout + 5 s grace, in poll steps


def test_unfinished_expect_fails_a_passed_flow() -> None:
    test = SuiteTest.model_validate({"name": "t", "flow": "f", "to": "x"})
    events = [*EVENTS, {"type": "flow.node.entered", "node": "hear-2", "nodeType": "expect"}]
    assert unfinished_expects(events) == ["hear-2"]
    [mismatch] = check_expectations(test, DONE, events)
    assert mismatch.field == "assertion hear-2"
    # A test that expects the flow to fail does not care.
    negative = SuiteTest.model_validate(
        {"name": "t", "flow": "f", "to": "x", "expect": {"flowOutcome": None}}
    )
    assert check_expectations(negative, DONE, events) == []


@pytest.mark.parametrize(
    ("uri", "address"),
    [
        ("sip:7001@127.0.0.1:5070", "127.0.0.1:5070"),
        ("sip:7001@h;transport=tcp", "h"),
        ("127.0.0.1:5060", "127.0.0.1:5060"),
    ],
)
def test_sip_address_of(uri: str, address: str) -> None:
    assert sip_address_of(uri) == address
