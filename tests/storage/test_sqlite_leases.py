"""The lease on a space between real processes sharing one SQLite directory.

Each host is a child process that takes the lease and reports on its stdout;
the test tells it to release on its stdin, or stops (SIGSTOP) or kills
(SIGKILL) it. Leases last 1 s (renewed every third of that) unless a test says
otherwise, so every wait here is a few seconds at most.
"""

from __future__ import annotations

import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from charmspace.identity import Identity
from charmspace.storage import Capability, open_storage
from charmspace.types import DID

SECONDS = 1.0
A: DID = Identity.from_passphrase("lease suite: a").did
B: DID = Identity.from_passphrase("lease suite: b").did

Start = Callable[..., "Host"]

HOST = """
import asyncio, sys, time
from charmspace.identity import Identity
from charmspace.storage import open_storage
from charmspace.storage.interface import AsyncStorage

directory, name, space, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
holder = Identity.from_passphrase("lease suite: " + name).did
store = AsyncStorage(open_storage("sqlite:///" + directory))


async def report_loss(lease):
    error = await lease.wait_lost()
    print("lost", time.time(), error.reason, flush=True)


async def main():
    print("waiting", time.time(), flush=True)
    async with store.lease(space, holder, seconds=seconds) as lease:
        print("held", time.time(), lease.generation, flush=True)
        watcher = asyncio.create_task(report_loss(lease))
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        watcher.cancel()
        print("releasing", time.time(), int(lease.lost), flush=True)
    print("released", time.time(), flush=True)


asyncio.run(main())
"""


class Host:
    """A child process hosting the space as ``name``; its stdout lines arrive on a queue."""

    def __init__(self, directory: Path, name: str, space: DID, seconds: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOST, str(directory), name, space, str(seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[list[str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n").split(maxsplit=2))

    def expect(self, event: str, timeout: float = 10.0) -> list[str]:
        """The next line, which must report ``event``: ``[event, time, detail…]``."""
        line = self.lines.get(timeout=timeout)
        assert line[0] == event, line
        return line

    def nothing_for(self, seconds: float) -> bool:
        try:
            line = self.lines.get(timeout=seconds)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected {line}")

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # SIGKILL ends a stopped process too
        self.process.wait()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    """A SQLite storage holding A's home space, which B may read (and so host)."""
    path = tmp_path / "store"
    with open_storage(f"sqlite:///{path}") as storage:
        storage.create_space(A, A, {B: Capability.READ})
    return path


@pytest.fixture
def start(directory: Path) -> Iterator[Start]:
    """``start(name, seconds=1)``: a new host process; killed if need be after the test."""
    hosts: list[Host] = []

    def start_(name: str, seconds: float = SECONDS) -> Host:
        host = Host(directory, name, A, seconds)
        hosts.append(host)
        return host

    yield start_
    for host in hosts:
        host.stop()


def test_b_waits_while_a_holds_renewing_past_its_seconds_and_gets_it_when_a_releases(
    start: Start,
) -> None:
    a = start("a")
    a.expect("waiting")
    assert a.expect("held")[2] == "1"  # the first holder of the space
    b = start("b")
    b.expect("waiting")
    assert b.nothing_for(3 * SECONDS)  # A renews, so its 1 s lease keeps B out for 3 s
    a.release()
    assert a.expect("releasing")[2] == "0"  # never lost
    released = float(a.expect("released")[1])
    _, at, generation = b.expect("held", timeout=2.0)
    assert float(at) >= released and generation == "2"


def test_a_released_space_is_taken_at_once_not_when_the_lease_would_expire(
    start: Start,
) -> None:
    a = start("a", 10.0)
    a.expect("waiting")
    a.expect("held")
    b = start("b")
    b.expect("waiting")
    b.nothing_for(0.5)
    a.release()
    a.expect("releasing")
    released = float(a.expect("released")[1])
    _, at, _ = b.expect("held", timeout=3.0)  # A's lease would have run for 6.7 s or more
    assert float(at) - released < 3.0


def test_a_killed_holder_keeps_b_out_until_its_lease_expires(start: Start, directory: Path) -> None:
    a = start("a")
    a.expect("waiting")
    a.expect("held")
    b = start("b")
    b.expect("waiting")
    b.nothing_for(0.5)
    a.process.send_signal(signal.SIGKILL)
    a.process.wait()
    killed = time.time()
    expires = _recorded_expiry(directory)
    assert expires <= killed + SECONDS
    _, at, _ = b.expect("held", timeout=3 * SECONDS)
    assert expires <= float(at) < max(expires, killed) + 0.5  # once the dead one's lease ran out


def test_a_stalled_holder_whose_lease_was_taken_learns_it_lost_it(
    start: Start,
) -> None:
    a = start("a")
    a.expect("waiting")
    a.expect("held")
    b = start("b")
    b.expect("waiting")
    a.process.send_signal(signal.SIGSTOP)  # a long stall: no renewal while stopped
    _, taken, _ = b.expect("held", timeout=3 * SECONDS)
    a.process.send_signal(signal.SIGCONT)
    _, at, reason = a.expect("lost", timeout=2.0)
    assert float(at) > float(taken)
    assert f"{B} took the space over" in reason
    a.release()
    assert a.expect("releasing")[2] == "1"
    a.expect("released")
    assert b.nothing_for(1.5 * SECONDS)  # A's exit released nothing of B's: B still holds it
    b.release()
    assert b.expect("releasing")[2] == "0"


def _recorded_expiry(directory: Path) -> float:
    db = sqlite3.connect(directory / "leases.sqlite")
    try:
        (expires,) = db.execute("SELECT expires FROM leases").fetchone()
    finally:
        db.close()
    return float(expires)
