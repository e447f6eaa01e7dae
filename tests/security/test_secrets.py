"""Attacks on secrets, and how each is refused.

The secret is an OAuth token, ``TOKEN``, held in a cell of Alice's space. Each
test is one way it could escape to someone who may not read it: an operator
reading the log, anyone who may read the space where a failing charm keeps its
error cell, another user calling Alice's charm, or someone who can read Alice's
key file. The rules being tested are in ``docs/runtime.md`` ("Errors and
secrets") and ``docs/identity.md``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import (
    AuthorizationError,
    IdentityError,
    InsecureKeyFileError,
    NotJSONError,
    PathTypeError,
    SchemaError,
)
from charmspace.identity import Identity
from charmspace.runtime import Cell, ErrorReport, FakeClock, JobContext, start_job
from charmspace.storage import Capability, entity_id
from charmspace.types import SpaceDID
from charmspace.values import dumps, freeze

TOKEN = "ya29.a0-secret-token-of-alice"
ALICE = Identity.from_passphrase("security suite: alice")
BOB = Identity.from_passphrase("security suite: bob")
SERVICE = Identity.from_passphrase("security suite: service")


@pytest.fixture
async def runtime(storage_url: str) -> AsyncIterator[Runtime]:
    """Alice's runtime, in memory and on SQLite, on a fake clock."""
    rt = Runtime(
        storage_url, identity=ALICE, service=SERVICE, clock=FakeClock(), random=random.Random(0)
    )
    yield rt
    await rt.close()


@pytest.fixture
def space(runtime: Runtime) -> SpaceDID:
    return runtime.create_space(name="google")


@pytest.fixture
def reports(runtime: Runtime) -> list[ErrorReport]:
    found: list[ErrorReport] = []
    runtime.on_error(found.append)
    return found


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def leaked_into_the_log(caplog: pytest.LogCaptureFixture) -> bool:
    """Whether TOKEN appears anywhere a log handler could print: message, args, traceback."""
    for record in caplog.records:
        formatted = logging.Formatter().format(record)
        if TOKEN in formatted or TOKEN in repr(record.__dict__):
            return True
    return TOKEN in caplog.text


def auth_charm(
    runtime: Runtime, space: SpaceDID, fail: Any, auth_value: Any = None
) -> tuple[Any, Any]:
    """Alice's auth charm: its ``use`` handler reads the token and ``fail(token)`` with it."""
    unit = runtime.unit(space, "google-auth")
    auth = unit.cell("auth", {"token": TOKEN} if auth_value is None else auth_value)

    def use(event: Any, *, auth: Cell[Any]) -> None:
        fail(auth.get()["token"])

    return unit, unit.handler("use", use, state={"auth": auth})


def parse_as_number(token: str) -> None:
    int(token)  # ValueError: invalid literal for int() with base 10: '<the token>'


def look_up(token: str) -> None:
    {}[token]  # KeyError: '<the token>'


def complain(token: str) -> None:
    raise RuntimeError(f"refresh failed for {token}")


# --- a handler's exception message --------------------------------------------------------


@pytest.mark.parametrize(
    ("fail", "error_type"),
    [(parse_as_number, "ValueError"), (look_up, "KeyError"), (complain, "RuntimeError")],
)
async def test_a_token_in_a_handlers_exception_is_not_logged(
    runtime: Runtime, space: SpaceDID, logs: pytest.LogCaptureFixture, fail: Any, error_type: str
) -> None:
    """Regression: report() logged "ValueError in google-auth.use: invalid literal … '<token>'"."""
    unit, use = auth_charm(runtime, space, fail)
    await unit.start()
    assert not (await use.call({})).ok
    assert not leaked_into_the_log(logs)
    [record] = [r for r in logs.records if r.levelno >= logging.ERROR]
    line = fail.__code__.co_firstlineno + 1  # the line that raised: type and place are logged
    assert record.getMessage().startswith(
        f"google-auth.use failed: {error_type} raised at test_secrets.py:{line} in "
        f"{fail.__name__} (message withheld: it may hold values the code read;"
    )
    assert record.exc_info is None
    fields = vars(record)
    assert (fields["charm"], fields["where"], fields["error_type"]) == (unit.id, "use", error_type)


@pytest.mark.parametrize("fail", [parse_as_number, look_up, complain])
async def test_a_token_in_a_handlers_exception_is_not_stored_in_the_error_cell(
    runtime: Runtime, space: SpaceDID, fail: Any
) -> None:
    """Regression: the error cell, readable by all readers of the space, held str(error)."""
    unit, use = auth_charm(runtime, space, fail)
    await unit.start()
    assert not (await use.call({})).ok
    recorded = runtime.error_cell(unit).get()
    assert set(recorded) == {"where", "type", "time"}
    assert recorded["where"] == "use"
    assert TOKEN not in dumps(recorded)


