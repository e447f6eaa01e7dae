"""The root command: --version, --help everywhere, exit statuses, and no server answering."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import typer
from cli_user import make_user
from typer.testing import CliRunner

from charmspace import __version__
from charmspace.cli import app
from real_server import free_port, start_server

CHARMSPACE = str(Path(sys.executable).parent / "charmspace")


def _commands() -> list[list[str]]:
    """Every command path: ``[]``, ``["charm"]``, ``["charm", "new"]``, …"""
    root = typer.main.get_command(app)
    found: list[list[str]] = []

    def walk(command: click.Command, path: list[str]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    return found


def test_version_prints_the_package_version() -> None:
    done = subprocess.run([CHARMSPACE, "--version"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert done.stdout == f"charmspace {__version__}\n"


@pytest.mark.parametrize("path", _commands(), ids=lambda path: " ".join(path) or "root")
def test_every_command_has_help_with_a_description(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("Usage:")
    description = lines[1]
    assert not description.startswith("╭"), f"`charmspace {' '.join(path)}` has no description"


def test_every_command_of_the_issue_exists() -> None:
    listed = {" ".join(path) for path in _commands()}
    expected = {
        "id new", "id did", "id derive",
        "space new", "space ls", "space acl", "space acl ls", "space acl set", "space acl rm",
        "patterns",
        "charm new", "charm ls", "charm inspect", "charm get", "charm set", "charm call",
        "charm link", "charm rm", "charm watch", "charm log",
        "favorite add", "favorite rm", "favorite ls",
        "wish", "serve",
    }  # fmt: skip
    assert expected <= listed


def test_no_server_answering_says_how_to_start_one(tmp_path: Path) -> None:
    """Subprocess: the message a user sees when they forgot `charmspace serve`."""
    url = f"http://127.0.0.1:{free_port()}"
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "CHARMSPACE_API_URL": url}
    done = subprocess.run(
        [CHARMSPACE, "charm", "ls"], capture_output=True, text=True, timeout=30, env=env
    )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"Error: No charmspace server answers at {url}; is the server running? "
        "Start it with `charmspace serve`."
    )
    assert done.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["charm", "watch", "of:x", "value"],
        ["patterns"],
        ["space", "ls"],
    ],
)
def test_no_server_answering_for_any_command(tmp_path: Path, args: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    key = str(tmp_path / "me.pem")
    result = CliRunner().invoke(app, ["--api-url", url, *args], env={"CHARMSPACE_IDENTITY": key})
    assert result.exit_code == 1, result.output
    assert f"No charmspace server answers at {url}" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:abc", "invalid port: 'abc'"),
        ("127.0.0.1:99999", "port 99999 is outside 1-65535"),
        ("ftp://127.0.0.1", "the scheme is 'ftp'"),
        ("http://", "it names no host"),
        ("my server:8000", "a host name has no spaces"),
    ],
)
def test_an_api_url_no_request_can_use_is_a_usage_error(
    tmp_path: Path, url: str, reason: str
) -> None:
    """Regression: a port that is not a number gave a traceback from httpx; a wrong
    scheme or an empty host read as "no server answers"."""
    key = str(tmp_path / "me.pem")
    result = CliRunner().invoke(
        app, ["--api-url", url, "charm", "ls"], env={"CHARMSPACE_IDENTITY": key}
    )
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"Cannot use the API URL {url!r}: {reason}" in result.stderr
    assert "e.g. 127.0.0.1:8000" in result.stderr
    assert "Traceback" not in result.output


def test_a_wrong_api_url_does_not_stop_commands_that_need_no_server(tmp_path: Path) -> None:
    key = tmp_path / "me.pem"
    CliRunner().invoke(app, ["id", "new", "--out", str(key)])
    result = CliRunner().invoke(app, ["id", "did", str(key)], env={"CHARMSPACE_API_URL": "ftp://x"})
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("did:key:z6Mk")


def test_the_default_identity_is_created_on_first_use(tmp_path: Path) -> None:
    """The same file `charmspace serve` uses for the local user: made 0600 when missing."""
    key = tmp_path / "config" / "identity.pem"
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(
        app, ["--api-url", url, "space", "ls"], env={"CHARMSPACE_IDENTITY": str(key)}
    )
    assert result.exit_code == 1  # no server, but the key exists now
    assert key.stat().st_mode & 0o777 == 0o600


def test_an_identity_file_that_does_not_exist_is_not_created(tmp_path: Path) -> None:
    """Only the default key file is created on first use; a named one is a typo until made."""
    missing = tmp_path / "typo.pem"
    result = CliRunner().invoke(app, ["--identity", str(missing), "space", "ls"])
    assert result.exit_code == 1
    assert f"Key file {missing} does not exist" in result.stderr
    assert not missing.exists()


def test_an_identity_that_is_not_a_key_is_a_domain_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    result = CliRunner().invoke(app, ["--identity", str(bad), "space", "ls"])
    assert result.exit_code == 1
    assert f"key file {bad}" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["nope"],
        ["charm"],
        ["charm", "get", "of:x"],
        ["charm", "new", "counter", "--input", "value"],
        ["charm", "new", "counter", "--input", "title=hello"],
        ["charm", "set", "of:x", "value", "{not json"],
        ["charm", "call", "of:x", "adjust", "amount: 1"],
        ["charm", "link", "of:x/value", "of:y"],
        ["charm", "log", "of:x", "--since", "-1"],
        ["space", "acl", "set", "did:key:z6Mk", "ADMIN"],
        ["--json=maybe", "space", "ls"],
    ],
)
def test_usage_errors_exit_2_before_any_request(args: list[str], tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: a request would exit 1
    result = CliRunner().invoke(
        app, ["--api-url", url, "--identity", str(tmp_path / "me.pem"), *args]
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_a_json_value_that_is_not_json_says_how_to_quote_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["charm", "new", "notes", "--input", "title=Groceries"])
    assert result.exit_code == 2
    assert "'Groceries' is not JSON" in result.output
    assert "'\"hello\"'" in result.output


def test_a_busy_server_says_why_and_when_to_try_again(tmp_path: Path) -> None:
    server = start_server(tmp_path, env={"CHARMSPACE_MAX_NONCES_PER_DID": "2"})
    try:
        user = make_user("alice", tmp_path, server.url)
        first_signed = time.time()
        assert [user("charm", "ls").code for _ in range(2)] == [0, 0]
        left = first_signed + 300 - time.time()  # until the oldest nonce is forgotten
        refused = user("charm", "ls")
    finally:
        assert server.stop() == 0, server.log_text()
    assert refused.code == 1
    assert "Error: This identity sent more than 2 signed requests" in refused.stderr
    assert "slow down and retry later" in refused.stderr  # the server's message
    wait = re.search(r"send it again in (\d+) s", refused.stderr)
    assert wait is not None and int(left) - 3 <= int(wait[1]) <= int(left) + 2
    assert "Traceback" not in refused.output


SLOW_PATTERN = """
import asyncio
from pathlib import Path

