"""`charmspace demo` tells the seed's story end to end, on real SQLite files."""

from __future__ import annotations

import io

from rich.console import Console
from typer.testing import CliRunner

from charmspace.cli import app
from charmspace.demo import run_demo


async def test_demo_shows_conflict_refusal_and_the_stream_refresh() -> None:
    out = io.StringIO()
    await run_demo(Console(file=out, width=200, emoji=False, highlight=False))
    text = out.getvalue()
    assert "A stale writer was stopped: Conflict in space did:key:" in text
    assert "Mallory's write was refused" in text and "it needs WRITE" in text
    assert "refused: WriteIsolationError" in text
    assert "refresh answered ok=True; token is now access-token-1" in text
    assert "Auth cell now: access-token-1" in text
    assert "token access-token-1 is valid; scanning" in text
    assert "refresh failed (invalid_grant): Google refused the refresh token" in text
    assert "auth cell still holds access-token-1" in text


def test_demo_command_exits_zero() -> None:
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "access-token-1" in result.output
