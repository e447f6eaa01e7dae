"""The seed's story on ``charmspace serve --demo``: a real server process, fakes inside it.

The user logs in with the printed link, signs in with (fake) Google from the
auth charm, and scans Gmail from a charm in another space. Tokens live 60
seconds on the demo clock, which the test moves ahead: an expired token is
refreshed once, through the auth charm, and the scan still finds mail. When
Google cannot be reached the scan says so, and the server keeps serving other
charms.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from demo_server import DemoUser, start_demo
from real_server import ServerProcess, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = start_demo(tmp_path)
    yield process
    assert process.stop() == 0, process.log_text()


@pytest.fixture
def user(server: ServerProcess) -> Iterator[DemoUser]:
    person = DemoUser(server)
    yield person
    person.close()


def test_the_demo_starts_healthy_and_says_it_is_a_demo(
    server: ServerProcess, user: DemoUser
) -> None:
    assert httpx.get(f"{server.url}/_health").json() == {"ok": True}
    page = user.http.get("/")
    assert "Demo mode: fake Google, fake Gmail, scripted LLM" in page.text
    assert user.result(user.auth)["status"] == "Not signed in"
    assert user.result(user.gmail)["connection"] != "connected"


def test_signing_in_and_scanning_with_a_valid_token_finds_mail(user: DemoUser) -> None:
    callback = user.sign_in()
    assert callback.status_code == 200, callback.text
    assert "Signed in as alice@example.com." in callback.text
    assert 'id="back"' in callback.text
    auth = user.result(user.auth)
    assert auth["status"] == "Signed in as alice@example.com"
    assert auth["auth"]["expires_in"] == 60
    result = user.scan()
    assert result["progress"]["status"] == "done", result
    assert result["results"], result
    assert all("invoice" in str(r).lower() for r in result["results"])
    calls = user.demo("status")["google_calls"]
    assert calls["authorization_code"] == 1
    assert calls.get("refresh_token", 0) == 0


def test_the_60_second_token_expires_and_one_refresh_brings_the_results_back(
    user: DemoUser,
) -> None:
    user.sign_in()
    first = user.result(user.auth)["auth"]["token"]
    assert user.scan()["results"]
    before = user.demo("status")["google_calls"].get("refresh_token", 0)
    user.demo("clock", {"advance": 61})
    result = user.scan()
    assert result["progress"]["status"] == "done", result
    assert result["results"], result
    assert user.demo("status")["google_calls"].get("refresh_token", 0) == before + 1
    auth = user.result(user.auth)
    assert auth["auth"]["token"] != first
    assert auth["is_expired"] is False


def test_google_unreachable_for_the_refresh_fails_the_scan_and_nothing_else(
    user: DemoUser,
) -> None:
    user.sign_in()
    token = user.result(user.auth)["auth"]["token"]
    user.demo("faults", {"drop": True})
    user.demo("clock", {"advance": 61})
    result = user.scan()
    assert result["progress"]["status"] == "failed", result
    assert result["error"]["reason"] == "upstream_unreachable", result
    assert user.result(user.auth)["auth"]["token"] == token  # unchanged
    # The scheduler is not wedged: another charm's events still run at once.
    home = user.http.get("/api/session").json()["did"]
    made = user.http.post(
        f"/api/spaces/{home}/charms",
        json={"pattern": "counter", "inputs": {"value": 1}},
        headers=user.headers,
    )
    assert made.status_code == 201, made.text
    counter = f"/api/spaces/{home}/charms/{made.json()['id']}"
    sent = user.http.post(
        f"{counter}/streams/adjust?wait=commit",
        json={"event": {"amount": 2}},
        headers=user.headers,
    )
    assert sent.status_code == 200 and sent.json()["ok"], sent.text
    assert user.result(counter)["value"] == 3
    # Google is back: the next scan refreshes and finds mail.
    user.demo("faults", {"drop": False})
    again = user.scan()
    assert again["progress"]["status"] == "done", again
    assert again["results"]


def test_the_control_routes_refuse_what_they_cannot_do(user: DemoUser) -> None:
    for path, body in [
        ("clock", {"advance": -5}),
        ("clock", {"advance": "soon"}),
        ("clock", [1]),
        ("faults", {"drop": "yes"}),
        ("faults", {"explode": True}),
    ]:
        answer = user.http.post(f"/_demo/{path}", json=body)
        assert answer.status_code == 400, (path, body, answer.text)
        assert "Send {" in answer.json()["error"]["message"]
    # A body another site's page could send without asking first (not JSON) is refused.
    plain = user.http.post(
        "/_demo/clock", content=b'{"advance": 600}', headers={"content-type": "text/plain"}
    )
    assert plain.status_code == 400
    assert user.demo("status")["offset"] == 0


def test_a_server_without_demo_has_no_fakes_and_no_clock_control(tmp_path: Path) -> None:
    plain = start_server(tmp_path)
    try:
        for path in ("/_demo/status", "/_demo/google/o/oauth2/v2/auth"):
            assert httpx.get(f"{plain.url}{path}").status_code == 404
        assert httpx.post(f"{plain.url}/_demo/clock", json={"advance": 60}).status_code in (
            404,
            405,
        )
    finally:
        assert plain.stop() == 0, plain.log_text()
