"""The seed's whole user path in Chromium, on ``charmspace serve --demo``.

Log in with the printed link, open the starred Google Auth charm, click Sign in
(the fake Google consents at once), come back, open the Gmail search in the
other space, click Scan and see results. Then the 60-second token expires (the
demo clock is moved ahead) and a second Scan shows results again, after
exactly one more refresh at the fake Google.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect
from shellkit import Shell, screenshot

from demo_server import start_demo

AUTH_LINK = re.compile("Google Auth|google_auth")  # the charm's name, or its pattern's
GMAIL_LINK = re.compile("Gmail search|gmail_agentic_search")


@pytest.fixture
def demo(browser: Any, tmp_path: Path) -> Iterator[Shell]:
    shell = Shell(start_demo(tmp_path), browser, tmp_path, [])
    yield shell
    for context in shell.contexts:
        context.close()
    assert shell.server.stop() == 0, shell.server.log_text()


def refreshes(shell: Shell) -> int:
    calls = httpx.get(f"{shell.url}/_demo/status").json()["google_calls"]
    return int(calls.get("refresh_token", 0))


def scan(page: Any, number: int) -> None:
    """Click Scan and wait until scan ``number`` is done.

    Regression: the second scan once waited for "Status: done", which the first
    scan's status still showed until the click reached the server, so the refresh
    count was read before the new scan had run. Only the numbered status proves
    that the new scan, and not the old one, has finished.
    """
    page.locator("#scan").click()
    expect(page.locator("#status")).to_have_text(f"Status: done (scan {number})", timeout=30_000)
    expect(page.locator("#results li").first).to_be_visible()


def test_sign_in_scan_let_the_token_expire_and_scan_again(demo: Shell) -> None:
    context = demo.local_user()
    page = context.new_page()
    page.goto("/")
    expect(page.locator("#cs-banner")).to_have_text(
        "Demo mode: fake Google, fake Gmail, scripted LLM"
    )
    screenshot(page, "demo-home")

    page.locator("#cs-favorites").get_by_role("link", name=AUTH_LINK).click()
    expect(page.locator("#status")).to_have_text("Not signed in")
    page.get_by_role("button", name="Sign in with Google").click()
    page.wait_for_url("**/api/integrations/google-oauth/callback?**")
    expect(page.get_by_role("heading", name="Signed in with Google")).to_be_visible()
    expect(page.locator("#message")).to_have_text("Signed in as alice@example.com.")
    screenshot(page, "demo-callback")
    page.locator("#back").click()
    auth_space = page.url
    page.get_by_role("link", name=AUTH_LINK).click()
    expect(page.locator("#status")).to_have_text("Signed in as alice@example.com")
    screenshot(page, "demo-auth-signed-in")

    page.goto("/")
    spaces = page.locator(".cs-section").filter(has_text="Spaces").locator("a")
    expect(spaces.first).to_be_visible()
    others = [
        href
        for href in spaces.evaluate_all("links => links.map(a => a.href)")
        if href != auth_space
    ]
    for href in others:
        page.goto(href)
        expect(page.locator(".cs-section .cs-items, .cs-section .cs-muted").first).to_be_visible()
        gmail = page.get_by_role("link", name=GMAIL_LINK)
        if gmail.count():
            gmail.click()
            break
    else:
        raise AssertionError(f"no Gmail search charm in the spaces {others}")
    expect(page.locator("#connection")).to_contain_text("connected")
    scan(page, 1)
    expect(page.locator("#results")).to_contain_text("nvoice")
    screenshot(page, "demo-scan")
    before = refreshes(demo)

    moved = httpx.post(f"{demo.url}/_demo/clock", json={"advance": 61})
    assert moved.status_code == 200, moved.text
    scan(page, 2)
    assert refreshes(demo) == before + 1
    screenshot(page, "demo-scan-after-expiry")
