"""Fake Gmail answers like Gmail: Google's own client reads it, and its errors are Google's.

google-api-python-client with google-auth credentials lists, gets and
batch-gets messages from the fake over HTTP; the search language, pagination
and fault switches behave as the tests of the clients assume.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from charmspace.runtime import FakeClock
from charmspace.testing._serve import serve_asgi
from charmspace.testing.gmail import UNAUTHENTICATED, FakeGmail, messages_matching

GOOD, OLD = "ya29.good", "ya29.old"


def tokens(token: str) -> Any:
    return {GOOD: "valid", OLD: "expired"}.get(token, "invalid")


@pytest.fixture
def fake() -> FakeGmail:
    return FakeGmail(tokens, FakeClock())


@pytest.fixture
def url(fake: FakeGmail) -> Iterator[str]:
    with serve_asgi(fake) as base:
        yield base


def get(url: str, path: str, token: str = GOOD, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params, headers={"Authorization": f"Bearer {token}"})


def test_googles_client_lists_gets_and_batch_gets(fake: FakeGmail, url: str) -> None:
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build
    from googleapiclient.http import BatchHttpRequest

    gmail = build(
        "gmail",
        "v1",
        credentials=Credentials(token=GOOD),
        static_discovery=True,
        client_options={"api_endpoint": url},
    )
    listed = gmail.users().messages().list(userId="me", q="subject:flight", maxResults=5).execute()
    expected = [m.id for m in messages_matching(fake, "subject:flight")][:5]
    assert [m["id"] for m in listed["messages"]] == expected
    message = gmail.users().messages().get(userId="me", id=expected[0]).execute()
    assert message["id"] == expected[0] and "payload" in message

    got: dict[str, Any] = {}
    # The service's own batch URI ignores api_endpoint (it is Google's): name the fake's.
    batch = BatchHttpRequest(
        callback=lambda request_id, response, error: got.update({request_id: response}),
        batch_uri=f"{url}/batch/gmail/v1",
    )
    for i, ident in enumerate(expected):
        batch.add(
            gmail.users().messages().get(userId="me", id=ident, format="metadata"),
            request_id=str(i),
        )
    batch.execute()
    assert [got[str(i)]["id"] for i in range(len(expected))] == expected


def test_an_expired_token_gets_googles_401_body(url: str) -> None:
    response = get(url, "/gmail/v1/users/me/profile", token=OLD)
    assert response.status_code == 401
    assert response.json() == UNAUTHENTICATED
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert get(url, "/gmail/v1/users/me/profile", token="forged").status_code == 401


@pytest.mark.parametrize(
    ("q", "check"),
    [
        ("from:ada", lambda m: "ada@" in m.sender),
        ("to:me@example.com", lambda m: m.to == "me@example.com"),
        ("subject:invoice", lambda m: "invoice" in m.subject.lower()),
        ("lisbon", lambda m: "lisbon" in m.text.lower()),
        ("from:ada OR from:grace", lambda m: "ada@" in m.sender or "grace@" in m.sender),
        ("subject:invoice -from:acme", lambda m: "invoice" in m.subject.lower()),
        ('"quarterly report"', lambda m: "quarterly report" in m.text.lower()),
    ],
)
def test_the_search_language(fake: FakeGmail, url: str, q: str, check: Any) -> None:
    body = get(url, "/gmail/v1/users/me/messages", q=q, maxResults=500).json()
    found = [fake.by_id[m["id"]] for m in body.get("messages", [])]
    assert found, q
    assert all(check(m) for m in found)
    assert body["resultSizeEstimate"] == len(found)


def test_dates_newer_than_after_and_before(fake: FakeGmail, url: str) -> None:
    now = fake.clock.now()
    week = get(url, "/gmail/v1/users/me/messages", q="newer_than:7d", maxResults=500).json()
    assert week["messages"]
    assert all(
        fake.by_id[m["id"]].internal_date / 1000 >= now - 7 * 86400 for m in week["messages"]
    )
    cut = int(now - 30 * 86400)
    before = get(url, "/gmail/v1/users/me/messages", q=f"before:{cut}", maxResults=500).json()
    after = get(url, "/gmail/v1/users/me/messages", q=f"after:{cut}", maxResults=500).json()
    assert len(before["messages"]) + len(after["messages"]) == len(fake.messages)


def test_pages_cover_the_mailbox_once(fake: FakeGmail, url: str) -> None:
    seen: list[str] = []
    token = None
    while True:
        params: dict[str, Any] = {"maxResults": 70}
        if token:
            params["pageToken"] = token
        body = get(url, "/gmail/v1/users/me/messages", **params).json()
        seen += [m["id"] for m in body["messages"]]
        token = body.get("nextPageToken")
        if not token:
            break
    assert seen == [m.id for m in fake.messages]


def test_malformed_parameters_are_400(url: str) -> None:
    assert get(url, "/gmail/v1/users/me/messages", maxResults=0).status_code == 400
    assert get(url, "/gmail/v1/users/me/messages", q="newer_than:soon").status_code == 400
    assert get(url, "/gmail/v1/users/me/history").status_code == 400


def test_fault_switches_count_down(fake: FakeGmail, url: str) -> None:
    fake.faults.rate_limit(times=1, retry_after=3)
    limited = get(url, "/gmail/v1/users/me/profile")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    fake.faults.fail(status=502, times=1)
    assert get(url, "/gmail/v1/users/me/profile").status_code == 502
    assert get(url, "/gmail/v1/users/me/profile").status_code == 200


def test_history_lists_what_arrived_since(fake: FakeGmail, url: str) -> None:
    start = get(url, "/gmail/v1/users/me/profile").json()["historyId"]
    new = fake.deliver("Ada Lovelace <ada@analytical.example>", "Engines", "The engine works.")
    body = get(url, "/gmail/v1/users/me/history", startHistoryId=start).json()
    assert [h["messagesAdded"][0]["message"]["id"] for h in body["history"]] == [new.id]
    listed = get(url, "/gmail/v1/users/me/messages", q="subject:engines").json()
    assert listed["messages"][0]["id"] == new.id


def test_a_batch_answers_each_part_and_404s_a_missing_one(fake: FakeGmail, url: str) -> None:
    ids = [m.id for m in fake.messages[:3]]
    fake.faults.missing.add(ids[1])
    body = (
        "".join(
            f"--b\r\nContent-Type: application/http\r\nContent-ID: <{i}>\r\n\r\n"
            f"GET /gmail/v1/users/me/messages/{i}?format=minimal\r\n\r\n"
            for i in ids
        )
        + "--b--\r\n"
    )
    response = httpx.post(
        f"{url}/batch/gmail/v1",
        content=body,
        headers={"Authorization": f"Bearer {GOOD}", "Content-Type": "multipart/mixed; boundary=b"},
    )
    assert response.status_code == 200
    text = response.text
    assert text.count("HTTP/1.1 200 OK") == 2 and text.count("HTTP/1.1 404 Not Found") == 1
    assert f"<response-{ids[1]}>" in text
    assert json.loads(text.split("\r\n\r\n")[2].split("\r\n--")[0])["id"] == ids[0]
