"""The live UI's promises, in Chromium: keys and carets kept, refusals shown, restarts survived."""

from __future__ import annotations

import http.server
import json
import signal
import threading
import time
from typing import Any

from playwright.sync_api import expect
from shellkit import Shell, create, screenshot

from charmspace.client import Client
from charmspace.identity import Identity

ALICE = Identity.from_passphrase("alice")
BOB = Identity.from_passphrase("bob")


def test_fast_typing_with_slow_server_frames_keeps_every_key_and_the_caret(
    shell_factory: Any,
) -> None:
    shell = shell_factory(CHARMSPACE_TESTING_WS_DELAY_MS="300")
    context = shell.local_user()
    page = context.new_page()
    page.goto(create(context, "form"))
    field = page.locator("#text")
    field.click()
    page.keyboard.type("hello", delay=10)
    page.wait_for_timeout(450)  # an edit left; its patch and ack come back while we type
    page.keyboard.type(" wonderful world", delay=10)
    page.wait_for_timeout(400)
    for _ in range(len("world")):
        page.keyboard.press("ArrowLeft")
    page.keyboard.type("big ", delay=10)
    page.wait_for_timeout(1500)  # every frame back, 300 ms late
    expected = "hello wonderful big world"
    expect(field).to_have_value(expected)
    caret = field.evaluate("e => [e.selectionStart, e.selectionEnd]")
    assert caret == [len("hello wonderful big "), len("hello wonderful big ")]
    expect(page.locator("#upper-text")).to_have_text(expected.upper())
    field.press("Tab")
    expect(page.locator("#upper")).to_have_value(expected.upper())


def test_type_then_click_at_once_the_handler_sees_the_typed_value(shell: Shell) -> None:
    context = shell.local_user()
    page = context.new_page()
    page.goto(create(context, "form"))
    page.locator("#text").fill("typed just now")
    page.locator("#shout").click()  # well inside the 300 ms debounce
    expect(page.locator("#said")).to_have_text("typed just now")


def test_editing_a_derived_cell_is_refused_reverted_and_the_error_shown(shell: Shell) -> None:
    context = shell.local_user()
    page = context.new_page()
    page.goto(create(context, "form", text="abc"))
    upper = page.locator("#upper")
    expect(upper).to_have_value("ABC")
    upper.fill("not allowed")
    upper.press("Enter")
    expect(upper).to_have_value("ABC")
    alert = page.locator(".cs-field-error")
    expect(alert).to_contain_text("ReadOnlyCellError")
    expect(upper).to_have_attribute("aria-invalid", "true")
    screenshot(page, "charm-refused-edit")


def test_a_value_of_the_wrong_type_is_refused_beside_the_field_and_kept_to_correct(
    shell: Shell,
) -> None:
    """Regression: an emptied number field bound to an ``int`` input committed null,
    and every later click of the charm failed."""
    context = shell.local_user()
    page = context.new_page()
    charm = create(context, "tally", count=3)
    page.goto(charm)
    field, shown = page.locator("#count"), page.locator("#shown")
    expect(field).to_have_value("3")
    field.fill("")
    field.press("Enter")
    alert = page.locator(".cs-field-error")
    expect(alert).to_contain_text("InputTypeError")
    expect(alert).to_contain_text("is int")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_value("")  # what the user typed stays, to be corrected
    expect(shown).to_have_text("3")
    screenshot(page, "charm-refused-value")
    page.locator("#add").click()  # the counter still works: nothing was written
    expect(shown).to_have_text("4")
    expect(field).to_have_value("4")
    expect(alert).to_have_count(0)
    field.fill("")
    field.press("Enter")
    expect(alert).to_contain_text("InputTypeError")
    field.fill("41")
    field.press("Enter")
    expect(shown).to_have_text("41")
    expect(alert).to_have_count(0)
    expect(field).not_to_have_attribute("aria-invalid", "true")
    did, id = charm.split("/")[1:3]
    value = page.evaluate(
        f"fetch('/api/spaces/{did}/charms/{id}').then(r => r.json()).then(b => b.result.count)"
    )
    assert value == 41


