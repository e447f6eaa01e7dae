"""Each server command in-process (Typer's runner) against a real server: output, --json."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest
from cli_user import User


@pytest.fixture
def counter(alice: User) -> str:
    made = alice("--json", "charm", "new", "counter", "--input", "value=2")
    assert made.code == 0, made.output
    return str(made.json()["id"])


def test_patterns_lists_what_the_server_installed(alice: User) -> None:
    listed = {p["name"]: p for p in alice("--json", "patterns").json()}
    assert listed["counter"]["tags"] == ["#counter"]
    assert set(listed["notes"]["inputs"]["properties"]) == {"title", "notes"}
    table = alice("patterns")
    assert table.code == 0 and "counter" in table.stdout and "#notes" in table.stdout


def test_space_new_ls_and_acl(alice: User, bob: User) -> None:
    made = alice("--json", "space", "new", "garden").json()
    assert made["owner"] == alice.did
    listed = {s["space"]: s for s in alice("--json", "space", "ls").json()}
    assert listed[made["space"]]["owner"] == alice.did
    assert made["space"] in alice("space", "ls").stdout

    granted = alice("--json", "--space", "garden", "space", "acl", "set", bob.did, "read")
    assert granted.json()["acl"] == {bob.did: "READ"}
    shown = alice("--space", "garden", "space", "acl")
    assert bob.did in shown.stdout and "READ" in shown.stdout
    assert bob("--json", "--space", made["space"], "space", "acl", "ls").json() == granted.json()

    refused = bob("--space", made["space"], "space", "acl", "set", bob.did, "OWNER")
    assert refused.code == 1
    assert "AuthorizationError" in refused.stderr and "HTTP 403" in refused.stderr

    revoked = alice("--json", "--space", "garden", "space", "acl", "rm", bob.did)
    assert revoked.json()["acl"] == {}
    assert bob("--space", made["space"], "space", "acl").code == 1


def test_a_new_users_home_space_has_no_charms_yet(alice: User) -> None:
    assert alice("--json", "charm", "ls").json() == []
    elsewhere = alice("--space", "nowhere", "charm", "ls")
    assert elsewhere.code == 1 and "SpaceNotFoundError" in elsewhere.stderr
    assert "`charmspace space new NAME`" in elsewhere.stderr  # says how to make one


def test_a_cell_name_the_result_lacks_is_refused_for_get_and_set(alice: User, counter: str) -> None:
    """Regression: `charm get ID vaule` printed null, `charm set ID vaule 3` added
    'vaule' to the charm's result, and `charm watch ID vaule` watched null until Ctrl-C."""
    for args in (
        ["get", counter, "vaule"],
        ["set", counter, "vaule", "3"],
        ["watch", counter, "vaule"],
    ):
        # A process with a timeout: a watch that is not refused would never end.
        refused = alice.run("charm", *args, timeout=20)
        assert refused.code == 1
        assert f"Charm {counter} has no 'vaule' in its result; it has: " in refused.stderr
        assert "(UnknownCellError, HTTP 404)" in refused.stderr
    assert "vaule" not in alice("--json", "charm", "inspect", counter).json()["result"]
    assert alice("charm", "get", counter, "value").stdout.strip() == "2"


def test_a_value_of_the_wrong_type_for_an_input_is_refused(alice: User, counter: str) -> None:
    """Regression: `charm set ID value '"str"'` on the counter was written, and every
    handler run failed from then on."""
    refused = alice("charm", "set", counter, "value", '"str"')
    assert refused.code == 1
    assert f"Input 'value' of charm {counter} (pattern counter) is int" in refused.stderr
    assert "nothing was written" in refused.stderr
    assert "(InputTypeError, HTTP 400)" in refused.stderr
    assert alice("--json", "charm", "get", counter, "value").json() == 2
    waited = alice("--json", "charm", "call", counter, "increment", "--wait").json()
    assert waited["ok"] is True and waited["error"] is None
    assert alice("--json", "charm", "get", counter, "value").json() == 3


