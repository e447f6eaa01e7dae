"""The web shell's view protocol on ``/api/ws`` against a real server process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from charmspace.client import AsyncClient
from charmspace.identity import Identity
from real_server import ServerProcess, free_port, signed_upgrade

TIMEOUT = 10.0
PATTERNS = Path(__file__).parent / "shell_patterns"


@pytest.fixture
def shell_server(server_factory: Callable[..., ServerProcess]) -> Callable[..., ServerProcess]:
    """Start servers that install the test patterns (``start(data=…)`` restarts on that data)."""

    def start(data: Path | None = None) -> ServerProcess:
        return server_factory(data=data, env={"CHARMSPACE_PATTERNS": str(PATTERNS)})

    return start


@pytest.fixture
def server(shell_server: Callable[..., ServerProcess]) -> ServerProcess:
    return shell_server()


ME = Identity.from_passphrase("alice")


@pytest.fixture
async def alice(server: ServerProcess) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(server.url, ME) as client:
        await client.spaces.create()
        yield client


class Page:
    """A tab of the shell, speaking the protocol by hand."""

    def __init__(self, ws: ClientConnection, tab: str) -> None:
        self.ws = ws
        self.tab = tab
        self.n = 0
        self.seq = 0

    def next_id(self) -> str:
        self.n += 1
        return f"{self.tab}:{self.n}"

    async def send(self, kind: str, **fields: Any) -> str:
        fields.setdefault("id", self.next_id())
        await self.ws.send(json.dumps({"type": kind, **fields}))
        return str(fields["id"])

    async def frame(self) -> dict[str, Any]:
        received: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
        if "seq" in received:
            assert received["seq"] == self.seq + 1  # per connection, from 1, no gaps
            self.seq = received["seq"]
        return received

    async def until(self, kind: str, id: str | None = None) -> tuple[dict[str, Any], list[Any]]:
        """The next frame of ``kind`` (for ``id``), and the frames before it."""
        before: list[dict[str, Any]] = []
        while True:
            received = await self.frame()
            if received["type"] == kind and (id is None or received.get("id") == id):
                return received, before
            before.append(received)


@asynccontextmanager
async def page(server: ServerProcess, tab: str = "t1", headers: Any = None) -> AsyncIterator[Page]:
    headers = headers or signed_upgrade(ME)
    async with connect(
        server.ws_url, additional_headers=headers, compression=None, proxy=None
    ) as ws:
        tab_page = Page(ws, tab)
        await ws.send(json.dumps({"type": "hello", "v": 1, "tab": tab}))
        welcome = await tab_page.frame()
        assert welcome["type"] == "welcome" and welcome["did"] == ME.did
        yield tab_page


def find(node: dict[str, Any], id: str) -> dict[str, Any]:
    if node["id"] == id:
        return node
    for child in node.get("children", []):
        if id == child["id"] or id.startswith(child["id"] + "."):
            return find(child, id)
    raise KeyError(id)


async def open_counter(tab: Page, space: str, charm: str) -> dict[str, Any]:
    opened = await tab.send("open", view="v1", charm={"space": space, "id": charm})
    mount, _ = await tab.until("mount")
    ack, _ = await tab.until("ack", opened)
    assert ack["commit"] == mount["commit"]
    return mount


async def test_open_mounts_nodes_that_name_no_cell_and_a_click_patches_before_its_ack(
    server: ServerProcess, alice: AsyncClient
) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    async with page(server) as tab:
        mount = await open_counter(tab, alice.did, charm)
        text = json.dumps(mount["root"])
        assert "$stream" not in text and "$cell" not in text and alice.did not in text
        button = find(mount["root"], "0.1")
        assert button["tag"] == "button" and button["on"] == ["click"]
        assert find(mount["root"], "0.0.0")["text"] == "0"
        clicked = await tab.send("event", view="v1", node="0.1", name="click", detail={})
        ack, before = await tab.until("ack", clicked)
        patches = [f for f in before if f["type"] == "patch"]
        assert patches, before
        assert {"op": "text", "node": "0.0.0", "value": "1"} in patches[0]["ops"]
        assert patches[0]["commit"] >= ack["commit"] > mount["commit"]
    assert await alice.cell(alice.did, charm, "value").get() == 1


async def test_a_resent_event_applies_once_even_after_a_restart(
    shell_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    first = shell_server()
    async with AsyncClient(first.url, ME) as client:
        await client.spaces.create()
        charm = (await client.charms.create("counter"))["id"]
    async with page(first) as tab:
        await open_counter(tab, ME.did, charm)
        await tab.send("event", id="t1:7", view="v1", node="0.1", name="click", detail={})
        await tab.until("ack", "t1:7")
        await tab.send("event", id="t1:7", view="v1", node="0.1", name="click", detail={})
        await tab.until("ack", "t1:7")
    assert first.stop() == 0
    second = shell_server(data=first.data)
    async with page(second) as tab:
        await open_counter(tab, ME.did, charm)
        await tab.send("event", id="t1:7", view="v1", node="0.1", name="click", detail={})
        await tab.until("ack", "t1:7")
        await tab.send("event", id="t1:8", view="v1", node="0.1", name="click", detail={})
        await tab.until("ack", "t1:8")
    async with AsyncClient(second.url, ME) as client:
        assert await client.cell(ME.did, charm, "value").get() == 2


async def test_edits_write_the_bound_cell_once_and_a_derived_cell_refuses(
    server: ServerProcess, alice: AsyncClient
) -> None:
    charm = (await alice.charms.create("form"))["id"]
    async with page(server) as tab:
        mount = await open_counter(tab, alice.did, charm)
        text_input, upper_input = find(mount["root"], "0.0"), find(mount["root"], "0.1")
        assert text_input["tag"] == "input" and text_input["bind"] == {"value": ""}
        edit = await tab.send("edit", view="v1", node="0.0", prop="value", value="hi", base=None)
        ack, _ = await tab.until("ack", edit)
        assert isinstance(ack["commit"], int)
        await tab.send("edit", id=edit, view="v1", node="0.0", prop="value", value="hi")
        await tab.until("ack", edit)
        refused = await tab.send("edit", view="v1", node="0.1", prop="value", value="NO")
        nack, _ = await tab.until("nack", refused)
        assert nack["error"]["type"] == "ReadOnlyCellError"
        assert upper_input["bind"] == {"value": ""}
        wrong = await tab.send("edit", view="v1", node="0.2", prop="value", value="x")
        nack, _ = await tab.until("nack", wrong)
        assert nack["error"]["type"] == "BadRequestError"
    assert await alice.cell(alice.did, charm, "text").get() == "hi"
    assert await alice.cell(alice.did, charm, "upper").get() == "HI"


async def test_the_patch_of_a_derived_value_comes_before_the_ack_of_its_commit(
    server: ServerProcess, alice: AsyncClient
) -> None:
    """Regression: the patch of a derived value (here ``upper``) could follow the ack."""
    charm = (await alice.charms.create("form"))["id"]
    async with page(server) as tab:
        await open_counter(tab, alice.did, charm)
        for word in ("hi", "there", "again"):
            edit = await tab.send("edit", view="v1", node="0.0", prop="value", value=word)
            ack, before = await tab.until("ack", edit)
            ops = [op for f in before if f["type"] == "patch" for op in f["ops"]]
            assert {"op": "text", "node": "0.5.0", "value": word.upper()} in ops
            assert {"op": "bind", "node": "0.1", "prop": "value", "value": word.upper()} in ops
            assert all(f["commit"] >= ack["commit"] for f in before if f["type"] == "patch")


async def test_an_edit_of_the_wrong_type_for_a_typed_input_is_nacked_and_writes_nothing(
    server: ServerProcess, alice: AsyncClient
) -> None:
    """Regression: the shell's edits were written unchecked, so a field bound to an
    ``int`` input could store "abc" or null and every later click failed."""
    charm = (await alice.charms.create("tally"))["id"]
    async with page(server) as tab:
        await open_counter(tab, alice.did, charm)
        for bad in ("abc", None):
            refused = await tab.send("edit", view="v1", node="0.0", prop="value", value=bad)
            nack, before = await tab.until("nack", refused)
            assert nack["error"]["type"] == "InputTypeError"
            assert nack["error"]["input"] == "count" and nack["error"]["wanted"] == "int"
            assert "nothing was written" in nack["error"]["message"]
            assert not [f for f in before if f["type"] == "patch"]
        assert await alice.cell(alice.did, charm, "count").get() == 0
        # The refused frame was not recorded as applied: sent again, corrected, it commits.
        again = await tab.send("edit", id=refused, view="v1", node="0.0", prop="value", value=5)
        ack, before = await tab.until("ack", again)
        assert isinstance(ack["commit"], int)
        ops = [op for f in before if f["type"] == "patch" for op in f["ops"]]
        assert {"op": "text", "node": "0.2.0", "value": "5"} in ops
        clicked = await tab.send("event", view="v1", node="0.1", name="click", detail={})
        await tab.until("ack", clicked)
    assert await alice.cell(alice.did, charm, "count").get() == 6


async def test_a_failing_handler_is_nacked_and_the_charm_error_is_sent(
    server: ServerProcess, alice: AsyncClient
) -> None:
    charm = (await alice.charms.create("form"))["id"]
    async with page(server) as tab:
        await open_counter(tab, alice.did, charm)
        sent = await tab.send("event", view="v1", node="0.3", name="click", detail={})
        nack, before = await tab.until("nack", sent)
        errors = [f for f in before if f["type"] == "error"]
        assert errors and errors[-1]["view"] == "v1"
        assert "explode" in json.dumps(errors[-1]["error"])
        assert nack["error"]["type"] == "ValueError"


async def test_bad_frames_are_refused_with_reasons(
    server: ServerProcess, alice: AsyncClient
) -> None:
    charm = (await alice.charms.create("counter"))["id"]
    async with page(server) as tab:
        await tab.send("open", id="other-tab:1", view="v1", charm={"space": alice.did, "id": charm})
        nack, _ = await tab.until("nack")
        assert nack["error"]["type"] == "BadRequestError"
        unknown = await tab.send("event", view="nope", node="0.1", name="click")
        nack, _ = await tab.until("nack", unknown)
        assert "open it first" in nack["error"]["message"]
        await open_counter(tab, alice.did, charm)
        no_handler = await tab.send("event", view="v1", node="0.0", name="click")
        nack, _ = await tab.until("nack", no_handler)
        assert nack["error"]["type"] == "BadRequestError"
        stranger = await tab.send(
            "open", view="v2", charm={"space": Identity.generate().did, "id": "x"}
        )
        nack, _ = await tab.until("nack", stranger)
        assert nack["error"]["type"] == "SpaceNotFoundError"
        for n in range(64):
            await tab.send("open", view=f"w{n}", charm={"space": alice.did, "id": charm})
        nack, _ = await tab.until("nack")
        assert "64 views" in nack["error"]["message"]
    assert await alice.cell(alice.did, charm, "value").get() == 0


async def test_another_origin_cannot_upgrade_with_the_session_cookie(
    server: ServerProcess, alice: AsyncClient
) -> None:
    token = server.login_link().split("token=", 1)[1]
    async with httpx.AsyncClient(base_url=server.url) as browser:
        response = await browser.get(f"/login?token={token}")
        assert response.status_code == 303
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    evil = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{free_port()}"}
    with pytest.raises(InvalidStatus) as refused:
        async with page(server, headers=evil):
            pass
    assert refused.value.response.status_code == 403
    own = {"Cookie": cookie, "Origin": server.url}
    async with connect(server.ws_url, additional_headers=own, proxy=None) as ws:
        await ws.send(json.dumps({"type": "hello", "v": 1, "tab": "t", "csrf": "wrong"}))
        bye = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert bye["type"] == "bye" and "csrf" in bye["reason"]


async def test_a_tab_sending_more_than_fifty_events_a_second_is_refused() -> None:
    from charmspace.errors import CharmspaceError
    from charmspace.server.view_protocol import MAX_EVENTS_PER_SECOND, ViewProtocol

    sent: list[dict[str, Any]] = []
    protocol = ViewProtocol(None, ME.did, None, sent.append)  # type: ignore[arg-type]
    for _ in range(MAX_EVENTS_PER_SECOND):
        protocol._rate_limit()
    with pytest.raises(CharmspaceError, match="More than 50 events a second"):
        protocol._rate_limit()


async def test_frames_before_hello_end_the_connection(
    server: ServerProcess, alice: AsyncClient
) -> None:
    async with connect(server.ws_url, additional_headers=signed_upgrade(ME), proxy=None) as ws:
        await ws.send(json.dumps({"type": "open", "id": "t:1", "view": "v", "charm": {}}))
        bye = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert (bye["type"], bye["seq"], bye["reason"]) == ("bye", 1, "send hello first")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), TIMEOUT)
