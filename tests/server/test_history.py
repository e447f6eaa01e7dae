"""The log routes say who made each commit, as whom, and why; a route links charms' inputs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from in_process import InProcess

from charmspace.client import APIError, AsyncClient


async def eventually(client: AsyncClient, space: str, charm: str, path: str, expected: Any) -> None:
    """Derived values follow a commit shortly after it: wait (up to 5 s) for ``expected``."""
    for _ in range(500):
        if await client.cell(space, charm, path).get() == expected:
            return
        await asyncio.sleep(0.01)
    assert await client.cell(space, charm, path).get() == expected


async def log_until(
    client: AsyncClient, space: str, charm: str, kinds: list[str], **options: int
) -> list[Any]:
    """The charm's log once its causes are ``kinds`` (derived values commit shortly after)."""
    for _ in range(500):
        log = await client.charms.log(space, charm, **options)
        if [e["cause"]["kind"] for e in log] == kinds:
            return list(log)
        await asyncio.sleep(0.01)
    assert [e["cause"]["kind"] for e in log] == kinds
    return list(log)


async def _counter(client: AsyncClient, **inputs: Any) -> str:
    created = await client.charms.create("counter", inputs=inputs)
    return str(created["id"])


async def test_the_space_log_names_principal_and_cause(alice: AsyncClient) -> None:
    charm = await _counter(alice, value=1)
    await alice.stream(alice.did, charm, "increment").call({})
    await alice.cell(alice.did, charm, "value").set(5)
    await eventually(alice, alice.did, charm, "doubled", 10)
    log = await alice.spaces.log(alice.did)
    kinds = [(e["cause"]["kind"], e["principal"]) for e in log]
    assert kinds[0] == ("create", alice.did)
    assert ("edit", alice.did) in kinds and ("derived", alice.did) in kinds
    event = next(e for e in log if e["cause"]["kind"] == "event")
    assert event["cause"] == {
        "kind": "event",
        "detail": event["meta"]["handler"],
        "charm": charm,
        "stream": "increment",  # the result's key, not the builder's handler name
    }
    assert event["cause"]["detail"] != "increment"


async def test_an_event_runs_as_whoever_sent_it(alice: AsyncClient, bob: AsyncClient) -> None:
    charm = await _counter(alice)
    await alice.spaces.set_acl(alice.did, bob.did, "WRITE")
    await bob.stream(alice.did, charm, "adjust").call({"amount": 2})
    log = await log_until(alice, alice.did, charm, ["create", "derived", "event", "derived"])
    events = [e for e in log if e["cause"]["kind"] == "event"]
    assert [(e["principal"], e["cause"]["stream"]) for e in events] == [(bob.did, "adjust")]
    after = [e for e in log if e["seq"] > events[0]["seq"]]
    assert after and {e["cause"]["kind"] for e in after} == {"derived"}
    assert {e["principal"] for e in after} == {alice.did}  # derived values: the creator


async def test_a_charm_log_holds_only_that_charms_commits(alice: AsyncClient) -> None:
    first = await _counter(alice, value=1)
    second = await _counter(alice, value=2)
    await alice.stream(alice.did, second, "increment").call({})
    first_log = await log_until(alice, alice.did, first, ["create", "derived"])
    second_log = await log_until(
        alice, alice.did, second, ["create", "derived", "event", "derived"]
    )
    assert {e["seq"] for e in first_log}.isdisjoint(e["seq"] for e in second_log)
    since = second_log[1]["seq"]
    assert await alice.charms.log(alice.did, second, since=since) == second_log[2:]
    assert await alice.charms.log(alice.did, second, limit=1) == second_log[:1]


async def test_a_charm_log_needs_read(alice: AsyncClient, bob: AsyncClient) -> None:
    charm = await _counter(alice)
    with pytest.raises(APIError) as refused:
        await bob.charms.log(alice.did, charm)
    assert refused.value.status == 403
    with pytest.raises(APIError) as missing:
        await alice.charms.log(alice.did, "of:nothing")
    assert missing.value.status == 404