def test_a_charm_id_that_is_not_there_says_how_to_find_the_right_one(
    alice: User, counter: str
) -> None:
    """Regression: "No charm X in space Y." gave no hint of what to check next."""
    missing = alice("charm", "get", "of:nothing", "value")
    assert missing.code == 1
    assert "No charm of:nothing in space" in missing.stderr
    assert "Check the id and the space: `charmspace charm ls`" in missing.stderr


def test_charm_new_ls_inspect_get_set_rm(alice: User, counter: str) -> None:
    assert [c["id"] for c in alice("--json", "charm", "ls").json()] == [counter]
    assert counter in alice("charm", "ls").stdout  # whole, never elided

    summary = alice("--json", "charm", "inspect", counter).json()
    assert summary["pattern"] == "counter"
    assert summary["result"]["value"] == 2 and summary["name"] == "Counter: 2"
    assert "Counter: 2" in alice("charm", "inspect", counter).stdout

    assert alice("--json", "charm", "get", counter, "value").json() == 2
    written = alice("--json", "charm", "set", counter, "value", "7").json()
    assert written["ok"] is True and written["seq"] > 0
    alice.settled("14", "charm", "get", counter, "doubled")

    removed = alice("charm", "rm", counter)
    assert removed.code == 0 and f"Removed {counter}" in removed.stdout
    gone = alice("charm", "get", counter, "value")
    assert gone.code == 1 and "CharmNotFoundError" in gone.stderr
    assert alice("--json", "charm", "ls").json() == []


def test_charm_new_with_an_unknown_pattern_or_input(alice: User) -> None:
    unknown = alice("charm", "new", "nope")
    assert unknown.code == 1
    assert "No installed pattern is named 'nope'; installed: counter, " in unknown.stderr
    assert "`charmspace patterns`" in unknown.stderr  # not only the HTTP route
    wrong = alice("charm", "new", "counter", "--input", 'value="many"')
    assert wrong.code == 1 and "SchemaError" in wrong.stderr


def test_charm_call_without_and_with_wait(alice: User, counter: str) -> None:
    sent = alice("--json", "charm", "call", counter, "adjust", '{"amount": 3}')
    assert sent.code == 0 and sent.json() == {"accepted": True}
    waited = alice("--json", "charm", "call", counter, "increment", "--wait").json()
    assert waited["ok"] is True and waited["error"] is None
    assert alice("--json", "charm", "get", counter, "value").json() == 6  # 2 + 3 + 1


def test_charm_call_an_event_the_handler_refuses(alice: User, counter: str) -> None:
    refused = alice("charm", "call", counter, "adjust", '{"amount": "lots"}', "--wait")
    assert refused.code == 1
    assert "SchemaError" in refused.stderr and "amount" in refused.stderr
    missing = alice("charm", "call", counter, "reset", "--wait")
    assert missing.code == 1 and "UnknownStreamError" in missing.stderr
    assert alice("--json", "charm", "get", counter, "value").json() == 2


def test_charm_link_and_its_refusals(alice: User, bob: User, counter: str) -> None:
    follower = alice("--json", "charm", "new", "counter").json()["id"]
    linked = alice("--json", "charm", "link", f"{counter}/value", f"{follower}/value")
    assert linked.code == 0, linked.output
    assert linked.json()["ok"] is True
    alice.settled("4", "--json", "charm", "get", follower, "doubled")

    no_input = alice("charm", "link", counter, f"{follower}/nope")
    assert no_input.code == 1
    assert "has no input 'nope'" in no_input.stderr and "value" in no_input.stderr

    # Bob may read Alice's home space but not write it: he cannot link into it.
    alice("space", "acl", "set", bob.did, "READ")
    bobs = bob("--json", "charm", "new", "counter").json()["id"]
    refused = bob("--space", alice.did, "charm", "link", f"{bobs}/value", f"{follower}/value")
    assert refused.code == 1 and "AuthorizationError" in refused.stderr
    # …but he may link his counter to hers: READ on the source is enough.
    from_alice = bob(
        "charm", "link", "--from-space", alice.did, f"{counter}/value", f"{bobs}/value"
    )
    assert from_alice.code == 0, from_alice.output
    assert bob("--json", "charm", "get", bobs, "value").json() == 2


