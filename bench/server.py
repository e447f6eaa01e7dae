"""A process to measure against: ``charmspace serve`` (or any ASGI server) on a loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(args: list[str], url: str, cwd: Path) -> subprocess.Popen[bytes]:
    """Run ``args`` in ``cwd`` (also its HOME, no ``CHARMSPACE_*`` settings) until ``url``
    answers ``/_health``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARMSPACE_")}
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env={**env, "HOME": str(cwd)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/_health", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"{args} did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)


def charmspace_serve(port: int, data: Path) -> list[str]:
    """The command line of a ``charmspace serve`` on ``port`` keeping its data in ``data``."""
    return [sys.executable, "-m", "charmspace", "serve", "--port", str(port), "--data", str(data)]


@contextmanager
def serving(prefix: str) -> Iterator[str]:
    """A ``charmspace serve`` (SQLite in a temporary directory) for the block: its URL."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = Path(tmp)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start(charmspace_serve(port, root / "data"), url, root)
        try:
            yield url
        finally:
            stop(server)
