"""Runs a suite against a dialflow server through its HTTP API only (httpx, async).

Before the tests: push the suite's flows (POST, or PUT a new version when the flow
exists) and create its inbound numbers (409 = already there: fine if it routes to the
same flow). Then every test is one call in ``poll`` mode, polled until terminal,
compared with its ``expect``; tests run in parallel up to ``concurrency``. The
result keeps the Call object, its event log and, when the far end is an inbound
number of the same server and organization, the far end's Call and events too.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from .results import (
    TERMINAL,
    CallLeg,
    Mismatch,
    SuiteReport,
    TestResult,
    TestStatus,
    check_expectations,
    unfinished_expects,
)
from .suite import Suite, SuiteTest

__all__ = [
    "TERMINAL",
    "CallLeg",
    "Mismatch",
    "RunListener",
    "SetupError",
    "SuiteReport",
    "SuiteRunner",
    "TestResult",
    "TestStatus",
    "api_error_text",
    "check_expectations",
    "sip_address_of",
    "unfinished_expects",
]

#: Extra seconds past a test's timeout for the server's own hang-up to land.
_GRACE = 5.0


class RunListener(Protocol):
    """Progress callbacks (the rich UI implements them)."""

    def setup(self, message: str) -> None: ...

    def test_started(self, test: SuiteTest) -> None: ...

    def test_finished(self, result: TestResult) -> None: ...


class _Silent:
    def setup(self, message: str) -> None:
        pass

    def test_started(self, test: SuiteTest) -> None:
        pass

    def test_finished(self, result: TestResult) -> None:
        pass


class SetupError(Exception):
    """The suite could not be prepared (server unreachable, a flow refused, a number taken)."""


def api_error_text(response: httpx.Response) -> str:
    """``HTTP 422 invalid_flow: ...`` with each detail's path on its own line."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:300]}"
    lines = [f"HTTP {response.status_code} {error.get('code')}: {error.get('message')}"]
    for detail in error.get("details") or []:
        lines.append(f"  {detail.get('path')}: {detail.get('message')}")
    return "\n".join(lines)


def sip_address_of(sip_uri: str) -> str | None:
    """``host:port`` of ``sip:7001@host:port`` (the numbers API's ``sipUri``)."""
    rest = sip_uri.split(":", 1)[1] if sip_uri.lower().startswith("sip:") else sip_uri
    host_port = rest.rsplit("@", 1)[-1].split(";", 1)[0]
    return host_port or None


