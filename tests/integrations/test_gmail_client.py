"""The Gmail client against fake Gmail over real HTTP, with the auth charm owning the token.

Each test tells one story: a token found expired by its ``expires_at`` (within
the skew), one found expired only by Gmail's 401, a token Gmail refuses even
after a refresh, Gmail throttling and failing, pagination, and the decoding of
every MIME shape the fake serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from gmail_world import World, gmail_world

from charmspace.errors import IntegrationError
from charmspace.integrations.google.gmail import html_to_text, message_text, needs_refresh
from charmspace.testing.gmail import SHAPES, messages_matching
from charmspace.testing.llm import reply


@pytest.fixture
async def world(storage_url: str) -> AsyncIterator[World]:
    async with gmail_world(storage_url, [reply("unused")]) as w:
        yield w


async def test_with_a_valid_token_the_profile_is_read_without_refreshing(world: World) -> None:
    world.sign_in()
    async with world.client() as gmail:
        profile = await gmail.profile()
    assert profile["emailAddress"] == "me@example.com"
    assert profile["messagesTotal"] == len(world.gmail.messages)
    assert world.issuer.refreshes == 0


async def test_a_token_within_the_skew_of_expiry_is_refreshed_before_the_call(
    world: World,
) -> None:
    first = world.sign_in()
    await world.clock.advance(3600 - 299)  # skew is min(300 s, expires_in / 2) = 300 s
    async with world.client() as gmail:
        await gmail.profile()
        assert gmail.refreshes == 1
    assert world.issuer.refreshes == 1
    assert world.gmail.statuses == [200]  # Gmail never saw the old token
    assert world.auth_charm["auth"].get()["token"] != first["token"]


async def test_two_clients_that_find_the_token_expired_cause_one_refresh(world: World) -> None:
    world.sign_in()
    await world.clock.advance(3600)
    async with world.client() as one, world.client() as two:
        await asyncio.gather(one.profile(), two.profile())
        assert one.refreshes == two.refreshes == 1  # both asked ...
    assert world.issuer.refreshes == 1  # ... the auth charm refreshed once
    assert world.gmail.statuses == [200, 200]


async def test_a_token_outside_the_skew_is_used_as_it_is(world: World) -> None:
    first = world.sign_in()
    await world.clock.advance(3600 - 301)
    async with world.client() as gmail:
        await gmail.profile()
    assert world.issuer.refreshes == 0
    assert world.auth_charm["auth"].get()["token"] == first["token"]


def test_the_skew_is_half_the_lifetime_for_short_tokens() -> None:
    auth = {"token": "t", "expires_in": 60, "expires_at": 1_000_000}
    assert not needs_refresh(auth, 1_000_000 / 1000 - 31)
    assert needs_refresh(auth, 1_000_000 / 1000 - 30)
    assert not needs_refresh({"token": "t", "expires_at": 0}, 10**12)  # unknown expiry


async def test_an_expiry_found_only_by_a_401_refreshes_once_and_retries(world: World) -> None:
    auth = world.sign_in()
    async with world.runtime.edit():  # the expiry is unknown to the cell
        world.auth_charm["auth"].update({"expires_at": 0, "expires_in": 0})
    await world.clock.advance(4000)
    async with world.client() as gmail:
        ids = await gmail.list_messages("subject:invoice", limit=3)
    assert len(ids) == 3
    assert world.gmail.statuses == [401, 200]
    assert world.issuer.refreshes == 1
    assert world.auth_charm["auth"].get()["token"] != auth["token"]


async def test_a_second_401_asks_the_user_to_re_authenticate(world: World) -> None:
    world.sign_in()
    world.gmail.faults.reject_tokens(times=2)
    async with world.client() as gmail:
        with pytest.raises(IntegrationError) as caught:
            await gmail.profile()
    assert caught.value.reason == "auth"
    assert "Please re-authenticate" in str(caught.value)
    assert world.gmail.statuses == [401, 401]
    assert world.issuer.refreshes == 1


async def test_a_refused_refresh_carries_invalid_grant_and_leaves_the_cell(world: World) -> None:
    auth = world.sign_in()
    world.issuer.revoked = True
    await world.clock.advance(3600)
    async with world.client() as gmail:
        with pytest.raises(IntegrationError) as caught:
            await gmail.profile()
    assert caught.value.reason == "invalid_grant"
    assert world.gmail.statuses == []  # no request with a token known to be expired
    assert world.auth_charm["auth"].get() == auth


async def test_429_waits_as_long_as_retry_after_says(world: World) -> None:
    world.sign_in()
    world.gmail.faults.rate_limit(times=2, retry_after=7)
    async with world.client() as gmail:
        await gmail.profile()
    assert world.gmail.statuses == [429, 429, 200]
    assert len(world.sleeps) == 2 and all(s >= 7 for s in world.sleeps)


async def test_5xx_backs_off_exponentially_then_gives_up(world: World) -> None:
    world.sign_in()
    world.gmail.faults.fail(status=503, times=10)
    async with world.client() as gmail:
        with pytest.raises(IntegrationError) as caught:
            await gmail.profile()
    assert caught.value.reason == "upstream_503"
    assert world.gmail.statuses == [503] * 5  # the first try and four retries
    assert world.sleeps == sorted(world.sleeps)  # longer each time (jitter stays within)
    assert world.sleeps[-1] > world.sleeps[0] * 4


async def test_a_4xx_other_than_401_and_429_is_not_retried(world: World) -> None:
    world.sign_in()
    async with world.client() as gmail:
        with pytest.raises(IntegrationError) as caught:
            await gmail.get_message("ffffffffffffffff")
    assert caught.value.reason == "not_found"
    assert world.gmail.statuses == [404]
    assert world.sleeps == []


async def test_listing_follows_pages_up_to_the_limit(world: World) -> None:
    world.sign_in()
    expected = [m.id for m in messages_matching(world.gmail, "")]
    async with world.client() as gmail:
        ids = await gmail.list_messages("", limit=260)
        few = await gmail.list_messages("from:ada OR from:grace", limit=1000)
    assert [m["id"] for m in ids] == expected[:260]
    assert world.gmail.calls["list"] >= 2
    assert len(few) == len(list(messages_matching(world.gmail, "from:ada OR from:grace")))


async def test_batch_get_returns_every_message_but_one_gone_meanwhile(world: World) -> None:
    world.sign_in()
    wanted = [m.id for m in world.gmail.messages[:12]]
    world.gmail.faults.missing.add(wanted[3])
    async with world.client() as gmail:
        got = await gmail.get_messages(wanted)
    assert [m.id for m in got] == wanted[:3] + wanted[4:]
    assert world.gmail.calls["batch"] == 1


async def test_history_lists_a_message_that_arrived_since_the_profile(world: World) -> None:
    world.sign_in()
    async with world.client() as gmail:
        start = (await gmail.profile())["historyId"]
        new = world.gmail.deliver("Grace <grace@navy.example>", "COBOL", "Compilers!", "html")
        changes = await gmail.history(start)
        got = await gmail.get_message(new.id)
    assert [h["messagesAdded"][0]["message"]["id"] for h in changes["history"]] == [new.id]
    assert got.subject == "COBOL" and got.text == "Compilers!\n\nKind regards,\nthe sender"


async def test_throttled_parts_of_a_batch_are_asked_again(world: World) -> None:
    world.sign_in()
    wanted = [m.id for m in world.gmail.messages[:12]]
    world.gmail.faults.throttle_parts(times=4)
    async with world.client() as gmail:
        got = await gmail.get_messages(wanted)
    assert [m.id for m in got] == wanted
    assert world.gmail.calls["batch"] == 2 and len(world.sleeps) == 1
    assert world.gmail.statuses.count(429) == 4


async def test_every_mime_shape_decodes_to_the_text_that_was_sent(world: World) -> None:
    world.sign_in()
    samples = {m.shape: m for m in world.gmail.messages[: len(SHAPES)]}
    assert set(samples) == set(SHAPES)
    async with world.client() as gmail:
        for shape, sent in samples.items():
            got = await gmail.get_message(sent.id)
            body = " ".join(sent.text.split())
            assert body in " ".join(got.text.split()), shape
            assert got.subject == sent.subject
            assert got.sender == sent.sender  # non-ASCII names decoded from RFC 2047
            if shape == "html":
                assert "color:red" not in got.text and "<p>" not in got.text
            if shape == "mixed":
                assert got.attachments == ("document.pdf",)
                assert "%PDF" not in got.text


def test_html_becomes_text_without_markup_scripts_or_entities() -> None:
    html = (
        "<html><head><title>t</title></head>"
        "<body><script>x()</script><p>A &amp; B</p>ok</body></html>"
    )
    assert html_to_text(html) == "A & B\nok"


def test_a_long_body_is_cut_at_the_cap() -> None:
    import base64

    data = base64.urlsafe_b64encode(("word " * 10_000).encode()).decode()
    payload = {"mimeType": "text/plain", "body": {"data": data}, "headers": []}
    text = message_text(payload, cap=100)
    assert len(text) < 120 and text.endswith("[… cut]")
