"""The HTTP API in-process: each route does what docs/server.md says, as the request's principal."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from in_process import InProcess

from charmspace.client import APIError, AsyncClient
from charmspace.identity import Identity
from charmspace.server import Settings, create_app
from charmspace.signing import b64encode
from charmspace.storage.proof import creation_proof
from charmspace.testing import ManualFlush


async def test_health_and_meta_need_no_signature(served: InProcess) -> None:
    async with served.raw() as http:
        assert (await http.get("/_health")).json() == {"ok": True}
        meta = (await http.get("/api/meta")).json()
    assert meta["server"].startswith("did:key:z6Mk")
    assert meta["version"]


async def test_home_and_named_spaces(alice: AsyncClient) -> None:
    home = await alice.spaces.create()  # again: the caller has it already
    notes = await alice.spaces.create("notes")
    assert home["space"] == alice.did and home["owner"] == alice.did
    assert notes["space"] == alice.identity.derive("notes").did
    assert notes["owner"] == alice.did
    listed = {s["space"] for s in await alice.spaces.list()}
    assert listed == {alice.did, notes["space"]}


async def test_a_named_space_needs_the_proof_of_its_key(alice: AsyncClient) -> None:
    other = Identity.generate()
    without = await alice.http.post("/api/spaces", json={"space": other.did})
    assert without.status_code == 403
    assert without.json()["error"]["type"] == "SpaceClaimError"
    # A proof by the space's key, but for another owner: alice cannot reuse it.
    proof = b64encode(creation_proof(other, Identity.generate().did))
    reused = await alice.http.post("/api/spaces", json={"space": other.did, "proof": proof})
    assert reused.status_code == 403
    assert reused.json()["error"]["type"] == "SpaceClaimError"
    garbled = await alice.http.post("/api/spaces", json={"space": other.did, "proof": "!!"})
    assert garbled.status_code == 400
    assert other.did not in {s["space"] for s in await alice.spaces.list()}


async def test_counter_over_http(alice: AsyncClient) -> None:
    created = await alice.charms.create("counter", inputs={"value": 5})
    charm = created["id"]
    assert created["import_path"] == "charmspace.library.counter:counter"
    listed = await alice.charms.list()
    assert [(c["id"], c["import_path"]) for c in listed] == [(charm, created["import_path"])]
    summary = await alice.charms.get(alice.did, charm)
    assert summary["pattern"] == "counter"
    assert summary["import_path"] == "charmspace.library.counter:counter"
    assert summary["name"] == "Counter: 5"
    assert summary["result"]["value"] == 5

    called = await alice.stream(alice.did, charm, "increment").call({})
    assert called["ok"] and called["seq"] > 0
    committed = await alice.stream(alice.did, charm, "adjust").send({"amount": 10}, wait=True)
    assert committed["ok"] and committed["seq"] > called["seq"]
    accepted = await alice.stream(alice.did, charm, "increment").send({})
    assert accepted == {"accepted": True}
    await asyncio.sleep(0.05)
    assert await alice.cell(alice.did, charm, "value").get() == 17

    written = await alice.cell(alice.did, charm, "value").set(100)
    assert written["ok"]
    for _ in range(100):
        if await alice.cell(alice.did, charm, "doubled").get() == 200:
            break
        await asyncio.sleep(0.01)
    assert await alice.cell(alice.did, charm, "doubled").get() == 200

    await alice.charms.remove(alice.did, charm)
    assert await alice.charms.list() == []
    with pytest.raises(APIError) as gone:
        await alice.charms.get(alice.did, charm)
    assert gone.value.status == 404 and gone.value.type == "CharmNotFoundError"


async def test_a_first_charm_creates_the_home_space_only_if_it_builds(bob: AsyncClient) -> None:
    with pytest.raises(APIError) as refused:
        await bob.charms.create("counter", inputs={"value": "five"})
    assert refused.value.status == 400
    assert await bob.spaces.list() == []  # nothing written, not even the home space
    await bob.charms.create("counter", inputs={"value": 5})
    assert [s["space"] for s in await bob.spaces.list()] == [bob.did]


async def test_a_call_returns_the_handlers_result(alice: AsyncClient) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    result = await alice.stream(alice.did, charm, "increment").call({})
    assert result == {
        "ok": True,
        "value": None,
        "space": alice.did,
        "seq": result["seq"],
        "error": None,
    }


async def test_derived_cells_refuse_direct_edits(alice: AsyncClient) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    with pytest.raises(APIError) as refused:
        await alice.cell(alice.did, charm, "doubled").set(3)
    assert refused.value.status == 409 and refused.value.type == "ReadOnlyCellError"


@pytest.fixture
async def carol(storage_url: str, tmp_path: Path) -> AsyncIterator[AsyncClient]:
    """A client of the app over each backend (``served`` is SQLite only)."""
    app = create_app(Settings(data=tmp_path / "data", storage=storage_url))
    async with app.router.lifespan_context(app):
        served = InProcess(app, httpx.ASGITransport(app=app))
        async with served.client(Identity.from_passphrase("carol")) as client:
            await client.spaces.create()
            yield client


async def test_an_edit_of_the_wrong_type_for_an_input_is_400_and_writes_nothing(
    carol: AsyncClient,
) -> None:
    """The bug: a string set into the counter's int input was written, and broke its handlers."""
    charm = (await carol.charms.create("counter", inputs={"value": 5}))["id"]
    before = await carol.spaces.head(carol.did)
    with pytest.raises(APIError) as refused:
        await carol.cell(carol.did, charm, "value").set("str")
    error = refused.value
    assert error.status == 400 and error.type == "InputTypeError"
    assert error.fields["pattern"] == "counter" and error.fields["input"] == "value"
    assert error.fields["wanted"] == "int" and error.fields["found"] == "a string"
    assert "nothing was written" in str(error) and "Write a value of type int" in str(error)
    assert await carol.spaces.head(carol.did) == before
    assert (await carol.stream(carol.did, charm, "increment").call({}))["ok"]
    assert await carol.cell(carol.did, charm, "value").get() == 6
    assert (await carol.cell(carol.did, charm, "value").set(10))["ok"]
    assert await carol.cell(carol.did, charm, "value").get() == 10


