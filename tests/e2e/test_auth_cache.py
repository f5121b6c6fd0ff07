"""Cached API-key, organization and flow lookups must never outlive a change made here."""

from __future__ import annotations

from .conftest import Server

HANGUP = {"id": "bye", "start": "end", "nodes": {"end": {"type": "hangup"}}}


async def test_revoked_key_is_refused_by_the_next_request(server: Server) -> None:
    _, headers = await server.org("acme")
    k = await server.http.post(
        "/v1/organizations/acme/api-keys", json={"name": "second"}, headers=server.admin()
    )
    assert k.status_code == 201, k.text
    second = {"Authorization": f"Bearer {k.json()['key']}"}
    for h in (headers, second):  # both keys are now in the cache
        assert (await server.http.get("/v1/organizations/acme", headers=h)).status_code == 200

    r = await server.http.delete(
        f"/v1/organizations/acme/api-keys/{k.json()['id']}", headers=server.admin()
    )
    assert r.status_code == 204
    refused = await server.http.get("/v1/organizations/acme", headers=second)
    assert refused.status_code == 401
    still = await server.http.get("/v1/organizations/acme", headers=headers)
    assert still.status_code == 200


async def test_org_and_flow_changes_are_seen_at_once(server: Server) -> None:
    _, headers = await server.org("acme")
    await server.flow("acme", headers, HANGUP)
    assert (await server.http.get("/v1/organizations/acme", headers=headers)).status_code == 200
    r = await server.http.patch(
        "/v1/organizations/acme", json={"name": "Renamed"}, headers=server.admin()
    )
    assert r.status_code == 200, r.text
    org = await server.http.get("/v1/organizations/acme", headers=headers)
    assert org.json()["name"] == "Renamed"

    call = "/v1/organizations/acme/flows/bye/calls"
    body = {"to": "sip:nobody@127.0.0.1:9", "mode": "poll"}
    r = await server.http.delete("/v1/organizations/acme/flows/bye", headers=headers)
    assert r.status_code == 204, r.text
    gone = await server.http.post(call, json=body, headers=headers)
    assert gone.status_code == 404, gone.text