from charmspace import Cell, Default, handler, pattern


@handler
async def slow(event: dict, *, value: Cell[int]) -> None:
    Path(event["marker"]).write_text("started")
    await asyncio.sleep(3)  # Ctrl-C comes well before this ends
    value.set(value.get() + 1)


@pattern
def sleeper(value: Default[int, 0]):
    return {"value": value, "slow": slow.bind(value=value)}
"""


def test_ctrl_c_while_call_waits_says_the_event_may_still_commit(tmp_path: Path) -> None:
    """Regression: Ctrl-C during `charm call --wait` ended with status 130 and no word,
    leaving the user to guess whether the event was sent."""
    patterns = tmp_path / "patterns"
    patterns.mkdir()
    (patterns / "sleeper.py").write_text(SLOW_PATTERN)
    server = start_server(tmp_path, "--patterns", str(patterns))
    try:
        user = make_user("alice", tmp_path, server.url)
        charm = user("charm", "new", "sleeper").stdout.strip()
        marker = tmp_path / "started"
        waiting = subprocess.Popen(
            [CHARMSPACE, "charm", "call", charm, "slow", f'{{"marker": "{marker}"}}', "--wait"],
            env=user.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As at a terminal: a test runner in the background may have SIGINT ignored.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 15
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), server.log_text()
        waiting.send_signal(signal.SIGINT)
        out, err = waiting.communicate(timeout=15)
    finally:
        assert server.stop() == 0, server.log_text()
    assert waiting.returncode == 130
    assert out == ""
    assert err.startswith("Stopped waiting. The event may have reached slow already")
    assert f"`charmspace charm log {charm}` shows whether it did" in err
    assert "Traceback" not in err
