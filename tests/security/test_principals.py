"""Attacks by principals on what the authoring layer does for them, and how each is refused.

Alice owns a space and the charms in it; Bob is another user of the same
server. Each test is one attack: what the attacker controls, what they try,
and what the runtime does instead.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import (
    AuthorizationError,
    CharmCreatorError,
    PatternError,
    PatternNotInstalledError,
    SchemaError,
)
from charmspace.identity import Identity
from charmspace.library.counter import counter
from charmspace.patterns import Charm, Default, cell, derive, handler, pattern
from charmspace.patterns.build import charm_docs, creator_doc
from charmspace.runtime import Cell, JobContext, link_to, start_job
from charmspace.storage import Capability, Storage
from charmspace.values import setpath

ALICE = Identity.from_passphrase("security suite: alice")
BOB = Identity.from_passphrase("security suite: bob")
SERVICE = Identity.from_passphrase("security suite: service")

OpenRuntime = Callable[[], Awaitable[Runtime]]

PLANTED = """
from pathlib import Path

Path(__file__).with_suffix(".imported").write_text("imported")
"""


@pytest.fixture
async def runtime(storage_url: str) -> AsyncIterator[Runtime]:
    """Alice's runtime, in memory and on SQLite."""
    rt = Runtime(storage_url, identity=ALICE, service=SERVICE, call_timeout=5)
    yield rt
    await rt.close()


@pytest.fixture
async def open_runtime(lasting_store: str | Storage) -> AsyncIterator[OpenRuntime]:
    """``await open_runtime()``: Alice's runtime on one store, as after a restart."""
    opened: list[Runtime] = []

    async def open_() -> Runtime:
        rt = Runtime(lasting_store, identity=ALICE, service=SERVICE, call_timeout=5)
        opened.append(rt)
        return rt

    yield open_
    for rt in opened:
        await rt.close()


@pytest.fixture
def planted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module ``planted`` on ``sys.path`` that leaves ``planted.imported`` when imported."""
    directory = tmp_path / "on_path"
    directory.mkdir()
    (directory / "planted.py").write_text(PLANTED)
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.delitem(sys.modules, "planted", raising=False)
    return directory / "planted.imported"


def was_imported(flag: Path) -> bool:
    return flag.exists()


async def edit_charm_record(runtime: Runtime, charm: Charm, **fields: str) -> None:
    """Change fields of the charm's stored ``$charm`` record, as anyone with WRITE can."""
    _argument, internal, _result = charm_docs(charm.space, charm.id)
    async with runtime.edit() as tx:
        doc = tx.read_doc(internal.space, internal.id)
        for key, value in fields.items():
            doc = setpath(doc, ("$charm", key), value)
        tx.write_doc(internal.space, internal.id, doc)


# --- code named by stored data ----------------------------------------------------------


