"""One server per data directory: a second `charmspace serve` on it stops at once."""

from __future__ import annotations

import os
import signal
import socket
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


def serve_with(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHARMSPACE_")}
    return subprocess.run(
        [sys.executable, "-m", "charmspace", "serve", "--port", str(free_port()), *extra],
        cwd=tmp_path,
        env={**clean, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_data_directory_that_cannot_be_made_stops_the_server_in_one_line(
    tmp_path: Path,
) -> None:
    """Regression: a --data path that was a file, or under one, ended in a traceback."""
    (tmp_path / "notes.txt").write_text("not a directory")
    for data, reason in [("notes.txt", "it is a file"), ("notes.txt/data", "not a directory")]:
        done = serve_with(tmp_path, "--data", data)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"charmspace serve: Cannot use {data} as the data directory")
        assert reason in done.stderr
        assert "Give --data" in done.stderr
        assert "Traceback" not in done.stderr
    assert (tmp_path / "notes.txt").read_text() == "not a directory"


def test_a_storage_url_that_cannot_be_opened_stops_the_server_in_one_line(
    tmp_path: Path,
) -> None:
    """Regression: the storage opened in uvicorn's startup, whose failure is a traceback."""
    done = serve_with(tmp_path, "--data", "data", "--storage", "postgres://db/charms")
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "charmspace serve: Cannot open storage 'postgres://db/charms': unknown scheme "
        "'postgres'. Use memory:// or sqlite:///path/to/dir.\n"
    )


def test_an_unsafe_local_key_file_stops_the_server_in_one_line(tmp_path: Path) -> None:
    key = tmp_path / "me.pem"
    subprocess.run([sys.executable, "-m", "charmspace", "id", "new", "--out", str(key)], check=True)
    key.chmod(0o644)
    done = serve_with(tmp_path, "--data", "data", "--identity", str(key))
    assert done.returncode == 2, done.stderr
    assert f"Run `chmod 600 {key}`" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_server_that_fails_to_start_leaves_the_disk_as_it_found_it(tmp_path: Path) -> None:
    """Regression: a bad --storage left an empty data directory holding serve.lock."""
    bad = ("--storage", "postgres://db/charms")
    done = serve_with(tmp_path, "--data", "new/data", *bad)
    assert done.returncode == 2, done.stderr
    assert not (tmp_path / "new").exists()  # both directories it made are gone again

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    done = serve_with(tmp_path, "--data", "kept", *bad)
    assert done.returncode == 2, done.stderr
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]  # no serve.lock left


def test_a_taken_port_leaves_no_data_directory_behind(tmp_path: Path) -> None:
    """A failure inside uvicorn's start (the port is taken, exit status 3) cleans up too."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CHARMSPACE_")}
        done = subprocess.run(
            [sys.executable, "-m", "charmspace", "serve", "--port", str(port), "--data", "d",
             "--storage", "memory://", "--identity", str(tmp_path / "me.pem")],
            cwd=tmp_path, env={**clean, "HOME": str(tmp_path)},
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert not (tmp_path / "d" / "serve.lock").exists()
