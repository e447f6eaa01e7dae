"""The gmail_agentic_search charm, end to end: the user writes a goal and clicks Scan.

The charm lives in its own space and finds the auth charm (another space) by
its ``#googleAuth`` favorite; the scripted LLM proposes searches, fake Gmail
answers them over HTTP, and everything the user sees is read from the charm's
cells.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from gmail_world import gmail_world

from charmspace.integrations.google.gmail import GMAIL_READONLY
from charmspace.integrations.services import services_of
from charmspace.library.gmail_agentic_search import connection_state, gmail_agentic_search
from charmspace.patterns.html import render_html
from charmspace.patterns.render import render_ui
from charmspace.testing.gmail import messages_matching
from charmspace.testing.llm import gmail_policy, reply, tool_call


@pytest.mark.parametrize(
    ("auth", "state"),
    [
        (None, "sign in"),
        ({"token": ""}, "sign in"),
        ({"token": "t", "scope": ["openid", "email"]}, "permission missing"),
        ({"token": "t", "scope": [GMAIL_READONLY], "expires_at": 0}, "connected"),
        (
            {"token": "t", "scope": [GMAIL_READONLY], "expires_in": 3600, "expires_at": 1},
            "token will be refreshed",
        ),
    ],
)
def test_the_connection_state_the_user_sees(auth: Any, state: str) -> None:
    assert connection_state(auth, 1000.0) == state


def progress(charm: Any) -> dict[str, Any]:
    value: dict[str, Any] = charm["progress"].get()
    return value


async def scan_and_wait(world: Any, charm: Any) -> None:
    result = await charm.stream("scan").call({})
    assert result.ok, result.error
    await world.runtime.idle(jobs=True)


async def test_given_a_valid_token_scan_searches_and_summarizes(storage_url: str) -> None:
    async with gmail_world(storage_url, gmail_policy(searches=2)) as world:
        world.sign_in()
        charm = await world.search_charm(goal="invoice from acme")
        await world.runtime.idle()
        assert charm["connection"].get() == "connected"
        await scan_and_wait(world, charm)
        seen = progress(charm)
        assert seen["status"] == "done"
        expected = [
            {"query": q, "count": min(10, len(list(messages_matching(world.gmail, q))))}
            for q in ("subject:invoice", "acme")
        ]
        assert seen["queries"] == expected
        assert charm["summary"].get().startswith("Found ")
        assert charm["results"].get() and all("subject" in r for r in charm["results"].get())
        assert charm["error"].get() is None
        assert world.issuer.refreshes == 0
        page = render_html(render_ui(charm))
        assert "Google: connected" in page and "Status: done" in page
        assert f"subject:invoice: {expected[0]['count']}" in page
        assert charm["results"].get()[0]["subject"] in page


async def test_a_second_scan_is_numbered_so_its_status_is_not_the_first_ones(
    storage_url: str,
) -> None:
    async with gmail_world(storage_url, gmail_policy(searches=1)) as world:
        world.sign_in()
        charm = await world.search_charm(goal="invoice")
        assert "Status: idle" in render_html(render_ui(charm))
        await scan_and_wait(world, charm)
        assert "Status: done (scan 1)" in render_html(render_ui(charm))
        result = await charm.stream("scan").call({})
        assert result.ok, result.error
        assert progress(charm)["scan"] == 2  # at once: the old "done" is gone
        await world.runtime.idle(jobs=True)
        assert progress(charm)["scan"] == 2
        assert "Status: done (scan 2)" in render_html(render_ui(charm))


async def test_given_an_expired_token_scan_refreshes_exactly_once(storage_url: str) -> None:
    async with gmail_world(storage_url, gmail_policy(searches=2)) as world:
        first = world.sign_in()
        charm = await world.search_charm(goal="flight")
        await world.clock.advance(3600 + 60)
        await world.runtime.idle()
        assert charm["connection"].get() == "token will be refreshed"
        await scan_and_wait(world, charm)
        assert progress(charm)["status"] == "done"
        assert world.issuer.refreshes == 1
        assert 401 not in world.gmail.statuses
        assert world.auth_charm["auth"].get()["token"] != first["token"]
        assert "refreshing" in progress(charm)["steps"][0]


async def test_when_gmail_says_401_inside_the_tool_the_token_is_refreshed(
    storage_url: str,
) -> None:
    async with gmail_world(storage_url, gmail_policy(searches=1)) as world:
        world.sign_in()
        world.gmail.faults.reject_tokens(times=1)  # revoked at Google, not yet expired here
        charm = await world.search_charm(goal="lunch")
        await scan_and_wait(world, charm)
        assert progress(charm)["status"] == "done"
        assert world.gmail.statuses[0] == 401
        assert world.issuer.refreshes == 1


async def test_stop_cancels_the_scan(storage_url: str) -> None:
    async with gmail_world(storage_url, gmail_policy(searches=3)) as world:
        world.sign_in()
        world.gmail.faults.rate_limit(times=1, retry_after=30)
        charm = await world.search_charm(goal="report")
        gate = asyncio.Event()

        async def stuck(seconds: float) -> None:
            world.sleeps.append(seconds)
            await gate.wait()  # the job waits out Retry-After until it is stopped

        services_of(world.runtime).sleep = stuck
        assert (await charm.stream("scan").call({})).ok
        for _ in range(1000):  # up to 10 s on a busy machine
            await asyncio.sleep(0.01)
            if world.sleeps:
                break
        assert world.sleeps and world.sleeps[0] >= 30  # waiting out Retry-After
        assert progress(charm)["status"] == "searching"
        assert (await charm.stream("stop").call({})).ok
        await world.runtime.idle(jobs=True)
        assert progress(charm)["status"] == "stopped"
        assert progress(charm)["queries"] == []


async def test_a_refused_refresh_shows_re_authenticate_with_the_reason(storage_url: str) -> None:
    async with gmail_world(storage_url, gmail_policy()) as world:
        auth = world.sign_in()
        world.issuer.revoked = True
        await world.clock.advance(4000)
        charm = await world.search_charm(goal="hotel")
        await scan_and_wait(world, charm)
        assert progress(charm)["status"] == "failed"
        error = charm["error"].get()
        assert error["reason"] == "invalid_grant" and error["reauthenticate"] is True
        assert charm["problem"].get().startswith("Re-authenticate: ")
        assert charm["problem"].get().endswith("(invalid_grant)")
        page = render_html(render_ui(charm))  # what the web shell shows
        assert "Re-authenticate: " in page and "Status: failed" in page
        assert world.auth_charm["auth"].get() == auth  # nothing written on failure
        assert world.llm.requests == []  # no LLM call with a dead token


async def test_the_search_budget_stops_a_model_that_keeps_searching(storage_url: str) -> None:
    script = [tool_call("search_gmail", query=f"subject:weekly {i}") for i in range(10)]
    async with gmail_world(storage_url, script) as world:
        world.sign_in()
        charm = await world.search_charm(goal="digest", budget=3)
        await scan_and_wait(world, charm)
        seen = progress(charm)
        assert seen["status"] == "budget reached"
        assert len(seen["queries"]) == 3
        assert len(world.llm.requests) == 4  # the fourth proposal was not run


async def test_scan_without_a_google_sign_in_asks_to_sign_in(storage_url: str) -> None:
    async with gmail_world(storage_url, [reply("unused")]) as world:
        charm = await world.search_charm(goal="anything")
        await world.runtime.idle()
        assert charm["connection"].get() == "sign in"
        await charm.stream("scan").call({})
        await world.runtime.idle(jobs=True)
        assert charm["error"].get()["reauthenticate"] is True
        assert world.llm.requests == []


async def test_logs_of_a_scan_with_refresh_and_401_hold_no_token(
    storage_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with gmail_world(storage_url, gmail_policy(searches=2)) as world:
        world.sign_in()
        world.gmail.faults.reject_tokens(times=1)
        charm = await world.search_charm(goal="invoice")
        await world.clock.advance(3600)
        await scan_and_wait(world, charm)
        world.issuer.revoked = True
        await world.clock.advance(3600)
        await scan_and_wait(world, charm)
        secrets = [*world.issuer.tokens, world.issuer.refresh_token, "sk-test-llm-key"]
        assert progress(charm)["status"] == "failed"
        cells = str([charm[k].get() for k in ("progress", "results", "error", "problem")])
        assert not [s for s in secrets if s in cells]
    text = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    assert caplog.records  # something was logged, so the check below can fail
    assert not [s for s in secrets if s in text]


async def test_an_llm_that_stays_overloaded_fails_the_scan_without_re_authenticate(
    storage_url: str,
) -> None:
    async with gmail_world(storage_url, gmail_policy()) as world:
        world.sign_in()
        world.llm.fail(status=503, times=50)
        charm = await world.search_charm(goal="invoice")
        await scan_and_wait(world, charm)
        assert progress(charm)["status"] == "failed"
        error = charm["error"].get()
        assert (error["reason"], error["reauthenticate"]) == ("upstream_503", False)
        assert charm["problem"].get().startswith("Error: ")
        assert len(world.sleeps) == 4  # retried with back-off before giving up


async def test_a_second_scan_replaces_the_first_results(storage_url: str) -> None:
    async with gmail_world(storage_url, gmail_policy(searches=1)) as world:
        world.sign_in()
        charm = await world.search_charm(goal="flight")
        await scan_and_wait(world, charm)
        first = charm["results"].get()
        async with world.runtime.edit():
            charm["goal"].set("hotel")
        await scan_and_wait(world, charm)
        assert progress(charm)["queries"] == [
            {
                "query": "subject:hotel",
                "count": min(10, len(list(messages_matching(world.gmail, "subject:hotel")))),
            }
        ]
        assert charm["results"].get() != first
        assert all("hotel" in r["subject"].lower() for r in charm["results"].get())


async def test_a_linked_auth_input_is_used_instead_of_the_favorite(storage_url: str) -> None:
    async with gmail_world(storage_url, gmail_policy(searches=1)) as world:
        await world.runtime.favorites().remove(world.auth_charm)
        world.sign_in()
        await world.clock.advance(3600)
        charm = await world.runtime.charms.create(
            gmail_agentic_search,
            space=world.runtime.create_space(name="gmail"),
            inputs={
                "goal": "lunch",
                "auth": world.auth_charm["auth"],
                "refresh": world.auth_charm.stream("refresh"),
            },
        )
        await world.runtime.idle()
        assert charm["connection"].get() == "token will be refreshed"
        await scan_and_wait(world, charm)
        assert progress(charm)["status"] == "done"
        assert world.issuer.refreshes == 1


async def test_a_query_gmail_rejects_is_told_to_the_model_which_tries_again(
    storage_url: str,
) -> None:
    script = [
        tool_call("search_gmail", query="newer_than:soon"),
        tool_call("search_gmail", query="newer_than:30d"),
        reply("Recent mail found."),
    ]
    async with gmail_world(storage_url, script) as world:
        world.sign_in()
        charm = await world.search_charm(goal="recent mail")
        await scan_and_wait(world, charm)
        seen = progress(charm)
        assert seen["status"] == "done"
        assert [q["query"] for q in seen["queries"]] == ["newer_than:soon", "newer_than:30d"]
        told = world.llm.requests[1]["messages"][-1]
        assert told["role"] == "tool" and "rejected" in told["content"]
        assert charm["summary"].get() == "Recent mail found."
