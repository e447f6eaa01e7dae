"""`charmspace id`: create identities and show their DIDs (no server needed)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charmspace.cli import app
from charmspace.identity import Identity


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert "id" in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], "Create identities"),
        (["id", "--help"], "derive"),
        (["id", "new", "--help"], "--out"),
        (["id", "did", "--help"], "FILE"),
        (["id", "derive", "--help"], "--pem"),
    ],
)
def test_help(runner: CliRunner, args: list[str], expected: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0
    assert expected in result.output


def test_id_new_prints_a_pkcs8_key(runner: CliRunner) -> None:
    result = runner.invoke(app, ["id", "new"])
    assert result.exit_code == 0
    assert result.stdout.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert Identity.from_pem(result.stdout).did.startswith("did:key:z6Mk")


def test_id_new_out_writes_a_0600_file_and_reports_the_did(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "me.pem"
    result = runner.invoke(app, ["id", "new", "--out", str(path)])
    assert result.exit_code == 0
    assert result.stdout == ""
    did = Identity.load(path).did
    assert did in result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_id_new_out_refuses_to_overwrite(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "me.pem"
    path.write_text("precious")
    result = runner.invoke(app, ["id", "new", "--out", str(path)])
    assert result.exit_code == 1
    assert f"{path} already exists" in result.stderr
    assert "Traceback" not in result.output
    assert path.read_text() == "precious"


def test_id_new_out_force_overwrites(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "me.pem"
    path.write_text("old")
    result = runner.invoke(app, ["id", "new", "--out", str(path), "--force"])
    assert result.exit_code == 0
    assert Identity.load(path).did in result.stderr


def test_id_did_prints_the_did_of_a_key_file(runner: CliRunner, tmp_path: Path) -> None:
    identity = Identity.from_passphrase("common user")
    path = tmp_path / "me.pem"
    identity.save(path)
    result = runner.invoke(app, ["id", "did", str(path)])
    assert result.exit_code == 0
    assert result.stdout == "did:key:z6Mkj5HyygpAVo2baUcx7kwTRoUbbBmk5egUQPHnV8arQ3SY\n"


def test_id_did_without_a_file_is_the_local_identity_created_once(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key `charmspace serve`'s login link logs in as: $CHARMSPACE_IDENTITY, made 0600."""
    path = tmp_path / "config" / "identity.pem"
    monkeypatch.setenv("CHARMSPACE_IDENTITY", str(path))
    first = runner.invoke(app, ["id", "did"])
    assert first.exit_code == 0, first.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.stdout == f"{Identity.load(path).did}\n"
    assert runner.invoke(app, ["id", "did"]).stdout == first.stdout


def test_id_did_on_a_missing_file_names_it(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "missing.pem"
    result = runner.invoke(app, ["id", "did", str(path)])
    assert result.exit_code == 1
    assert f"Key file {path} does not exist" in result.stderr
    assert "charmspace id new" in result.stderr
    assert result.stdout == ""


def test_id_did_on_a_file_that_is_not_a_key(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    result = runner.invoke(app, ["id", "did", str(path)])
    assert result.exit_code == 1
    assert f"key file {path}" in result.stderr
    assert "not PEM" in result.stderr


def test_id_did_refuses_a_key_file_others_can_read(runner: CliRunner, tmp_path: Path) -> None:
    """What ``charmspace id new > me.pem`` leaves under a usual umask: refused until chmod 600."""
    path = tmp_path / "me.pem"
    path.write_text(runner.invoke(app, ["id", "new"]).stdout)
    path.chmod(0o644)
    result = runner.invoke(app, ["id", "did", str(path)])
    assert result.exit_code == 1
    assert f"Run `chmod 600 {path}`" in result.stderr
    assert result.stdout == ""
    path.chmod(0o600)
    assert runner.invoke(app, ["id", "did", str(path)]).stdout.startswith("did:key:z6Mk")


def test_unknown_command_is_a_usage_error(runner: CliRunner) -> None:
    assert runner.invoke(app, ["id", "nope"]).exit_code == 2


@pytest.mark.parametrize(
    ("args", "did"),
    [
        ([], "did:key:z6Mkj5HyygpAVo2baUcx7kwTRoUbbBmk5egUQPHnV8arQ3SY"),
        (["--name", "home"], "did:key:z6MkhvnQ6Sva4xmYQSi5otYCGo7z6GUNAF3ecuCZ1zLTUhiR"),
        (["--name", "test"], "did:key:z6MkmPsMDaye9nJFoZDfporjgW7koavbieMAKuqgro5nw5LH"),
    ],
)
def test_id_derive_prints_the_did(runner: CliRunner, args: list[str], did: str) -> None:
    result = runner.invoke(app, ["id", "derive", "common user", *args])
    assert result.exit_code == 0
    assert result.stdout == did + "\n"


def test_id_derive_pem_prints_the_key(runner: CliRunner) -> None:
    result = runner.invoke(app, ["id", "derive", "common user", "--name", "home", "--pem"])
    assert result.exit_code == 0
    assert result.stdout.startswith("-----BEGIN PRIVATE KEY-----\n")
    assert Identity.from_pem(result.stdout) == Identity.from_passphrase("common user").derive(
        "home"
    )


def test_id_derive_without_a_passphrase_is_a_usage_error(runner: CliRunner) -> None:
    assert runner.invoke(app, ["id", "derive"]).exit_code == 2
