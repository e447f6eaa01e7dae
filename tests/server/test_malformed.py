"""R4: malformed input never produces a 500, only a clear 4xx, and a refused request writes nothing.

Two halves: schemathesis generates requests from /openapi.json (valid and
invalid, a bounded number per operation, every one signed so it reaches the
routes rather than stopping at the signature check), and hand-written cases cover
what a generator rarely finds: huge and deep bodies, wrong types, invalid UTF-8,
links and odd paths.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from charmspace.client import SignedAuth
from charmspace.identity import Identity
from charmspace.server import Settings, create_app
from charmspace.signing import sign_request
from real_server import start_server

ALICE = Identity.from_passphrase("r4 alice")
schema = schemathesis.openapi.from_dict(create_app(Settings(storage="memory://")).openapi())


class Client(httpx.Client):
    charm: str


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A real server process (uvicorn parses what the generator sends), signing as alice."""
    tmp = tmp_path_factory.mktemp("r4")
    server = start_server(tmp, env={"CHARMSPACE_MAX_BODY_BYTES": str(64 * 1024)})
    try:
        with Client(base_url=server.url, auth=SignedAuth(ALICE), timeout=30) as http:
            http.post("/api/spaces", json={"space": ALICE.did}).raise_for_status()
            created = http.post(f"/api/spaces/{ALICE.did}/charms", json={"pattern": "counter"})
            created.raise_for_status()
            http.charm = created.json()["id"]
            yield http
    finally:
        assert server.stop() == 0, server.log_text()
        assert " 500 " not in server.log_text()


def head(client: Client) -> int:
    value: int = client.get(f"/api/spaces/{ALICE.did}/head").json()
    return value


def check(response: Any) -> None:
    """The R4 contract for one response."""
    assert response.status_code < 500, (
        response.request.method,
        response.request.url,
        response.text,
    )
    assert response.status_code != 422, "422 is never used: validation errors are 400"
    if response.headers.get("content-type", "").startswith("text/html"):
        assert "Reason:" in response.text  # the Google sign-in callback's failure page
        return
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["type"] and error["message"]


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_generated_requests(case: Any, client: Client) -> None:
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url).rstrip("/"))
    before = head(client)
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["content"] = json.dumps(kwargs["json"]).encode()
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        body["content"] = data if isinstance(data, bytes) else str(data).encode()
    headers = {k: v for k, v in kwargs.get("headers", {}).items() if k.lower() != "authorization"}
    response = client.request(
        kwargs["method"], kwargs["url"], params=kwargs.get("params"), headers=headers, **body
    )
    check(response)
    if response.status_code >= 400:
        assert head(client) == before


# --- hand-written cases -----------------------------------------------------------------------


def charm_path(client: Client) -> str:
    return f"/api/spaces/{ALICE.did}/charms/{client.charm}"


def post_raw(client: Client, path: str, content: bytes, **headers: str) -> Any:
    return client.post(
        path, content=content, headers={"Content-Type": "application/json", **headers}
    )


def test_huge_body_is_413_before_parsing(client: Client) -> None:
    before = head(client)
    huge = b'{"event": "' + b"x" * (65 * 1024) + b'"}'
    response = post_raw(client, charm_path(client) + "/streams/increment", huge)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "BodyTooLargeError"
    assert head(client) == before


def test_a_declared_huge_length_is_413_before_the_body_arrives(client: Client) -> None:
    """Refused from the Content-Length header: the server never waits for (or buffers) it."""
    host, port = client.base_url.host, client.base_url.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/spaces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 99999999\r\n\r\n{}"
        )
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:100]


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deep_json_is_400(client: Client, depth: int) -> None:
    before = head(client)
    deep = b'{"event": ' + b"[" * depth + b"]" * depth + b"}"
    response = post_raw(client, charm_path(client) + "/streams/increment?wait=commit", deep)
    check(response)
    assert response.status_code in (400, 413)  # 413: past the body limit already
    assert head(client) == before


@pytest.mark.parametrize(
    "content",
    [b'{"value": {"\\ud800": 1}}', b'{"value": "\\udfff"}', b'{"value": 100000000000000000000}'],
)
def test_values_storage_refuses_are_400(client: Client, content: bytes) -> None:
    """Regression: an error quoting a key with a lone surrogate was a 500 (UTF-8 cannot
    encode it); error bodies are now ASCII JSON with escapes."""
    before = head(client)
    response = client.put(
        charm_path(client) + "/cells/value",
        content=content,
        headers={"Content-Type": "application/json"},
    )
    check(response)
    assert response.status_code == 400
    assert head(client) == before


