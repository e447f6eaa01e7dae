"""The web shell in Chromium: log in, pages, a live counter, errors in the page."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect
from shellkit import Shell, create, screenshot


def test_the_login_link_logs_in_and_an_unknown_visitor_is_sent_to_the_login_page(
    shell: Shell,
) -> None:
    stranger = shell.context().new_page()
    stranger.goto("/")
    expect(stranger).to_have_url(f"{shell.url}/login")
    expect(stranger.get_by_role("heading", name="Log in")).to_be_visible()
    screenshot(stranger, "login")
    context = shell.local_user()
    page = context.new_page()
    page.goto("/")
    expect(page.locator("#cs-whoami")).to_contain_text("did:key:")
    expect(page.get_by_role("heading", name="New charm")).to_be_visible()
    spent = httpx.get(shell.login_link(), headers={"accept": "text/html"})
    assert spent.status_code == 401 and "already used" in spent.text


def test_click_the_counter_and_see_its_value_and_derived_value_change(shell: Shell) -> None:
    context = shell.local_user()
    path = create(context, "counter", value=5)
    page = context.new_page()
    page.goto(path)
    expect(page.locator("#value")).to_have_text("5")
    page.locator("#inc").click()
    expect(page.locator("#value")).to_have_text("6")
    page.locator("#inc").click()
    page.locator("#inc").click()
    expect(page.locator("#value")).to_have_text("8")
    expect(page.locator("#cs-charm-name")).to_have_text("Counter: 8")  # the name, live too
    screenshot(page, "charm-counter")
    # The name showing 8 does not prove ``doubled`` was derived again: it is another
    # derived value, which may land a moment later. Wait for it, then check both.
    url = "/api/spaces/{}/charms/{}".format(*path.split("/")[1:3])
    page.wait_for_function(
        "url => fetch(url).then(r => r.json()).then(b => b.result.doubled === 16)",
        arg=url,
        polling=100,
    )
    values = page.evaluate("url => fetch(url).then(r => r.json()).then(b => b.result)", url)
    assert (values["value"], values["doubled"]) == (8, 16)