async def test_an_event_its_handler_refuses_is_400(alice: AsyncClient) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    with pytest.raises(APIError) as refused:
        await alice.stream(alice.did, charm, "adjust").call({"amount": "ten"})
    assert refused.value.status == 400 and refused.value.type == "SchemaError"
    assert "ten" not in str(refused.value)  # never a value in an error


async def test_unknown_stream_and_pattern(alice: AsyncClient) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    with pytest.raises(APIError) as unknown:
        await alice.stream(alice.did, charm, "nope").call({})
    assert unknown.value.status == 404 and unknown.value.type == "UnknownStreamError"
    with pytest.raises(APIError) as no_pattern:
        await alice.charms.create("os:system")
    assert no_pattern.value.status == 400 and no_pattern.value.type == "PatternError"


async def test_patterns_list_their_input_schemas(alice: AsyncClient) -> None:
    patterns = {p["name"]: p for p in await alice.patterns()}
    assert "counter" in patterns
    assert patterns["counter"]["tags"] == ["#counter"]
    assert "value" in patterns["counter"]["inputs"]["properties"]


async def test_favorites_and_wish(alice: AsyncClient) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    added = await alice.favorites.add(alice.did, charm)
    assert added["tags"] == ["#counter"]
    assert [f["id"] for f in await alice.favorites.list()] == [charm]
    wish = await alice.wish("#counter")
    assert wish["result"]["id"] == charm
    assert (await alice.wish("#nothing"))["result"] is None
    with pytest.raises(APIError) as bad:
        await alice.wish("not a tag")
    assert bad.value.status == 400
    await alice.favorites.remove(alice.did, charm)
    assert await alice.favorites.list() == []


async def test_acl_grants_let_another_principal_in(alice: AsyncClient, bob: AsyncClient) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    with pytest.raises(APIError) as refused:
        await bob.charms.list(alice.did)
    assert refused.value.status == 403
    acl = await alice.spaces.set_acl(alice.did, bob.did, "write")
    assert acl["acl"] == {bob.did: "WRITE"}
    assert (await bob.stream(alice.did, charm, "increment").call({}))["ok"]
    assert await bob.cell(alice.did, charm, "value").get() == 1
    handled = [e for e in await bob.spaces.log(alice.did) if "handler" in e["meta"]]
    assert handled[-1]["principal"] == bob.did  # the handler ran as bob
    await alice.spaces.set_acl(alice.did, bob.did, None)
    assert (await alice.spaces.acl(alice.did))["acl"] == {}


async def test_point_in_time_reads(alice: AsyncClient) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    before = await alice.spaces.head(alice.did)
    await alice.stream(alice.did, charm, "increment").call({})
    entries = await alice.spaces.log(alice.did, since=before)
    [handled] = [e for e in entries if "handler" in e["meta"]]
    value_doc = handled["ids"][0]  # the counter's argument document: its value
    now = await alice.spaces.doc(alice.did, value_doc)
    then = await alice.spaces.doc(alice.did, value_doc, at=handled["seq"] - 1)
    assert now["seq"] == handled["seq"]
    assert (now["value"]["value"], then["value"]["value"]) == (1, 0)