async def test_a_token_in_a_derived_values_exception_is_neither_logged_nor_stored(
    runtime: Runtime, space: SpaceDID, logs: pytest.LogCaptureFixture
) -> None:
    unit = runtime.unit(space, "expiry")
    auth = unit.cell("auth", {"token": TOKEN})
    unit.derive("expires", lambda auth: int(auth["token"]), inputs=[auth])
    await unit.start()
    await runtime.idle()
    assert runtime.error_cell(unit).get()["type"] == "ValueError"
    assert TOKEN not in dumps(runtime.error_cell(unit).get())
    assert not leaked_into_the_log(logs)


async def test_a_token_in_a_jobs_exception_is_not_logged(
    runtime: Runtime, space: SpaceDID, logs: pytest.LogCaptureFixture
) -> None:
    unit = runtime.unit(space, "mail")

    async def fetch(ctx: JobContext) -> None:
        await asyncio.sleep(0)
        raise RuntimeError(f"Gmail refused {TOKEN}")

    def scan(event: Any) -> None:
        start_job(fetch, name="fetch")

    scan_stream = unit.handler("scan", scan)
    await unit.start()
    assert (await scan_stream.call({})).ok
    await runtime.idle(jobs=True)
    assert runtime.error_cell(unit).get()["where"] == "job fetch"
    assert TOKEN not in dumps(runtime.error_cell(unit).get())
    assert not leaked_into_the_log(logs)


async def test_a_token_in_a_jobs_exception_is_not_stored_in_its_status(
    runtime: Runtime, space: SpaceDID
) -> None:
    unit = runtime.unit(space, "mail")

    async def fetch(ctx: JobContext) -> None:
        raise RuntimeError(f"Gmail refused {TOKEN}")

    def scan(event: Any) -> None:
        start_job(fetch, name="fetch")

    scan_stream = unit.handler("scan", scan)
    await unit.start()
    assert (await scan_stream.call({})).ok
    await runtime.idle(jobs=True)
    assert TOKEN not in dumps(Cell(runtime, unit.jobs_address).get())


async def test_a_listener_that_repeats_the_message_does_not_log_it(
    runtime: Runtime, space: SpaceDID, logs: pytest.LogCaptureFixture
) -> None:
    def clumsy(report: ErrorReport) -> None:
        raise RuntimeError(f"could not forward: {report.error}")

    runtime.on_error(clumsy)
    unit, use = auth_charm(runtime, space, parse_as_number)
    await unit.start()
    assert not (await use.call({})).ok
    assert "an on_error listener raised RuntimeError raised at" in logs.text
    assert not leaked_into_the_log(logs)


async def test_an_on_commit_callback_that_raises_with_a_token_does_not_log_it(
    runtime: Runtime, space: SpaceDID, logs: pytest.LogCaptureFixture
) -> None:
    """Attack: a sender's on_commit callback fails with the token in its message.
    Refusal: the log says which callback failed and where, never the message or a
    traceback (whose last line is the message)."""
    unit, use = auth_charm(runtime, space, parse_as_number)
    await unit.start()

    def on_commit(result: object) -> None:
        raise RuntimeError(f"could not store {TOKEN}")

    await use.send({}, on_commit=on_commit)
    await runtime.idle()
    assert "an on_commit callback failed: RuntimeError raised at" in logs.text
    assert not leaked_into_the_log(logs)


# --- who does get the message ----------------------------------------------------------------


async def test_the_application_and_the_caller_get_the_exception_itself(
    runtime: Runtime, space: SpaceDID, reports: list[ErrorReport]
) -> None:
    """The caller here is Alice, whose authority the handler used to read her own token."""
    unit, use = auth_charm(runtime, space, parse_as_number)
    await unit.start()
    result = await use.call({})
    assert isinstance(result.error, ValueError) and TOKEN in str(result.error)
    [report] = reports
    assert report.error is result.error


async def vault_charm(runtime: Runtime, space: SpaceDID) -> tuple[Any, Any]:
    """Alice's auth charm in ``space``, Bob's to write; the token itself in her private vault."""
    runtime.storage.set_acl(space, runtime.principal, BOB.did, Capability.WRITE)
    vault = runtime.create_space(name="vault")
    token = runtime.cell(vault, entity_id({"vault": "google"}))
    async with runtime.edit():
        token.set({"token": TOKEN})
    # the charm's own cell holds a link to the vault, which the handler reads through
    unit, use = auth_charm(runtime, space, parse_as_number, auth_value=token)
    await unit.start()
    assert TOKEN not in dumps(
        runtime.storage.read(space, unit.cell("auth", {}).address.id, BOB.did).value
    )
    return unit, use