class SuiteRunner:
    """Prepares and runs one suite against ``server`` with ``token`` (HTTP API only)."""

    def __init__(
        self,
        suite: Suite,
        *,
        server: str,
        token: str,
        org: str | None = None,
        sip_address: str | None = None,
        concurrency: int | None = None,
        listener: RunListener | None = None,
        poll_interval: float = 0.25,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``http``: a client with base URL and token already set (then ``server`` and
        ``token`` only label the report); ``clock``/``sleep``: injected by unit tests."""
        self.suite = suite
        self.server = server.rstrip("/")
        self.org = org or suite.model.org
        self.sip_address = sip_address
        self.concurrency = concurrency or suite.model.concurrency
        self.listener: RunListener = listener or _Silent()
        self.poll_interval = poll_interval
        self._clock = clock
        self._sleep = sleep
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(
            base_url=self.server,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30.0, connect=5.0),
        )

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> SuiteRunner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def _org_path(self) -> str:
        return f"/v1/organizations/{self.org}"

    # -- preparation -------------------------------------------------------------------

    async def prepare(self) -> None:
        """Push flows, create numbers, find the SIP address; :class:`SetupError` if not."""
        try:
            response = await self.http.get(self._org_path)
        except httpx.HTTPError as exc:
            raise SetupError(f"cannot reach {self.server}: {exc}") from None
        if response.status_code == 401:
            raise SetupError(f"{self.server}: the token was refused (401)")
        if response.status_code == 404:
            raise SetupError(
                f"organization {self.org!r} not found on {self.server} (or the token cannot see it)"
            )
        if response.status_code >= 400:
            raise SetupError(api_error_text(response))
        for flow in self.suite.flows:
            await self._push(flow.flow_id, flow.text, flow.content_type, flow.source)
        for spec in self.suite.model.numbers:
            await self._number(spec.number, spec.flow_id)
        needs_sip = any("{sip}" in t.to for t in self.suite.tests)
        if needs_sip and not self.sip_address:
            self.sip_address = await self._any_sip_address()
            if not self.sip_address:
                raise SetupError(
                    "tests use {sip} but the server's SIP address is unknown: "
                    "add a number to the suite or pass --sip HOST:PORT"
                )

    async def _push(self, flow_id: str, text: str, content_type: str, source: str) -> None:
        headers = {"Content-Type": content_type}
        base = f"{self._org_path}/flows"
        try:
            response = await self.http.post(base, content=text.encode(), headers=headers)
            if response.status_code == 409:
                response = await self.http.put(
                    f"{base}/{flow_id}", content=text.encode(), headers=headers
                )
        except httpx.HTTPError as exc:
            raise SetupError(f"cannot push {source}: {exc}") from None
        if response.status_code >= 400:
            raise SetupError(f"flow {flow_id} ({source}) refused:\n{api_error_text(response)}")
        version = response.json().get("version")
        self.listener.setup(f"flow {flow_id} pushed (version {version})")

    async def _number(self, number: str, flow_id: str) -> None:
        path = f"{self._org_path}/numbers"
        try:
            response = await self.http.post(path, json={"number": number, "flowId": flow_id})
            if response.status_code == 409:
                # Idempotent: fine when it is ours and routes to the same flow.
                response = await self.http.get(f"{path}/{number}")
                if response.status_code == 404:
                    raise SetupError(f"number {number} is taken by another organization")
                if response.status_code < 400 and response.json().get("flowId") != flow_id:
                    raise SetupError(
                        f"number {number} exists and routes to flow "
                        f"{response.json().get('flowId')!r}, not {flow_id!r}"
                    )
        except httpx.HTTPError as exc:
            raise SetupError(f"cannot create number {number}: {exc}") from None
        if response.status_code >= 400:
            raise SetupError(f"number {number} refused:\n{api_error_text(response)}")
        sip_uri = str(response.json().get("sipUri") or "")
        if not self.sip_address and sip_uri:
            self.sip_address = sip_address_of(sip_uri)
        self.listener.setup(f"number {number} -> flow {flow_id} ({sip_uri})")

    async def _any_sip_address(self) -> str | None:
        try:
            response = await self.http.get(f"{self._org_path}/numbers")
        except httpx.HTTPError:
            return None
        if response.status_code >= 400:
            return None
        for number in response.json().get("data") or []:
            if number.get("sipUri"):
                return sip_address_of(str(number["sipUri"]))
        return None

    # -- running -----------------------------------------------------------------------

    async def run(self) -> SuiteReport:
        """Prepare, then run every test."""
        await self.prepare()
        return await self.run_tests()

    async def run_tests(self) -> SuiteReport:
        """Run the tests in parallel (at most ``concurrency`` calls at once)."""
        started_at = datetime.now(UTC)
        start = self._clock()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(test: SuiteTest) -> TestResult:
            async with gate:
                self.listener.test_started(test)
                result = await self.run_test(test)
                self.listener.test_finished(result)
                return result

        results = await asyncio.gather(*(one(t) for t in self.suite.tests))
        return SuiteReport(
            self.suite, self.server, self.org, list(results), started_at, self._clock() - start
        )

    async def run_test(self, test: SuiteTest) -> TestResult:
        """One call, followed to its end, compared with ``test.expect``."""
        start = self._clock()
        result = TestResult(test, TestStatus.ERROR)
        try:
            await self._run_test(test, result, start)
        except httpx.HTTPError as exc:
            result.status, result.error = TestStatus.ERROR, f"HTTP error: {exc}"
        except ValueError as exc:  # {sip} unknown
            result.status, result.error = TestStatus.ERROR, str(exc)
        result.wall_seconds = self._clock() - start
        return result

    async def _run_test(self, test: SuiteTest, result: TestResult, start: float) -> None:
        deadline = start + test.timeout
        result.to = test.destination(self.sip_address)
        body: dict[str, Any] = {
            "to": result.to,
            "mode": "poll",
            # The server hangs up by itself at the test's timeout (hangupBy: timeout).
            "maxDuration": max(1, math.ceil(test.timeout)),
        }
        if test.from_:
            body["from"] = test.from_
        if test.variables:
            body["variables"] = test.variables
        if test.ring_timeout:
            body["ringTimeout"] = test.ring_timeout
        amd = test.amd_spec()
        if amd is not None:
            body["amd"] = amd.request_body()
        call = await self._create(test, body, deadline)
        if call is None:
            result.error = f"no call was created within {test.timeout:g} s (rate limited)"
            return
        if isinstance(call, str):
            result.error = call
            return
        session_id = str(call["sessionId"])
        result.leg = CallLeg(call)
        while call.get("status") not in TERMINAL:
            if self._clock() > deadline + _GRACE:
                await self._cancel(session_id)
                result.leg = CallLeg(await self._get_call(session_id) or call)
                result.leg.events = await self._events(session_id)
                result.error = (
                    f"timed out after {test.timeout:g} s (call was {call.get('status')}); "
                    f"canceled, session {session_id}"
                )
                return
            await self._sleep(self.poll_interval)
            call = await self._get_call(session_id) or call
        result.leg = CallLeg(call, await self._events(session_id), await self._flow_of(call))
        result.far_end = await self._far_end(call)
        result.mismatches = check_expectations(test, call, result.leg.events)
        result.status = TestStatus.FAILED if result.mismatches else TestStatus.PASSED

    async def _create(
        self, test: SuiteTest, body: dict[str, Any], deadline: float
    ) -> dict[str, Any] | str | None:
        """The created Call; an error text; None when rate limiting outlasted the test."""
        path = f"{self._org_path}/flows/{test.flow}/calls"
        while True:
            response = await self.http.post(path, json=body)
            if response.status_code == 429:  # over the org's concurrency/CPS: wait and retry
                try:
                    wait = float(response.headers.get("Retry-After", "1"))
                except ValueError:
                    wait = 1.0
                if self._clock() + wait > deadline:
                    return None
                await self._sleep(min(max(wait, 0.2), 10.0))
                continue
            if response.status_code >= 400:
                return f"call not created: {api_error_text(response)}"
            return dict(response.json())

    async def _get_call(self, session_id: str) -> dict[str, Any] | None:
        response = await self.http.get(f"{self._org_path}/calls/{session_id}")
        return dict(response.json()) if response.status_code == 200 else None

    async def _events(self, session_id: str) -> list[dict[str, Any]]:
        try:
            response = await self.http.get(f"{self._org_path}/calls/{session_id}/events")
        except httpx.HTTPError:
            return []
        if response.status_code != 200:
            return []
        return list(response.json().get("data") or [])

    async def _cancel(self, session_id: str) -> None:
        try:
            await self.http.delete(f"{self._org_path}/calls/{session_id}")
        except httpx.HTTPError:
            pass

    async def _far_end(self, call: dict[str, Any]) -> CallLeg | None:
        """The inbound side of this call when it is a number of the same organization."""
        call_id = (call.get("sip") or {}).get("callId")
        if not call_id or not call.get("answeredAt") or not _is_local(call, self.sip_address):
            return None
        params = {"direction": "inbound", "limit": "200"}
        if call.get("createdAt"):
            params["from"] = str(call["createdAt"])
        try:
            response = await self.http.get(f"{self._org_path}/calls", params=params)
            if response.status_code != 200:
                return None
            found = next(
                (
                    c
                    for c in response.json().get("data") or []
                    if (c.get("sip") or {}).get("callId") == call_id
                ),
                None,
            )
            if found is None:
                return None
            far = dict(found)
            # The far end sees the BYE a moment after the tester's record closes.
            for _ in range(20):
                if far.get("status") in TERMINAL:
                    break
                await self._sleep(0.1)
                far = await self._get_call(str(far["sessionId"])) or far
            return CallLeg(far, await self._events(str(far["sessionId"])), await self._flow_of(far))
        except httpx.HTTPError:
            return None

    async def _flow_of(self, call: dict[str, Any]) -> dict[str, Any] | None:
        """The flow document (the version the call ran), for the prompts' text."""
        if not call.get("flowId"):
            return None
        params = {"version": str(call["flowVersion"])} if call.get("flowVersion") else None
        try:
            response = await self.http.get(
                f"{self._org_path}/flows/{call['flowId']}", params=params
            )
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        document = response.json().get("document")
        return dict(document) if isinstance(document, dict) else None


def _is_local(call: dict[str, Any], sip_address: str | None) -> bool:
    """Whether the call went to this server's own SIP address (else nobody to look up)."""
    if not sip_address:
        return False
    return sip_address_of(str(call.get("to") or "")) == sip_address