async def test_validation_errors_are_400_with_the_error_shape(alice: AsyncClient) -> None:
    response = await alice.http.post(f"/api/spaces/{alice.did}/charms", json={"pattern": 3})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "BadRequestError"
    assert error["problems"][0]["location"] == "body/pattern"


async def test_responses_carry_a_request_id(alice: AsyncClient) -> None:
    response = await alice.http.get("/api/spaces")
    assert len(response.headers["x-request-id"]) == 12


async def test_openapi_documents_every_route_and_the_signature(served: InProcess) -> None:
    async with served.raw() as http:
        schema = (await http.get("/openapi.json")).json()
    paths = set(schema["paths"])
    assert {
        "/_health",
        "/api/meta",
        "/api/spaces",
        "/api/spaces/{space}/acl",
        "/api/patterns",
        "/api/spaces/{space}/charms",
        "/api/spaces/{space}/charms/{id}",
        "/api/spaces/{space}/charms/{id}/cells/{path}",
        "/api/spaces/{space}/charms/{id}/streams/{name}",
        "/api/favorites",
        "/api/wish",
        "/api/spaces/{space}/log",
        "/api/spaces/{space}/docs/{id}",
    } <= paths
    assert "CharmspaceSignature" in schema["components"]["securitySchemes"]


async def test_openapi_names_the_charm_bodies_after_what_they_describe(served: InProcess) -> None:
    async with served.raw() as http:
        schema = (await http.get("/openapi.json")).json()
    bodies = schema["components"]["schemas"]
    assert sorted(name for name in bodies if name.startswith("Charm")) == [
        "CharmInfo",
        "CharmRef",
        "CharmSummary",
    ]
    assert list(bodies["CharmInfo"]["properties"]) == [
        "id",
        "space",
        "pattern",
        "import_path",
        "created_at",
    ]
    assert list(bodies["CharmSummary"]["properties"]) == [
        "id",
        "space",
        "pattern",
        "import_path",
        "name",
        "result",
        "error",
    ]
    listed = schema["paths"]["/api/spaces/{space}/charms"]["get"]["responses"]["200"]
    assert listed["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/CharmInfo"
    }


async def test_wait_commit_answers_once_durable_and_no_read_sees_the_commit_before(
    served: InProcess, alice: AsyncClient
) -> None:
    """A handler's commit is applied at once but seen by no request before it is durable."""
    charm = (await alice.charms.create("counter"))["id"]
    await alice.stream(alice.did, charm, "increment").call({})
    runtime = served.app.state.runtime
    await runtime.idle()  # the derived value's commit too
    head = await alice.spaces.head(alice.did)
    usual, manual = runtime.storage.flush_scheduler, ManualFlush()
    runtime.storage.flush_scheduler = manual
    posting = asyncio.create_task(alice.stream(alice.did, charm, "increment").send({}, wait=True))
    for _ in range(200):  # until the handler's commit is applied (not durable: not flushed)
        if runtime.storage.durable_head(alice.did) < runtime.storage.backend.head(alice.did):
            break
        await asyncio.sleep(0.005)
    assert runtime.storage.durable_head(alice.did) < runtime.storage.backend.head(alice.did)
    assert not posting.done()
    assert await alice.spaces.head(alice.did) == head
    assert await alice.spaces.log(alice.did, since=head) == []
    manual.run()
    result = await posting
    assert result["ok"] and result["seq"] == head + 1
    assert await alice.spaces.head(alice.did) == head + 1
    assert await alice.cell(alice.did, charm, "value").get() == 2
    runtime.storage.flush_scheduler = usual
    manual.run()


async def test_a_cell_read_makes_a_pending_commit_durable_before_answering(
    served: InProcess, alice: AsyncClient
) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    await alice.stream(alice.did, charm, "increment").call({})
    runtime = served.app.state.runtime
    await runtime.idle()
    usual = runtime.storage.flush_scheduler
    runtime.storage.flush_scheduler = ManualFlush()  # never run: only the read settles
    posting = asyncio.create_task(alice.stream(alice.did, charm, "increment").send({}, wait=True))
    for _ in range(200):
        if runtime.storage.durable_head(alice.did) < runtime.storage.backend.head(alice.did):
            break
        await asyncio.sleep(0.005)
    assert runtime.storage.durable_head(alice.did) < runtime.storage.backend.head(alice.did)
    assert not posting.done()
    assert await alice.cell(alice.did, charm, "value").get() == 2  # the only flush: the read's
    assert (await posting)["ok"]
    runtime.storage.flush_scheduler = usual
    runtime.storage.flush()