def test_a_failing_event_shows_the_charm_error_in_the_page(shell: Shell) -> None:
    context = shell.local_user()
    page = context.new_page()
    page.goto(create(context, "form"))
    page.locator("#explode").click()
    expect(page.locator(".cs-charm-error")).to_contain_text("explode")
    expect(page.locator(".cs-status")).to_contain_text("ValueError")
    screenshot(page, "charm-error")


def test_sigkill_and_restart_the_pages_reconnect_without_reloading_or_losing_anything(
    shell_factory: Any,
) -> None:
    shell = shell_factory(CHARMSPACE_TESTING_WS_DELAY_MS="300")
    context = shell.local_user()
    counter = create(context, "counter")
    form = create(context, "form")
    tabs = [context.new_page(), context.new_page()]
    frames: list[tuple[str, dict[str, Any]]] = []  # ("sent" | "received", frame) of tabs[0]

    def note(direction: str, payload: str | bytes) -> None:
        frame = json.loads(payload)
        if isinstance(frame, dict):
            frames.append((direction, frame))

    tabs[0].on(
        "websocket",
        lambda ws: (
            ws.on("framesent", lambda p: note("sent", p)),
            ws.on("framereceived", lambda p: note("received", p)),
        ),
    )
    for tab in tabs:
        tab.goto(counter)
        expect(tab.locator("#value")).to_have_text("0")
    editor = context.new_page()
    editor.goto(form)
    expect(editor.locator("#text")).to_have_value("")
    loaded = [p.evaluate("window.charmspaceShell.loadedAt") for p in (*tabs, editor)]
    tabs[0].locator("#inc").click()
    expect(tabs[1].locator("#value")).to_have_text("1")
    # The next click commits, but its ack (300 ms late) never leaves: the page resends it.
    tabs[0].locator("#inc").click()
    time.sleep(0.1)
    shell.server.process.send_signal(signal.SIGKILL)
    shell.server.process.wait(5)
    killed = time.monotonic()
    for tab in (*tabs, editor):
        expect(tab.locator("#cs-offline")).to_be_visible(timeout=1000)
    assert time.monotonic() - killed < 1.5
    expect(tabs[1].locator("#inc")).to_be_disabled()
    editor.locator("#text").fill("typed while offline")
    editor.locator("#text").press("Enter")
    shell.restart()
    for tab in (*tabs, editor):
        expect(tab.locator("#cs-offline")).to_be_hidden(timeout=8000)
    # The pages may show "2" before the server has handled the resent click: wait
    # for its answer, then ask the server, so a click applied twice cannot pass.
    clicked = [f["id"] for way, f in frames if way == "sent" and f.get("type") == "event"][-1]
    deadline = time.monotonic() + 8
    while ("received", {"type": "ack", "id": clicked}) not in [
        (way, {"type": f.get("type"), "id": f.get("id")}) for way, f in frames
    ]:
        assert time.monotonic() < deadline, f"the resent click {clicked} was never answered"
        tabs[0].wait_for_timeout(50)  # lets Playwright deliver the frames
    did, charm = counter.split("/")[1:3]
    value = tabs[0].evaluate(
        f"fetch('/api/spaces/{did}/charms/{charm}').then(r => r.json()).then(b => b.result.value)"
    )
    assert value == 2  # the resent click applied once
    for tab in tabs:
        expect(tab.locator("#value")).to_have_text("2")
        expect(tab.locator("#inc")).to_be_enabled()
    expect(editor.locator("#upper-text")).to_have_text("TYPED WHILE OFFLINE")
    assert [p.evaluate("window.charmspaceShell.loadedAt") for p in (*tabs, editor)] == loaded
    tabs[1].locator("#inc").click()
    expect(tabs[0].locator("#value")).to_have_text("3")


