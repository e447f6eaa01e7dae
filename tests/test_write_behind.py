"""A file written behind its changes: coalesced, in order, the last state on stop, failures once."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from charmspace import write_behind
from charmspace.write_behind import WriteBehind


class State:
    """A value that changes on the loop, and what each write of it wrote."""

    def __init__(self) -> None:
        self.value = 0
        self.written: list[int] = []

    def take(self) -> int:
        return self.value

    def render(self, value: int) -> str:
        self.written.append(value)
        return json.dumps({"value": value})


def on_disk(path: Path) -> Any:
    return json.loads(path.read_text())


async def test_many_changes_are_one_write_per_interval_and_the_last_is_written_on_stop(
    tmp_path: Path,
) -> None:
    state = State()
    file = WriteBehind(tmp_path / "state.json", state.take, state.render, what="state")
    file.interval = 3600  # after its first write, the writer waits for the stop
    file.start()
    for n in range(1, 501):
        state.value = n
        file.changed()
        await asyncio.sleep(0)  # the writer may run between changes
    await file.stop()
    assert len(state.written) <= 2  # the first change, then the last state on stop
    assert state.written[-1] == 500
    assert on_disk(file.path) == {"value": 500}
    assert stat.S_IMODE(file.path.stat().st_mode) == 0o600


async def test_changes_made_during_a_write_are_written_after_it_never_before(
    tmp_path: Path,
) -> None:
    entered, gate = threading.Event(), threading.Event()
    state = State()

    def slow_render(value: int) -> str:
        entered.set()
        gate.wait(timeout=30)  # the first write is held until the test lets it go
        return state.render(value)

    file = WriteBehind(tmp_path / "state.json", state.take, slow_render, what="state")
    file.start()
    state.value = 1
    file.changed()
    await asyncio.to_thread(entered.wait, 30)
    for n in (2, 3):
        state.value = n
        file.changed()
    stopping = asyncio.ensure_future(file.stop())
    await asyncio.sleep(0)
    assert not stopping.done()  # a stop waits for the write in flight
    gate.set()
    await stopping
    assert state.written == [1, 3]
    assert on_disk(file.path) == {"value": 3}


def test_an_older_state_is_never_written_over_a_newer_one(tmp_path: Path) -> None:
    """Each snapshot carries how many changes it holds; one older than the file is dropped
    (two writers can race for the lock: the task's thread and a flush)."""
    state = State()
    file = WriteBehind(tmp_path / "state.json", state.take, state.render, what="state")
    file.changed()
    older = (file._changes, 1)
    file.changed()
    file._write(file._changes, 2)
    file._write(*older)
    assert on_disk(file.path) == {"value": 2}
    assert state.written == [2]


def test_a_failed_write_is_logged_once_until_one_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data directory should be")
    state = State()
    file = WriteBehind(blocker / "state.json", state.take, state.render, what="state")
    with caplog.at_level(logging.INFO, logger=write_behind.__name__):
        for n in range(1, 4):
            state.value = n
            file.changed()
            file.flush()
        assert file.stale  # kept in memory, written at the next chance
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        message = warnings[0].getMessage()
        assert str(file.path) in message and "make the data directory writable" in message
        blocker.unlink()
        file.flush()  # the next change, or the stop, writes what was missed
        assert on_disk(file.path) == {"value": 3} and not file.stale
        assert "is written again" in caplog.records[-1].getMessage()


async def test_a_writer_stopped_with_nothing_changed_writes_nothing(tmp_path: Path) -> None:
    state = State()
    file = WriteBehind(tmp_path / "state.json", state.take, state.render, what="state")
    file.start()
    await file.stop()
    assert not file.path.exists() and state.written == []


async def test_a_writer_that_fails_unexpectedly_does_not_stop_the_shutdown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(value: int) -> str:
        raise TypeError("not JSON")

    file = WriteBehind(tmp_path / "state.json", int, broken, what="state")
    file.start()
    file.changed()
    await file.stop()  # logged, not raised
    assert "writing the state file" in caplog.text and "not JSON" in caplog.text