def log_until(user: User, counter: str, kinds: list[str]) -> list[Any]:
    """The charm's log once its causes are ``kinds`` (derived values commit shortly after)."""
    for _ in range(100):
        log: list[Any] = user("--json", "charm", "log", counter).json()
        if [e["cause"]["kind"] for e in log] == kinds:
            return log
        time.sleep(0.05)
    assert [e["cause"]["kind"] for e in log] == kinds
    return log


def test_charm_log_since_and_table(alice: User, counter: str) -> None:
    alice("charm", "call", counter, "increment", "--wait")
    log = log_until(alice, counter, ["create", "derived", "event", "derived"])
    assert all(e["principal"] == alice.did for e in log)
    last = log[-1]["seq"]
    assert alice("--json", "charm", "log", counter, "--since", str(last)).json() == []
    event = next(e for e in log if e["cause"]["kind"] == "event")
    later = alice("--json", "charm", "log", counter, "--since", str(event["seq"] - 1)).json()
    assert later[0] == event
    table = alice("charm", "log", counter).stdout
    assert "event on stream increment" in table and "create counter" in table


def test_favorite_add_ls_rm_and_wish(alice: User, counter: str) -> None:
    added = alice("--json", "favorite", "add", counter).json()
    assert added == {"id": counter, "space": alice.did, "name": "counter", "tags": ["#counter"]}
    assert alice("--json", "favorite", "ls").json() == [added]
    assert counter in alice("favorite", "ls").stdout
    wished = alice("wish", "#counter")
    assert wished.code == 0 and counter in wished.stdout
    assert alice("--json", "wish", "#counter").json()["result"] == added

    removed = alice("favorite", "rm", counter)
    assert removed.code == 0
    assert removed.stdout == f"Unfavorited {counter}.\n"
    assert alice("--json", "favorite", "ls").json() == []
    again = alice("favorite", "rm", counter)  # regression: it said "Unfavorited" again
    assert again.code == 0
    assert again.stdout.startswith(f"{counter} (in {alice.did}) is not one of your favorites")
    none = alice("wish", "#counter")
    assert none.code == 1 and "none of your favorites is tagged #counter" in none.stderr
    bad = alice("wish", "counter")
    assert bad.code == 1 and "#" in bad.stderr


def test_another_space_by_name_or_did(alice: User) -> None:
    work = alice("--json", "space", "new", "work").json()["space"]
    by_name = alice("--json", "--space", "work", "charm", "new", "counter").json()
    assert by_name["space"] == work
    assert [c["id"] for c in alice("--json", "--space", work, "charm", "ls").json()] == [
        by_name["id"]
    ]


def test_charm_watch_json_prints_one_object_per_change(alice: User, counter: str) -> None:
    watcher = alice.popen("--json", "charm", "watch", counter)  # the whole result
    try:
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())
        assert first["value"]["value"] == 2 and first["seq"] > 0
        alice("charm", "set", counter, "value", "9")
        changed = json.loads(watcher.stdout.readline())
        assert changed["value"]["value"] == 9 and changed["seq"] > first["seq"]
    finally:
        watcher.send_signal(signal.SIGINT)
        code = watcher.wait(timeout=10)
    assert code == 0


def test_charm_watch_of_a_charm_that_is_not_there(alice: User) -> None:
    missing = alice("charm", "watch", "of:nothing", "value")
    assert missing.code == 1
    assert "Traceback" not in missing.output and "Error:" in missing.stderr