def test_two_users_on_one_field_never_overwrite_a_typist_and_agree_after_blur(
    shell: Shell,
) -> None:
    with Client(shell.url, ALICE) as alice:
        alice.spaces.create()
        charm = alice.charms.create("form")["id"]
        alice.spaces.set_acl(ALICE.did, BOB.did, "WRITE")
    path = f"/{ALICE.did}/{charm}"
    pages = []
    for identity in (ALICE, BOB):
        page = shell.user(identity).new_page()
        page.goto(path)
        expect(page.locator("#text")).to_have_value("")
        pages.append(page)
    mine, theirs = pages
    mine.locator("#text").click()
    mine.keyboard.type("alice typing", delay=20)
    theirs.locator("#text").fill("bob was here")
    theirs.locator("#text").press("Tab")  # bob's value commits while alice types
    mine.keyboard.type(" more", delay=40)
    expect(mine.locator("#text")).to_have_value("alice typing more")
    mine.locator("#text").press("Tab")
    blurred = time.monotonic()
    for page in pages:
        expect(page.locator("#text")).to_have_value("alice typing more", timeout=1000)
    assert time.monotonic() - blurred < 1.5


def test_a_hostile_ui_tree_runs_nothing(shell: Shell) -> None:
    context = shell.local_user()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(create(context, "hostile"))
    expect(page.locator("#safe")).to_have_text("still here")
    view = page.locator(".cs-view")
    assert view.locator("script, iframe, svg, object, embed").count() == 0
    assert page.locator("#js-link").get_attribute("href") is None
    assert page.locator("#blank").get_attribute("rel") == "noopener noreferrer"
    assert page.locator("#onprops").get_attribute("onclick") is None
    assert page.locator("#img").get_attribute("src") is None
    assert page.locator("#img").get_attribute("onerror") is None
    assert page.locator("#formaction").get_attribute("formaction") is None
    assert page.locator("#styled").get_attribute("style") is None
    expect(view).to_contain_text("<img src=x onerror=window.pwned=2>")  # text, not markup
    page.locator("#js-link").click()
    page.locator("#onprops").hover()
    page.locator("#onprops").click()
    page.locator("#formaction").click()
    page.wait_for_timeout(200)
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    csp = page.evaluate("fetch(location.href).then(r => r.headers.get('content-security-policy'))")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


class _Evil(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>another local program</title>"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_page_on_another_local_origin_cannot_open_the_websocket_with_the_cookie(
    shell: Shell,
) -> None:
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Evil)  # same site, other origin
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    context = shell.local_user()
    page = context.new_page()
    try:
        page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
        outcome = page.evaluate(
            """url => new Promise(resolve => {
                const ws = new WebSocket(url);
                ws.onopen = () => { ws.send(JSON.stringify({type: 'hello', v: 1, tab: 'evil'}));
                                    ws.onmessage = m => resolve('opened: ' + m.data); };
                ws.onerror = () => resolve('refused');
                setTimeout(() => resolve('timeout'), 4000);
            })""",
            shell.server.ws_url,
        )
    finally:
        evil.shutdown()
    assert outcome == "refused"
    refusals = [line for line in shell.server.log_text().splitlines() if "websocket" in line]
    assert refusals and "refused: origin" in refusals[-1], refusals


def test_create_a_charm_from_the_home_page_and_star_it(shell: Shell) -> None:
    context = shell.local_user()
    page = context.new_page()
    page.goto("/")
    expect(page.locator("#cs-favorites")).to_contain_text("Star a charm")
    form = page.locator("#cs-new-charm")
    form.get_by_label("Pattern").select_option("counter")
    form.locator("input[name=value]").fill("41")
    screenshot(page, "home")
    form.get_by_role("button", name="Create").click()
    page.wait_for_url("**/did:key:*/*")
    expect(page.locator("#value")).to_have_text("41")
    page.get_by_role("button", name="Star").click()
    expect(page.get_by_role("button", name="Unstar")).to_be_visible()
    page.goto("/")
    expect(page.locator("#cs-favorites")).to_contain_text("counter")
    space = page.locator(".cs-section").filter(has_text="Spaces").locator("a").first
    space.click()
    expect(page.locator(".cs-section h2")).to_contain_text("Space did:key:")
    expect(page.locator(".cs-items")).to_contain_text("Counter: 41")
    screenshot(page, "space")
    page.goto("/")
    page.locator("#cs-favorites").get_by_role("button", name="Unstar").click()
    expect(page.locator("#cs-favorites")).to_contain_text("Star a charm")