def test_deep_but_allowed_json_is_fine_or_refused_cleanly(client: Client) -> None:
    nested: Any = 1
    for _ in range(60):
        nested = {"a": nested}
    response = client.put(charm_path(client) + "/cells/value", json={"value": nested})
    check(response)
    check(client.put(charm_path(client) + "/cells/value", json={"value": 0}))


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe{}",
        b'{"event": "\xc3\x28"}',
        b"{not json",
        b"",
        b"null",
        b"[]",
        b'"event"',
        b'{"event": NaN}',
        b'{"event": 1e999999}',
        b'{"event": {}, "extra": 1}',
        b'{"event": {"amount": "ten"}}',
        b'{"event": {"amount": 100000000000000000000000}}',
        b'{"event": {"amount": "\\ud800"}}',
    ],
)
def test_bad_bodies_are_400(client: Client, content: bytes) -> None:
    before = head(client)
    response = post_raw(client, charm_path(client) + "/streams/adjust?wait=commit", content)
    check(response)
    assert response.status_code == 400, response.text
    assert head(client) == before


@pytest.mark.parametrize(
    "body",
    [
        {"pattern": 1},
        {"pattern": "counter", "inputs": []},
        {"pattern": "counter", "inputs": {"value": "x"}},
        {"pattern": "counter", "inputs": {"nope": 1}},
        {"pattern": "charmspace.library.counter:counter"},
        {"pattern": "os:system"},
        {"pattern": "x" * 5000},
        {},
    ],
)
def test_bad_charm_creations_are_400(client: Client, body: dict[str, Any]) -> None:
    before = head(client)
    response = client.post(f"/api/spaces/{ALICE.did}/charms", json=body)
    check(response)
    assert response.status_code == 400, response.text
    assert head(client) == before


@pytest.mark.parametrize(
    "value",
    [
        {"/": {"link@1": {"id": "of:nowhere", "space": "did:key:bad", "path": []}}},
        {"/": {"link@1": {"id": 5, "path": "x"}}},
        {"/": {"link@1": "x"}},
        {"/": {"link@1": {"id": "of:x", "path": [], "overwrite": "redirect"}}},
    ],
)
def test_bad_links_are_refused_or_stored_as_data(client: Client, value: Any) -> None:
    response = client.put(charm_path(client) + "/cells/value", json={"value": value})
    check(response)
    got = client.get(charm_path(client) + "/cells/value")
    check(got)


def test_a_link_cycle_is_a_clear_error(client: Client) -> None:
    cycle = {"/": {"link@1": {"path": ["value"]}}}
    first = client.put(charm_path(client) + "/cells/value", json={"value": cycle})
    check(first)
    response = client.get(charm_path(client) + "/cells/value")
    check(response)
    check(client.put(charm_path(client) + "/cells/value", json={"value": 0}))


@pytest.mark.parametrize(
    "path",
    [
        "/api/spaces/not-a-did/charms",
        "/api/spaces/did:key:z6Mk/charms",
        "/api/spaces/did:key:zQ3shokFTS3brHcDQrn82RUDfCZESWL1ZdCEJwekUDPQiYBme/charms",
        f"/api/spaces/{ALICE.did}/charms/%00",
        f"/api/spaces/{ALICE.did}/charms/{'x' * 300}",
        f"/api/spaces/{ALICE.did}/log?since=-1",
        f"/api/spaces/{ALICE.did}/log?since=abc",
        f"/api/spaces/{ALICE.did}/log?since=99999999999999999999999",
        f"/api/spaces/{ALICE.did}/docs/x?at=-5",
        "/api/wish?q=%FF",
        "/api/wish",
    ],
)
def test_bad_paths_and_queries_are_4xx(client: Client, path: str) -> None:
    response = client.get(path)
    check(response)
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("cell", ["", "a//b", "/".join(["a"] * 65), "%FF", "value/0/x"])
def test_bad_cell_paths(client: Client, cell: str) -> None:
    before = head(client)
    response = client.put(charm_path(client) + f"/cells/{cell}", json={"value": 1})
    check(response)
    if response.status_code >= 400:
        assert head(client) == before


def test_unfavoriting_a_bad_space_is_400(client: Client) -> None:
    response = client.delete("/api/favorites", params={"space": "x", "id": "y"})
    check(response)
    assert response.status_code == 400


def test_wrong_methods_and_unknown_routes(client: Client) -> None:
    for method, path in (("PATCH", "/api/spaces"), ("DELETE", "/api/wish"), ("GET", "/api/none")):
        response = client.request(method, path)
        check(response)
        assert response.status_code in (404, 405)


def test_unsigned_garbage_is_401_not_400(client: Client) -> None:
    """The signature is checked before the body is parsed."""
    url = str(client.base_url).rstrip("/") + "/api/spaces"
    response = httpx.post(url, content=b"\xff{{{{")
    assert response.status_code == 401


def test_a_signature_with_non_ascii_query_is_checked_as_sent(client: Client) -> None:
    target = "/api/wish?q=%23caf%C3%A9"
    header = sign_request(ALICE, "GET", target, b"", int(time.time()))
    response = client.get(target, headers={"Authorization": header.render()})
    check(response)