async def test_a_stored_import_path_edited_to_other_code_is_not_imported_on_restart(
    open_runtime: OpenRuntime, planted: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: rebuilding a charm passed its stored import path to import_module.

    Whoever could edit the charm's internal document chose which module the
    server imported when the charm was next loaded (after a restart).
    """
    first = await open_runtime()
    charm = await first.charms.create(counter, inputs={"value": 1})
    await edit_charm_record(first, charm, pattern="planted", **{"import": "planted:anything"})
    await first.close()

    second = await open_runtime()
    with pytest.raises(PatternError) as info:
        await second.charms.get(charm.space, charm.id)
    assert not was_imported(planted), "the module named by the document was imported"
    assert "planted" not in sys.modules
    assert "install the pattern" in str(info.value).lower()
    assert charm.id in caplog.text  # the refusal is logged for the operator


async def test_an_event_to_an_edited_charm_does_not_import_its_stored_module(
    open_runtime: OpenRuntime, planted: Path
) -> None:
    """Regression: the same import ran when an event started the charm's stream owner."""
    first = await open_runtime()
    charm = await first.charms.create(counter, inputs={"value": 1})
    address = charm.stream("adjust").address
    await edit_charm_record(first, charm, pattern="planted", **{"import": "planted:anything"})
    await first.close()

    second = await open_runtime()
    result = await second.stream(address.space, address.id, *address.path).call(
        {"amount": 1}, timeout=1
    )
    assert not result.ok
    assert not was_imported(planted), "the module named by the document was imported"


async def test_an_edited_import_path_with_a_known_name_loads_only_the_known_pattern(
    open_runtime: OpenRuntime, planted: Path
) -> None:
    """The stored import path is only a key among known patterns; the name finds ``counter``."""
    first = await open_runtime()
    charm = await first.charms.create(counter, inputs={"value": 3})
    await edit_charm_record(first, charm, **{"import": "planted:counter"})
    await first.close()

    second = await open_runtime()
    again = await second.charms.get(charm.space, charm.id)
    assert again.pattern is counter
    assert again["doubled"].get() == 6
    assert not was_imported(planted)


async def test_a_stored_pattern_name_is_not_repeated_unless_it_looks_like_one(
    open_runtime: OpenRuntime,
) -> None:
    """Errors and logs never carry document values: an edited name could be a secret."""
    first = await open_runtime()
    charm = await first.charms.create(counter)
    planted_secret = "ya29.a0AfH6SM token " + "x" * 300
    await edit_charm_record(first, charm, pattern=planted_secret, **{"import": planted_secret})
    await first.close()

    second = await open_runtime()
    with pytest.raises(PatternNotInstalledError) as info:
        await second.charms.get(charm.space, charm.id)
    assert "ya29" not in str(info.value)
    assert info.value.pattern == "(a name that is not a pattern name)"


# --- a refused remove -------------------------------------------------------------------


async def watch(ctx: JobContext) -> None:
    await asyncio.Event().wait()  # runs until cancelled


@handler
def start_watching(event: dict[str, Any], *, started: Cell[int]) -> None:
    started.set(started.get() + 1)
    start_job(watch, name="watch")


@pattern
def watcher() -> Any:
    started = cell(0, name="started")
    return {"started": started, "start": start_watching.bind(started=started)}


async def test_a_refused_remove_leaves_the_charm_running(runtime: Runtime) -> None:
    """Regression: charms.remove stopped the charm and cancelled its jobs before the refusal.

    Bob, who may read Alice's space but not write it, asked to remove her
    charm: the commit was refused, but the charm had already been stopped.
    """
    space = runtime.create_space()
    runtime.storage.set_acl(space, ALICE.did, BOB.did, Capability.READ)
    charm = await runtime.charms.create(watcher, space=space)
    assert (await charm.stream("start").call({})).ok
    await runtime.idle()
    job = charm.unit.jobs["watch"]

    with pytest.raises(AuthorizationError) as info:
        await runtime.charms.remove(charm.space, charm.id, principal=BOB.did)
    assert (info.value.principal, info.value.needed) == (BOB.did, "WRITE")
    assert f"space acl set {BOB.did} WRITE" in str(info.value)  # how the owner grants it
    await runtime.idle()

    assert job.task is not None and not job.task.done(), "the charm's job was cancelled"
    assert job.status.get()["status"] == "running"
    assert await runtime.charms.get(charm.space, charm.id) is charm
    assert (await charm.stream("start").call({})).ok, "the charm's stream stopped answering"
    assert charm["started"].get() == 2
    assert [info.id for info in runtime.charms.list()] == [charm.id]


async def test_a_remove_by_someone_without_any_access_loads_nothing(
    open_runtime: OpenRuntime,
) -> None:
    """A refused remove of a charm that is not running does not start it either."""
    first = await open_runtime()
    charm = await first.charms.create(counter)
    stream = charm.stream("adjust").address
    await first.close()

    second = await open_runtime()
    with pytest.raises(AuthorizationError) as info:
        await second.charms.remove(charm.space, charm.id, principal=BOB.did)
    assert info.value.needed == "WRITE"
    assert second.handler_at(stream) is None, "the refused remove started the charm"
    assert [info.id for info in second.charms.list(charm.space)] == [charm.id]


# --- events that are not what the handler declared -------------------------------------


@pytest.mark.parametrize(
    ("event", "path", "says"),
    [
        ({"amount": "5"}, ("amount",), "events are not converted: send the value as that type"),
        ({"amount": True}, ("amount",), "events are not converted: send the value as that type"),
        ({"amount": 1, "value": 100}, ("value",), "has no field 'value' (its fields: amount)"),
    ],
    ids=["digits-for-an-int", "true-for-an-int", "an-undeclared-key"],
)
async def test_an_event_that_is_not_what_the_handler_declared_is_refused_and_writes_nothing(
    runtime: Runtime, event: dict[str, Any], path: tuple[str, ...], says: str
) -> None:
    """Regression: events were coerced ("5" became 5) and undeclared keys silently dropped.

    Bob, a collaborator with WRITE, sends Alice's counter events its handler
    never declared; whatever the handler would have made of them, it never runs.
    """
    space = runtime.create_space()
    runtime.storage.set_acl(space, ALICE.did, BOB.did, Capability.WRITE)
    charm = await runtime.charms.create(counter, space=space, inputs={"value": 1})
    before = runtime.storage.head(space, ALICE.did)

    result = await charm.stream("adjust").call(event, principal=BOB.did)
    assert not result.ok
    assert isinstance(result.error, SchemaError)
    assert result.error.path == path
    assert says in str(result.error)
    assert charm["value"].get() == 1
    assert runtime.storage.head(space, ALICE.did) == before + 1  # only the error cell


@pattern
def mirror(source: Default[Cell[Any], None]):
    return {"copy": derive(source, lambda value: value)}


async def test_rewriting_a_charms_creator_does_not_borrow_the_named_users_rights(
    open_runtime: OpenRuntime,
) -> None:
    """Attack: Bob, with WRITE on a space Alice shares, makes a charm there whose input
    is linked to Alice's private cell (as Bob it cannot read it), then rewrites the
    charm's stored creator to name Alice. After a restart the rebuilt charm would
    compute as Alice and copy her secret into the shared space.
    Refusal: the claimed creator is checked against the principal storage recorded
    writing it; the charm is not started, and nothing of Alice's is copied."""
    runtime = await open_runtime()
    private = runtime.create_space(name="private")
    secret = await runtime.charms.create(mirror, space=private, inputs={"source": "alice-only"})
    shared = runtime.create_space(name="shared")
    runtime.storage.set_acl(shared, ALICE.did, BOB.did, Capability.WRITE)
    charm = await runtime.charms.create(
        mirror, space=shared, inputs={"source": secret["copy"]}, principal=BOB.did
    )
    await runtime.idle()
    assert charm["copy"].get() is None  # as Bob, the link resolves to an error

    async with runtime.edit(BOB.did) as tx:
        tx.write(creator_doc(shared, charm.id), {"creator": ALICE.did})
        internal = charm_docs(shared, charm.id)[1]
        tx.write(internal.key("$charm", "creator"), ALICE.did)
    await runtime.close()

    runtime = await open_runtime()
    with pytest.raises(CharmCreatorError) as refused:
        await runtime.charms.get(shared, charm.id)
    assert refused.value.written_by == BOB.did
    assert "create it again" in str(refused.value)
    await runtime.idle()
    assert runtime.read(charm["copy"].address, BOB.did) is None


async def test_a_redirect_link_bob_planted_in_a_charm_cannot_make_its_start_up_write_elsewhere(
    open_runtime: OpenRuntime,
) -> None:
    """Bob may write the space of Alice's charm, not her private one. He replaces where
    the charm keeps its cells with a redirect link to an empty document there; when the
    charm starts again, its cell's default is not written through the link."""
    first = await open_runtime()
    shared, private = first.create_space(name="shared"), first.create_space(name="private")
    first.storage.set_acl(shared, ALICE.did, BOB.did, Capability.WRITE)
    charm = await first.charms.create(watcher, space=shared)
    victim = first.cell(private, "of:victim")
    internal = charm_docs(shared, charm.id)[1]
    async with first.edit(BOB.did) as tx:
        doc = tx.read_doc(internal.space, internal.id)
        planted = setpath(doc, ("cells",), link_to(victim.address, redirect=True))
        tx.write_doc(internal.space, internal.id, planted)
    before = first.storage.head(private, ALICE.did)
    await first.close()

    second = await open_runtime()
    await second.charms.get(shared, charm.id)
    await second.idle()
    assert second.storage.head(private, ALICE.did) == before
    assert Cell(second, victim.address).get() is None
