"""POST …/calls: the fast path answers the plain valid case, the FastAPI route every
other one, with the same responses either way."""

from __future__ import annotations

from typing import Any

from dialflow.api.fastpath import CreateCallFastPath

from .conftest import Server

FLOW = {"id": "bye", "start": "end", "nodes": {"end": {"type": "hangup"}}}
URL = "/v1/organizations/acme/flows/bye/calls"
# Nobody answers there: the call fails in the background, which is not what is tested.
TO = "sip:nobody@127.0.0.1:9"


def fast_path(server: Server) -> CreateCallFastPath:
    app: Any = server.uvicorn.config.loaded_app.app  # type: ignore[attr-defined]
    layer = app.middleware_stack
    while not isinstance(layer, CreateCallFastPath):
        layer = layer.app
    return layer


async def test_valid_request_is_answered_by_the_fast_path(server: Server) -> None:
    _, headers = await server.org("acme")
    await server.flow("acme", headers, FLOW)
    fp = fast_path(server)
    r = await server.http.post(URL, json={"to": TO, "variables": {"a": 1}}, headers=headers)
    assert r.status_code == 202, r.text
    call = r.json()
    assert r.headers["location"] == f"/v1/organizations/acme/calls/{call['sessionId']}"
    assert call["status"] == "queued" and call["flowId"] == "bye" and call["mode"] == "poll"
    assert fp.handled == 1
    metrics = (await server.http.get("/metrics")).text
    assert (
        'dialflow_api_request_duration_seconds_count{method="POST",'
        f'route="{URL.replace("acme", "{org_id}").replace("bye", "{flow_id}")}",status="202"}} 1.0'
    ) in metrics


async def test_every_other_case_goes_to_the_route(server: Server) -> None:
    _, headers = await server.org("acme")
    await server.flow("acme", headers, FLOW)
    fp = fast_path(server)
    bad_token = {"Authorization": "Bearer dfk_nope"}
    cases: list[tuple[str, dict[str, Any], dict[str, str], bytes | None, int, str]] = [
        (URL, {"to": TO}, bad_token, None, 401, "unauthorized"),
        (URL, {"to": TO, "ringTimeout": 0}, headers, None, 422, "validation_error"),
        (URL, {}, headers, b"{not json", 422, "validation_error"),
        ("/v1/organizations/acme/flows/nope/calls", {"to": TO}, headers, None, 404, "not_found"),
        (URL, {"to": "mailto:x@y"}, headers, None, 422, "invalid_destination"),
        (URL, {"to": "sip:x@169.254.169.254"}, headers, None, 403, "destination_not_allowed"),
    ]
    for url, body, h, raw, status, code in cases:
        if raw is None:
            r = await server.http.post(url, json=body, headers=h)
        else:
            r = await server.http.post(
                url, content=raw, headers={**h, "Content-Type": "application/json"}
            )
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == code, (body, r.text)
    assert fp.handled == 0

    # Idempotency keys stay with the route: the second request is a replay.
    keyed = {**headers, "Idempotency-Key": "k1"}
    first = await server.http.post(URL, json={"to": TO}, headers=keyed)
    again = await server.http.post(URL, json={"to": TO}, headers=keyed)
    assert first.status_code == again.status_code == 202
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["sessionId"] == first.json()["sessionId"]
    assert fp.handled == 0