async def test_link_makes_data_flow_and_is_logged_as_a_link(alice: AsyncClient) -> None:
    source = await _counter(alice, value=3)
    target = await _counter(alice)
    linked = await alice.charms.link(alice.did, target, "value", (alice.did, source), "value")
    assert linked["ok"] is True
    await eventually(alice, alice.did, target, "doubled", 6)
    await alice.stream(alice.did, source, "increment").call({})
    assert await alice.cell(alice.did, target, "value").get() == 4
    log = await alice.charms.log(alice.did, target)
    link = next(e for e in log if e["seq"] == linked["seq"])
    assert link["cause"]["kind"] == "link" and link["cause"]["detail"] == "value"


async def test_link_across_spaces_needs_read_on_the_source(
    alice: AsyncClient, bob: AsyncClient
) -> None:
    source = await _counter(alice, value=8)
    await bob.spaces.create()
    target = await _counter(bob)
    with pytest.raises(APIError) as refused:
        await bob.charms.link(bob.did, target, "value", (alice.did, source), "value")
    assert refused.value.status == 403
    assert await bob.cell(bob.did, target, "value").get() == 0  # nothing written
    await alice.spaces.set_acl(alice.did, bob.did, "READ")
    await bob.charms.link(bob.did, target, "value", (alice.did, source), "value")
    await eventually(bob, bob.did, target, "doubled", 16)


async def test_link_into_a_space_needs_write(alice: AsyncClient, bob: AsyncClient) -> None:
    target = await _counter(alice)
    await alice.spaces.set_acl(alice.did, bob.did, "READ")
    await bob.spaces.create()
    source = await _counter(bob, value=5)
    with pytest.raises(APIError) as refused:
        await bob.charms.link(alice.did, target, "value", (bob.did, source), "value")
    assert refused.value.status == 403
    assert refused.value.type == "AuthorizationError"
    assert await alice.cell(alice.did, target, "value").get() == 0


async def test_link_refuses_bad_requests(alice: AsyncClient) -> None:
    source = await _counter(alice)
    target = await _counter(alice)
    with pytest.raises(APIError) as no_input:
        await alice.charms.link(alice.did, target, "nope", (alice.did, source))
    assert no_input.value.status == 400
    assert "has no input 'nope'" in str(no_input.value)
    with pytest.raises(APIError) as no_source:
        await alice.charms.link(alice.did, target, "value", (alice.did, "of:nothing"))
    assert no_source.value.status == 404
    with pytest.raises(APIError) as no_cell:  # regression: it linked to a null nobody wrote
        await alice.charms.link(alice.did, target, "value", (alice.did, source), "vaule")
    assert no_cell.value.status == 404
    assert no_cell.value.type == "UnknownCellError"
    with pytest.raises(APIError) as bad_space:
        await alice.charms.link(alice.did, target, "value", ("not-a-did", source))
    assert bad_space.value.status == 400
    bad = await alice.http.put(
        f"/api/spaces/{alice.did}/charms/{target}/inputs/value", json={"source": "x"}
    )
    assert bad.status_code == 400


async def test_link_refuses_a_link_back_to_the_input(alice: AsyncClient) -> None:
    """Regression: `charm link ID/value ID/value` committed a cycle, and the charm's
    result, cells and handlers all failed with a LinkError from then on."""
    charm = await _counter(alice, value=2)
    for path in [("value",), ()]:
        with pytest.raises(APIError) as refused:
            await alice.charms.link(alice.did, charm, "value", (alice.did, charm), *path)
        assert refused.value.status == 400
        assert refused.value.type == "InputLinkError"
        assert "nothing was linked" in str(refused.value)
    assert await alice.cell(alice.did, charm, "value").get() == 2
    assert (await alice.charms.get(alice.did, charm))["result"]["value"] == 2


async def test_the_new_routes_are_typed_in_openapi(served: InProcess) -> None:
    async with served.raw() as http:
        spec = (await http.get("/openapi.json")).json()
    link = spec["paths"]["/api/spaces/{space}/charms/{id}/inputs/{name}"]["put"]
    assert link["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/LinkInput"
    )
    log = spec["paths"]["/api/spaces/{space}/charms/{id}/log"]["get"]
    assert log["responses"]["200"]["content"]["application/json"]["schema"]["items"][
        "$ref"
    ].endswith("/LogEntry")
    assert "cause" in spec["components"]["schemas"]["LogEntry"]["required"]
    kinds = spec["components"]["schemas"]["Cause"]["properties"]["kind"]["enum"]
    assert {"event", "edit", "derived", "start", "link"} <= set(kinds)
