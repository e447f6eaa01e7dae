"""``charmspace demo``: the seed's story, told step by step in the terminal.

Part one shows the storage floor (spaces, commits, a conflict, a refused
write); part two shows the token refresh from the seed: a consumer in one space
cannot write the auth charm's token in another, and gets it refreshed by
calling the auth charm's ``refresh`` stream instead.
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

from rich.console import Console
from rich.panel import Panel

from charmspace import Runtime
from charmspace.errors import (
    AuthorizationError,
    ConflictError,
    IntegrationError,
    WriteIsolationError,
)
from charmspace.identity import Identity
from charmspace.patterns import NAME, Default, cell, computed, handler, pattern, wish
from charmspace.runtime import Cell, FakeClock, Stream
from charmspace.storage import Commit, creation_proof, open_storage
from charmspace.storage.ids import entity_id

TOKEN_LIFETIME = 60.0


@handler
def refresh_token(event: dict[str, Any], *, auth: Cell[dict[str, Any]]) -> str:
    """Runs in the auth charm's own transaction and space: it may write the token."""
    from charmspace.patterns import now

    current = auth.get() or {}
    if current.get("revoked"):
        raise IntegrationError(
            "invalid_grant", "Google refused the refresh token (invalid_grant): sign in again."
        )
    generation = int(current.get("generation", 0)) + 1
    auth.set(
        {
            "token": f"access-token-{generation}",
            "refresh_token": current.get("refresh_token", "refresh-token"),
            "expires_at": now() + TOKEN_LIFETIME,
            "generation": generation,
        }
    )
    return "refreshed"


@pattern(tags=["#googleAuth"])
def demo_auth(
    auth: Default[
        Cell[dict[str, Any]], {"token": "access-token-0", "expires_at": 0, "generation": 0}
    ],
) -> dict[str, Any]:
    """A stand-in for the Google auth charm: it owns the token. #googleAuth"""
    return {
        NAME: "Google Auth (demo)",
        "auth": auth,
        "refresh": refresh_token.bind(auth=auth),
    }


@handler
async def scan(
    event: dict[str, Any],
    *,
    log: Cell[list[str]],
    auth: Cell[dict[str, Any]],
    refresh: Stream[dict[str, Any]],
) -> None:
    """The Gmail consumer's Scan: first the mistake from the seed, then the fix."""
    from charmspace.patterns import now

    token = auth.get()
    if token["expires_at"] > now():
        log.push(f"token {token['token']} is valid; scanning")
        return
    log.push(f"token {token['token']} expired; trying to write a new one directly")
    try:
        auth.set({**token, "token": "forged"})
    except WriteIsolationError as error:
        log.push(f"refused: {type(error).__name__}")
        log.push("asking the auth charm instead: await refresh.call({})")
    result = await refresh.call({})
    if not result.ok:
        reason = getattr(result.error, "reason", type(result.error).__name__)
        log.push(f"refresh failed ({reason}): {result.error} Token is still {auth.get()['token']}.")
        return
    log.push(f"refresh answered ok={result.ok}; token is now {auth.get()['token']}")


@pattern
def demo_gmail_search() -> dict[str, Any]:
    """A stand-in for the Gmail search charm: it wishes for #googleAuth."""
    found = wish("#googleAuth")
    log = cell([])
    return {
        NAME: computed(lambda: f"Gmail search ({len(log.get() or [])} log lines)"),
        "log": log,
        "scan": scan.bind(
            log=log, auth=found["result"]["auth"], refresh=found["result"]["refresh"]
        ),
    }


async def _storage_part(console: Console, directory: str) -> None:
    console.rule("[bold]1. Spaces, commits, conflicts, access control")
    alice = Identity.from_passphrase("demo alice")
    mallory = Identity.from_passphrase("demo mallory")
    storage = open_storage(f"sqlite:///{directory}/storage")
    notes_key, photos_key = alice.derive("notes"), alice.derive("photos")
    notes, photos = notes_key.did, photos_key.did
    storage.create_space(notes, alice.did, proof=creation_proof(notes_key, alice.did))
    storage.create_space(photos, alice.did, proof=creation_proof(photos_key, alice.did))
    console.print(f"Alice ({alice.did[:20]}…) created two spaces: notes and photos.")
    doc = entity_id({"demo": "shopping list"})
    seq = storage.commit(Commit(notes, alice.did, {doc: ["milk"]}, {doc: 0}))
    console.print(f"Committed the shopping list to notes: seq {seq}.")
    seen = storage.read(notes, doc, alice.did)
    storage.commit(Commit(notes, alice.did, {doc: ["milk", "eggs"]}, {doc: seen.seq}))
    console.print("A second writer added eggs (seq 2).")
    try:
        storage.commit(Commit(notes, alice.did, {doc: ["milk", "bread"]}, {doc: seen.seq}))
    except ConflictError as error:
        console.print(f"[yellow]A stale writer was stopped:[/] {error}")
    try:
        storage.commit(Commit(photos, mallory.did, {doc: "vandalism"}))
    except AuthorizationError as error:
        console.print(f"[yellow]Mallory's write was refused:[/] {error}")
    storage.close()


async def _seed_part(console: Console, directory: str) -> None:
    console.rule("[bold]2. The seed: refreshing a token owned by another charm")
    clock = FakeClock()
    user = Identity.from_passphrase("demo user")
    runtime = Runtime(f"sqlite:///{directory}/runtime", identity=user, clock=clock)
    try:
        auth_space = runtime.create_space(name="google-auth")
        gmail_space = runtime.create_space(name="gmail")
        auth = await runtime.charms.create(demo_auth, space=auth_space)
        await runtime.favorites().add(auth)
        console.print(f"Auth charm in space {auth_space[:24]}…, favorited with #googleAuth.")
        gmail = await runtime.charms.create(demo_gmail_search, space=gmail_space)
        console.print(f"Gmail search charm in space {gmail_space[:24]}… wishes for #googleAuth.")
        console.print("The token has expired. The user clicks [bold]Scan[/]:")
        result = await gmail.stream("scan").call({})
        await runtime.idle()
        for line in gmail["log"].get():
            console.print(f"  • {line}")
        console.print(
            f"Scan committed: ok={result.ok}. Auth cell now: {auth['auth'].get()['token']}"
        )
        await clock.advance(10)
        await gmail.stream("scan").call({})
        await runtime.idle()
        console.print(f"  • {gmail['log'].get()[-1]}")
        console.print("An hour later the user has revoked access at Google. Scan again:")
        async with runtime.edit():
            auth["auth"].update({"revoked": True})
        await clock.advance(TOKEN_LIFETIME * 60)
        await gmail.stream("scan").call({})
        await runtime.idle()
        for line in gmail["log"].get()[-3:]:
            console.print(f"  • {line}")
        console.print(
            "The failed refresh wrote nothing (a handler that raises commits nothing): "
            f"auth cell still holds {auth['auth'].get()['token']}."
        )
    finally:
        await runtime.close()


async def run_demo(console: Console | None = None) -> None:
    console = console or Console(emoji=False, highlight=False)
    console.print(
        Panel.fit(
            "charmspace demo — a transaction writes one space;\n"
            "other spaces change through their charms' streams.",
            border_style="cyan",
        )
    )
    with tempfile.TemporaryDirectory(prefix="charmspace-demo-") as directory:
        await _storage_part(console, directory)
        await _seed_part(console, directory)
    console.rule("[bold green]done")


def main() -> None:
    asyncio.run(run_demo())