def test_a_notes_list_grows_in_place_keeping_focus(shell: Shell) -> None:
    context = shell.local_user()
    page = context.new_page()
    path = create(context, "notes", notes=[{"title": "first", "done": False}])
    page.goto(path)
    expect(page.locator(".cs-view li")).to_have_count(1)
    first = page.locator(".cs-view input[type=checkbox]").first
    first.evaluate("e => { window.kept = e; }")
    did, charm = path.split("/")[1:3]
    page.evaluate(
        """async ([did, charm]) => {
            const csrf = /charmspace_csrf=([^;]+)/.exec(document.cookie)[1];
            await fetch(`/api/spaces/${did}/charms/${charm}/streams/add?wait=commit`, {
                method: 'POST', headers: {'content-type': 'application/json', 'x-csrf-token': csrf},
                body: JSON.stringify({event: {title: 'second'}})});
        }""",
        [did, charm],
    )
    expect(page.locator(".cs-view li")).to_have_count(2)
    expect(page.locator(".cs-view li").nth(1)).to_contain_text("second")
    assert first.evaluate("e => e === window.kept")  # not replaced
    expect(page.locator("#cs-charm-name")).to_have_text("Notes (2 open)")
    first.check()  # the handler gets data_index as the number the pattern gave
    expect(page.locator("#cs-charm-name")).to_have_text("Notes (1 open)")
    expect(first).to_be_checked()
    screenshot(page, "charm-notes")


def test_a_job_shows_its_progress_as_a_progress_bar(shell: Shell) -> None:
    context = shell.local_user()
    page = context.new_page()
    page.goto(create(context, "worker"))
    page.locator("#begin").click()
    job = page.locator(".cs-job[data-job=count]")
    expect(job).to_contain_text("count: running")
    expect(job).to_have_attribute("data-status", "done", timeout=5000)
    bar = job.locator("progress")
    assert (bar.evaluate("e => e.value"), bar.evaluate("e => e.max")) == (4, 4)
    screenshot(page, "charm-job")


def test_the_components_render_as_real_elements_and_bind_both_ways(shell: Shell) -> None:
    context = shell.local_user()
    page = context.new_page()
    path = create(context, "gallery")
    page.goto(path)
    view = page.locator(".cs-view")
    expect(view.locator(".cs-screen-header h2")).to_have_text("Gallery")
    expect(view.locator(".cs-card h3")).to_have_text("Card heading")
    expect(view.locator("label")).to_have_text("A label")
    expect(page.locator("#email")).to_have_attribute("type", "email")
    expect(page.locator("#body")).to_have_value("some text")
    assert page.locator("#body").evaluate("e => e.tagName") == "TEXTAREA"
    expect(page.locator("#switch")).to_have_attribute("role", "switch")
    expect(page.locator("#color option")).to_have_count(3)
    expect(page.locator("#items li")).to_have_count(2)
    expect(page.locator("#link")).to_have_attribute("href", "https://example.invalid/x")
    assert page.locator("#bar").evaluate("e => [e.tagName, e.value, e.max]") == ["PROGRESS", 3, 10]
    expect(view.locator(".cs-loader")).to_have_attribute("role", "progressbar")
    page.locator("#agree").check()
    expect(page.locator("#agreed")).to_have_text("true")
    expect(page.locator("#switch")).to_be_checked()
    page.locator("#color").select_option(label="Blue")
    expect(page.locator("#chosen")).to_have_text("blue")
    page.locator("#email").fill("me@example.invalid")
    page.locator("#email").press("Tab")
    expect(page.locator("#title")).to_have_text("me@example.invalid")
    expect(page.get_by_text("second panel")).to_be_hidden()
    page.get_by_role("tab", name="Second").click()
    expect(page.get_by_text("second panel")).to_be_visible()
    expect(page.get_by_text("first panel")).to_be_hidden()
    screenshot(page, "charm-gallery")
    page.reload()  # what the page sent is in the cells
    expect(page.locator("#agree")).to_be_checked()
    expect(page.locator("#color")).to_have_value("blue")
    expect(page.locator("#email")).to_have_value("me@example.invalid")
