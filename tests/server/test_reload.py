"""``charmspace serve --patterns DIR --reload``: an edited pattern file rebuilds its charms."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from charmspace.client import Client
from charmspace.identity import Identity

TALLY = """
from charmspace import NAME, UI, Cell, Default, derive, h, handler, pattern


@handler
def increment(event: dict, *, value: Cell[int]) -> None:
    value.set(value.get() + 1)


@pattern
def tally(value: Default[int, 0]):
    return {
        NAME: "Tally",
        UI: h("b", {}, "VERSION"),
        "value": value,
        "shown": derive(value, lambda v: v * FACTOR),
        "increment": increment.bind(value=value),
    }
"""


def write(path: Path, version: str, factor: int) -> None:
    path.write_text(TALLY.replace("VERSION", version).replace("FACTOR", str(factor)))


def eventually(read: Callable[[], Any], expected: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while (seen := read()) != expected:
        assert time.monotonic() < deadline, f"still {seen!r}, expected {expected!r}"
        time.sleep(0.1)


def test_an_edited_pattern_file_rebuilds_its_charms_keeping_their_state(
    tmp_path: Path, server_factory: Callable[..., Any]
) -> None:
    patterns = tmp_path / "patterns"
    patterns.mkdir()
    write(patterns / "tally.py", "one", 2)
    server = server_factory("--patterns", str(patterns), "--reload")
    me = Identity.generate()
    with Client(server.url, me) as client:
        client.spaces.create()
        assert "tally" in {p["name"] for p in client.patterns()}
        charm = client.charms.create("tally")["id"]
        for _ in range(3):
            assert client.stream(me.did, charm, "increment").call({})["ok"]
        shown = client.cell(me.did, charm, "shown")
        eventually(shown.get, 6)
        ui = client.cell(me.did, charm, "$UI")
        assert "one" in str(ui.get())

        write(patterns / "tally.py", "two", 10)

        eventually(shown.get, 30)
        assert client.cell(me.did, charm, "value").get() == 3  # the stored state is kept
        assert "two" in str(ui.get())
        assert client.stream(me.did, charm, "increment").call({})["ok"]
        eventually(shown.get, 40)

        (patterns / "tally.py").write_text("this is not python\n")  # a broken save
        time.sleep(1)
        assert httpx.get(f"{server.url}/_health").json() == {"ok": True}
        assert client.stream(me.did, charm, "increment").call({})["ok"]  # the old code runs
        eventually(shown.get, 50)
    assert server.stop() == 0, server.log_text()
    log = server.log_text()
    assert "reloaded tally.py: rebuilt 1 charm(s)" in log
    assert "patterns not reloaded" in log and "tally.py failed to import" in log


def test_reload_without_a_patterns_directory_is_refused(tmp_path: Path) -> None:
    for flags, message in [
        (["--reload"], "reload watches the patterns directory: give --patterns DIR too"),
        (["--patterns", str(tmp_path / "nowhere")], "is not a directory"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "charmspace", "serve", *flags],
            cwd=tmp_path,
            env={**os.environ, "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert message in done.stderr
        assert "Traceback" not in done.stderr
