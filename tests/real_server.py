"""A charmspace server as a real process on loopback, for the suites that need one.

``start_server`` runs ``python -m charmspace serve`` on a free port with HOME
and data in a temporary directory, and waits until ``/_health`` answers.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from charmspace.identity import Identity
from charmspace.signing import sign_request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    data: Path
    log: Path

    def stop(self) -> int:
        """SIGTERM, then the exit status (it must stop by itself within 15 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=15)

    @property
    def ws_url(self) -> str:
        """Where the live API's WebSocket is (``/api/ws``)."""
        return self.url.replace("http://", "ws://") + "/api/ws"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def login_link(self) -> str:
        """The one-time link the server prints once it listens (waits for the line)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            match = re.search(r"http://\S+/login\?token=\S+", self.log_text())
            if match:
                return match.group()
            time.sleep(0.02)
        raise AssertionError(f"no login link printed:\n{self.log_text()}")


def signed_upgrade(identity: Identity) -> dict[str, str]:
    """The headers of a WebSocket upgrade to ``/api/ws`` signed by ``identity`` (single use)."""
    header = sign_request(identity, "GET", "/api/ws", b"", int(time.time()))
    return {"Authorization": header.render()}


def start_server(
    tmp_path: Path,
    *extra: str,
    data: Path | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
) -> ServerProcess:
    """``python -m charmspace serve`` on a loopback port, HOME and data in ``tmp_path``.

    ``env`` adds variables (``CHARMSPACE_*`` settings) to a clean environment;
    ``port`` restarts a server where its clients expect it (default: a free port).
    """
    port = port or free_port()
    data = data or tmp_path / "data"
    log = tmp_path / f"server-{port}.log"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHARMSPACE_")}
    env = {**clean, "HOME": str(tmp_path), **(env or {})}
    args = [sys.executable, "-m", "charmspace", "serve", "--port", str(port), "--data", str(data)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*args, *extra], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(process, url, data, log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"the server exited with {process.returncode}:\n{server.log_text()}"
            )
        try:
            if httpx.get(f"{url}/_health", timeout=1).json() == {"ok": True}:
                return server
        except httpx.HTTPError:
            time.sleep(0.05)
    server.stop()
    raise AssertionError(f"the server did not become healthy:\n{server.log_text()}")
