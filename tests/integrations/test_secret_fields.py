"""Secret fields: what ``SECRET`` marks, and every way a value leaves the server without it.

The owner of the auth charm's space reads her token; a reader of the same
space sees ``"…"`` in the charm summary, a cell read, a raw document read and
the live WebSocket (see ``test_google_process``); a point-in-time read shows
``"…"`` even to the owner.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import httpx
import pytest

from charmspace.client.auth import SignedAuth
from charmspace.identity import Identity
from charmspace.library.google_auth import google_auth
from charmspace.patterns import SECRET, pattern
from charmspace.runtime.cell import Cell
from charmspace.runtime.secrets import MASK, SECRET_KEY, declared, redact, secret_fields
from charmspace.server import Settings, create_app
from charmspace.server.deps import docs_of

ALICE = Identity.from_passphrase("secret fields: alice")
BOB = Identity.from_passphrase("secret fields: bob")
TOKEN = "ya29.alices-secret-access-token"
REFRESH = "1//alices-secret-refresh-token"


class Key(TypedDict):
    label: str
    api_key: Annotated[str, SECRET]


@pattern
def keyring(key: Cell[Key]) -> dict[str, Any]:
    return {"key": key}


def test_a_secret_field_is_marked_in_the_pattern_schema() -> None:
    schema = keyring.input_schema
    assert secret_fields(schema) == {"api_key"}
    assert SECRET_KEY in json.dumps(schema)
    assert keyring.secret_fields == {"api_key"}
    assert google_auth.secret_fields == {"token", "refresh_token"}
    assert {"api_key", "token", "refresh_token"} <= declared()


def test_redact_masks_declared_fields_at_any_depth_and_keeps_empty_ones() -> None:
    value = {"auth": {"token": TOKEN, "refresh_token": "", "scope": ["a"]}, "list": [{"token": 1}]}
    assert redact(value) == {
        "auth": {"token": MASK, "refresh_token": "", "scope": ["a"]},
        "list": [{"token": MASK}],
    }


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data=tmp_path / "data"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(base_url="http://charmspace.test", transport=transport) as c:
            yield c


def signed(who: Identity) -> SignedAuth:
    return SignedAuth(who)


async def test_only_the_owner_reads_secrets_and_nobody_reads_them_in_the_past(
    app: httpx.AsyncClient,
) -> None:
    a = signed(ALICE)
    (await app.post("/api/spaces", json={"space": ALICE.did}, auth=a)).raise_for_status()
    granted = await app.put(
        f"/api/spaces/{ALICE.did}/acl", json={"subject": BOB.did, "capability": "READ"}, auth=a
    )
    granted.raise_for_status()
    charm = await app.post(
        f"/api/spaces/{ALICE.did}/charms", json={"pattern": "google_auth"}, auth=a
    )
    charm_id = charm.json()["id"]
    cells = f"/api/spaces/{ALICE.did}/charms/{charm_id}/cells"
    auth = {
        "token": TOKEN,
        "token_type": "Bearer",
        "scope": [],
        "expires_in": 3600,
        "expires_at": int((time.time() + 3600) * 1000),
        "refresh_token": REFRESH,
        "user": {"email": "alice@example.com"},
    }
    written = await app.put(f"{cells}/auth", json={"value": auth}, auth=a)
    assert written.status_code == 200, written.text
    seq = written.json()["seq"]
    assert (await app.get(f"{cells}/auth", auth=a)).json()["value"]["token"] == TOKEN

    b = signed(BOB)
    argument = docs_of(ALICE.did, charm_id)[0].id
    seen = [
        await app.get(f"{cells}/auth", auth=b),
        await app.get(f"{cells}/auth/token", auth=b),
        await app.get(f"/api/spaces/{ALICE.did}/charms/{charm_id}", auth=b),
        await app.get(f"/api/spaces/{ALICE.did}/docs/{argument}", auth=b),
    ]
    for response in seen:
        assert response.status_code == 200, response.text
        assert TOKEN not in response.text and REFRESH not in response.text
        assert MASK in response.text
    theirs = (await app.get(f"{cells}/auth", auth=b)).json()["value"]
    assert theirs["user"]["email"] == "alice@example.com"

    for who in (a, b):
        past = await app.get(
            f"/api/spaces/{ALICE.did}/docs/{argument}", params={"at": seq}, auth=who
        )
        assert past.status_code == 200
        assert TOKEN not in past.text and past.json()["value"]["auth"]["token"] == MASK