async def test_an_error_cell_bob_may_read_does_not_hold_the_token_from_alices_vault(
    runtime: Runtime, space: SpaceDID
) -> None:
    """The error cell lives in the charm's space, which Bob may read; the token does not."""
    unit, use = await vault_charm(runtime, space)
    result = await use.call({})  # Alice's own call: the handler reads her vault, and fails
    assert isinstance(result.error, ValueError)
    recorded = runtime.storage.read(space, unit.error_address.id, BOB.did).value
    assert recorded is not None and recorded["type"] == "ValueError"
    assert TOKEN not in dumps(recorded)


async def test_bob_cannot_make_alices_handler_read_the_token_for_him(
    runtime: Runtime, space: SpaceDID, logs: pytest.LogCaptureFixture
) -> None:
    """Why the caller may see the message: the handler reads as the caller, so Bob, who may
    not read Alice's vault, gets an AuthorizationError, never a message holding her token."""
    _, use = await vault_charm(runtime, space)
    result = await use.call({}, principal=BOB.did)
    assert isinstance(result.error, AuthorizationError)
    assert result.error.principal == BOB.did
    assert TOKEN not in str(result.error)
    assert not leaked_into_the_log(logs)


async def test_bob_cannot_even_reach_a_charm_in_a_space_he_may_not_read(
    runtime: Runtime, space: SpaceDID
) -> None:
    unit, use = auth_charm(runtime, space, parse_as_number)
    await unit.start()
    with pytest.raises(AuthorizationError) as caught:
        await use.call({}, principal=BOB.did)
    assert TOKEN not in str(caught.value)


async def test_a_caller_who_may_read_the_token_gets_the_whole_message(
    runtime: Runtime, space: SpaceDID
) -> None:
    runtime.storage.set_acl(space, runtime.principal, BOB.did, Capability.READ)
    unit, use = auth_charm(runtime, space, parse_as_number)
    await unit.start()
    result = await use.call({}, principal=BOB.did)
    assert isinstance(result.error, ValueError)  # he may read the token: no secret to him
    assert TOKEN in str(result.error)


async def test_charmspace_errors_keep_their_message_because_they_never_hold_values(
    runtime: Runtime, space: SpaceDID, logs: pytest.LogCaptureFixture
) -> None:
    unit, _ = auth_charm(runtime, space, parse_as_number)

    def strict(event: Any) -> None:
        raise SchemaError(("n",), "not a n")

    strict_stream = unit.handler("strict", strict)
    await unit.start()
    assert not (await strict_stream.call({})).ok
    recorded = runtime.error_cell(unit).get()
    assert recorded["message"] == "Invalid value at n: not a n."
    assert "google-auth.strict failed: SchemaError: Invalid value at n: not a n." in logs.text


# --- values in our own errors -------------------------------------------------------------


async def test_a_write_below_the_token_does_not_quote_it(runtime: Runtime, space: SpaceDID) -> None:
    cell = runtime.cell(space, entity_id({"auth": "google"}))
    async with runtime.edit():
        cell.set({"token": TOKEN})
    with pytest.raises(PathTypeError) as caught:
        async with runtime.edit():
            cell["token"]["scope"].set("mail")
    assert "token holds a string, not an object" in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_a_token_that_is_not_json_is_not_quoted() -> None:
    for bad in (TOKEN + "\ud800", int("9" * 30)):
        with pytest.raises(NotJSONError) as caught:
            freeze({"token": bad})
        assert TOKEN not in str(caught.value) and "9" * 30 not in str(caught.value)


# --- the key that proves who acts ----------------------------------------------------------


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alice.pem"
    ALICE.save(path)
    path.chmod(0o644)  # what `charmspace id new > alice.pem` leaves under a usual umask
    with pytest.raises(InsecureKeyFileError, match=f"Run `chmod 600 {path}`"):
        Identity.load(path)


def test_a_key_file_holding_a_second_key_is_refused(tmp_path: Path) -> None:
    """Someone who may append to the file cannot make it load as their identity instead."""
    path = tmp_path / "alice.pem"
    path.write_bytes(BOB.to_pem() + ALICE.to_pem())
    path.chmod(0o600)
    with pytest.raises(IdentityError, match="2 PEM blocks"):
        Identity.load(path)
