"""``dialflow call`` and ``dialflow flows push``: thin clients of the HTTP API (httpx)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml


class ClientError(Exception):
    pass


def _client(args: argparse.Namespace) -> httpx.Client:
    if not args.token:
        raise ClientError("no token: pass --token or set DIALFLOW_TOKEN")
    if not args.org:
        raise ClientError("no organization: pass --org or set DIALFLOW_ORG")
    return httpx.Client(
        base_url=args.server,
        headers={"Authorization": f"Bearer {args.token}"},
        timeout=httpx.Timeout(40.0, connect=5.0),
    )


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"
    lines = [f"HTTP {response.status_code} {error.get('code')}: {error.get('message')}"]
    for detail in error.get("details") or []:
        lines.append(f"  {detail.get('path')}: {detail.get('message')}")
    return "\n".join(lines)


def _parse_vars(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name:
            raise ClientError(f"--var wants NAME=VALUE, got {pair!r}")
        out[name] = value
    return out


def _print_call(call: dict[str, Any]) -> None:
    amd = call.get("amd") or {}
    sip = call.get("sip") or {}
    flow = call.get("flow") or {}
    print(f"session   {call['sessionId']}")
    print(
        f"status    {call['status']}"
        + (f" (hangup by {call['hangupBy']})" if call.get("hangupBy") else "")
    )
    print(f"to        {call['to']}")
    if sip.get("finalCode"):
        print(f"sip       {sip['finalCode']} {sip.get('finalReason') or ''}")
    if amd.get("result"):
        print(f"amd       {amd['result']} in {amd.get('decisionMs')} ms ({amd.get('reason')})")
    if call.get("durationMs"):
        print(f"duration  {call['durationMs'] / 1000:.1f} s")
    if flow.get("outcome"):
        print(f"flow      {flow['outcome']}: {' > '.join(flow.get('path') or [])}")
    for assertion in flow.get("assertions") or []:
        mark = "PASS" if assertion.get("passed") else "FAIL"
        expected, heard = assertion.get("expected"), assertion.get("heard")
        print(f"  {mark} {assertion.get('node')}: expected {expected!r}, heard {heard!r}")
    if call.get("error"):
        print(f"error     {call['error'].get('code')}: {call['error'].get('message')}")


def call_command(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"to": args.to, "mode": args.mode}
    if args.from_:
        body["from"] = args.from_
    if args.webhook_url:
        body["webhookUrl"] = args.webhook_url
    if args.var:
        body["variables"] = _parse_vars(args.var)
    if args.amd:
        body["amd"] = {"enabled": True}
    if args.ring_timeout:
        body["ringTimeout"] = args.ring_timeout
    with _client(args) as http:
        response = http.post(f"/v1/organizations/{args.org}/flows/{args.flow}/calls", json=body)
        if response.status_code >= 400:
            raise ClientError(_error_text(response))
        call = response.json()
        if args.wait or (args.mode == "sync" and response.status_code == 202):
            terminal = {"completed", "busy", "no_answer", "failed", "canceled"}
            while call["status"] not in terminal:
                time.sleep(0.5)
                response = http.get(f"/v1/organizations/{args.org}/calls/{call['sessionId']}")
                if response.status_code >= 400:
                    raise ClientError(_error_text(response))
                call = response.json()
    if args.json:
        print(json.dumps(call))
    else:
        _print_call(call)
    return 0 if call["status"] == "completed" else 1


def push_command(args: argparse.Namespace) -> int:
    failures = 0
    with _client(args) as http:
        for name in args.files:
            path = Path(name)
            text = path.read_text(encoding="utf-8")
            is_yaml = path.suffix.lower() in (".yaml", ".yml")
            document = yaml.safe_load(text) if is_yaml else json.loads(text)
            flow_id = document.get("id") if isinstance(document, dict) else None
            headers = {"Content-Type": "application/yaml" if is_yaml else "application/json"}
            base = f"/v1/organizations/{args.org}/flows"
            response = http.post(base, content=text.encode(), headers=headers)
            if response.status_code == 409 and flow_id:
                response = http.put(f"{base}/{flow_id}", content=text.encode(), headers=headers)
            if response.status_code >= 400:
                failures += 1
                print(f"{name}: {_error_text(response)}", file=sys.stderr)
                continue
            flow = response.json()
            if args.json:
                print(json.dumps(flow))
            else:
                print(f"{name}: flow {flow['id']} version {flow['version']}")
                for warning in flow.get("warnings") or []:
                    print(f"  warning {warning.get('path')}: {warning.get('message')}")
    return 1 if failures else 0


def main(args: argparse.Namespace) -> int:
    try:
        if args.command == "call":
            return call_command(args)
        return push_command(args)
    except ClientError as exc:
        print(f"dialflow: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"dialflow: cannot reach {args.server}: {exc}", file=sys.stderr)
        return 2
