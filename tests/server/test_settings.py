"""Settings: defaults that work on a laptop, CHARMSPACE_* variables, a .env file, flags."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charmspace.cli import app
from charmspace.server import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("CHARMSPACE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.data == Path(".charmspace")
    assert settings.storage_url == f"sqlite:///{Path('.charmspace/store').resolve()}"
    assert settings.identity_path == Path(".charmspace/server.pem")


def test_environment_then_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CHARMSPACE_PORT=9001\nCHARMSPACE_STORAGE=memory://\n")
    assert Settings().port == 9001
    monkeypatch.setenv("CHARMSPACE_PORT", "9002")
    settings = Settings()
    assert settings.port == 9002
    assert settings.storage_url == "memory://"
    assert Settings(port=9003).port == 9003  # what the flags pass


def test_every_setting_is_documented() -> None:
    fields = Settings.model_fields
    assert all(field.description for field in fields.values())
    docs = (Path(__file__).parents[2] / "docs" / "server.md").read_text()
    for name in fields:
        assert f"CHARMSPACE_{name.upper()}" in docs


def test_serve_help_lists_its_flags() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for flag in ("--host", "--port", "--data", "--storage", "--identity", "--log-json"):
        assert flag in result.output
