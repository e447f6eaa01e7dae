"""One server per data directory: a second `charmspace serve` on it stops at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from real_server import free_port, start_server


def serve(tmp_path: Path, data: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHARMSPACE_")}
    port = str(free_port())
    return subprocess.run(
        [sys.executable, "-m", "charmspace", "serve", "--port", port, "--data", str(data)],
        cwd=tmp_path,
        env={**clean, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_second_server_on_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    first = start_server(tmp_path)
    try:
        second = serve(tmp_path, first.data)
        assert second.returncode == 3
        assert f"process {first.process.pid}" in second.stderr
        assert "--data" in second.stderr  # says what to do
        assert "Traceback" not in second.stderr
    finally:
        assert first.stop() == 0


def test_the_directory_is_free_again_once_its_server_is_gone(tmp_path: Path) -> None:
    first = start_server(tmp_path)
    first.process.send_signal(signal.SIGKILL)  # no clean shutdown: the kernel frees the lock
    first.process.wait(10)
    again = start_server(tmp_path, data=first.data)
    assert again.stop() == 0
