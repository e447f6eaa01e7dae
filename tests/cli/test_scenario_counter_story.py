"""The CLI user story, each step a real ``charmspace`` process against a real server.

Alice makes a space and a counter, drives it, edits it, is refused an edit of
a derived cell, links a second counter to it, favorites and wishes for it,
watches it change when Bob changes it (once she shared the space), and reads
in the log who made each commit, as whom, and why.
"""

from __future__ import annotations

import signal
import subprocess

from cli_user import User


def test_a_counter_from_the_command_line(alice: User, bob: User) -> None:
    space = alice.run("space", "new", "work")
    assert space.code == 0, space.output
    work = alice.run("--json", "space", "new", "work").json()["space"]
    assert work in space.stdout and work.startswith("did:key:")

    def at_work(*args: str) -> list[str]:
        return ["--space", "work", *args]

    created = alice.run(*at_work("charm", "new", "counter", "--input", "value=5"))
    assert created.code == 0, created.output
    counter = created.stdout.strip()
    assert counter.startswith("of:")

    called = alice.run(*at_work("charm", "call", counter, "increment", "--wait"))
    assert called.code == 0, called.output
    assert "Committed increment" in called.stdout
    assert alice.run(*at_work("charm", "get", counter, "value")).stdout.strip() == "6"
    alice.settled("12", *at_work("charm", "get", counter, "doubled"), as_process=True)

    edited = alice.run(*at_work("charm", "set", counter, "value", "10"))
    assert edited.code == 0, edited.output
    alice.settled("20", *at_work("charm", "get", counter, "doubled"), as_process=True)

    refused = alice.run(*at_work("charm", "set", counter, "doubled", "3"))
    assert refused.code == 1
    assert "is derived by action" in refused.stderr and "ReadOnlyCellError" in refused.stderr
    assert "Traceback" not in refused.output
    alice.settled("20", *at_work("charm", "get", counter, "doubled"), as_process=True)

    follower = alice.run(*at_work("charm", "new", "counter")).stdout.strip()
    linked = alice.run(*at_work("charm", "link", f"{counter}/value", f"{follower}/value"))
    assert linked.code == 0, linked.output
    alice.settled("20", *at_work("charm", "get", follower, "doubled"), as_process=True)

    assert alice.run(*at_work("favorite", "add", counter)).code == 0
    wished = alice.run("--json", "wish", "#counter").json()
    assert wished["result"]["id"] == counter
    assert wished["result"]["space"] == work

    # Bob can do nothing in Alice's space until she shares it.
    assert bob.run("--space", work, "charm", "get", counter, "value").code == 1
    shared = alice.run(*at_work("space", "acl", "set", bob.did, "write"))
    assert shared.code == 0, shared.output
    assert bob.run("--space", work, "charm", "get", counter, "value").stdout.strip() == "10"

    watcher = alice.popen(*at_work("charm", "watch", counter, "value"))
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().strip().endswith("] 10")  # the value now
        bumped = bob.run("--space", work, "charm", "call", counter, "increment", "--wait")
        assert bumped.code == 0, bumped.output
        assert watcher.stdout.readline().strip().endswith("] 11")  # Bob's change, as it happened
    finally:
        watcher.send_signal(signal.SIGINT)
        try:
            code = watcher.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watcher.kill()
            raise
    assert code == 0
    assert "Traceback" not in (watcher.stderr.read() if watcher.stderr else "")

    log = alice.run("--json", *at_work("charm", "log", counter)).json()
    causes = [(entry["principal"], entry["cause"]["kind"]) for entry in log]
    assert causes[0] == (alice.did, "create")
    assert (alice.did, "edit") in causes
    events = [entry for entry in log if entry["cause"]["kind"] == "event"]
    assert [(e["principal"], e["cause"]["stream"]) for e in events] == [
        (alice.did, "increment"),
        (bob.did, "increment"),
    ]
    derived = [entry for entry in log if entry["cause"]["kind"] == "derived"]
    assert derived and all(e["principal"] == alice.did for e in derived)  # the creator
    table = alice.run(*at_work("charm", "log", counter))
    assert table.code == 0
    assert "event on stream increment" in table.stdout
    assert "direct edit" in table.stdout and "derived values" in table.stdout
    assert "(you)" in table.stdout
