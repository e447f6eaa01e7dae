"""``charmspace.Runtime``'s default identity: the local user's, over storage that persists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from charmspace import Runtime, StorageURLError
from charmspace.identity import Identity

PROGRAM = """
import asyncio, sys
import pytest

from charmspace import Runtime, StorageURLError


async def main() -> None:
    async with Runtime(sys.argv[1]) as runtime:
        if sys.argv[2] == "create":
            charm = await runtime.charms.create("counter", inputs={"value": 41})
            print(charm.id)
        else:
            charm = await runtime.charms.get(runtime.principal, sys.argv[2])
            print(charm["value"].get())
        print(runtime.principal)

asyncio.run(main())
"""


def run(tmp_path: Path, env: dict[str, str], *args: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHARMSPACE_")}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, *args],
        env={**clean, "HOME": str(tmp_path / "home"), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_second_process_reads_the_first_ones_charms(tmp_path: Path) -> None:
    """Regression: with no identity, every run made a new key, so each run's charms were
    orphaned and a second process got AuthorizationError reading the first one's."""
    url = "sqlite:///./.charmspace"
    charm_id, first_user = run(tmp_path, {}, url, "create")
    value, second_user = run(tmp_path, {}, url, charm_id)
    assert value == "41"
    assert second_user == first_user
    key = tmp_path / "home" / ".config" / "charmspace" / "identity.pem"
    assert Identity.load(key).did == first_user
    assert key.stat().st_mode & 0o777 == 0o600


def test_charmspace_identity_names_the_key_file(tmp_path: Path) -> None:
    key = tmp_path / "me.pem"
    mine = Identity.generate()
    mine.save(key)
    _, user = run(tmp_path, {"CHARMSPACE_IDENTITY": str(key)}, "sqlite:///./store", "create")
    assert user == mine.did
    assert not (tmp_path / "home" / ".config").exists()


async def test_an_explicit_identity_wins(tmp_path: Path, local_identity_file: Path) -> None:
    me = Identity.from_passphrase("explicit")
    async with Runtime(f"sqlite:///{tmp_path / 'store'}", identity=me) as runtime:
        assert runtime.principal == me.did


async def test_over_sqlite_the_runtime_acts_as_the_local_user(
    tmp_path: Path, local_identity_file: Path
) -> None:
    async with Runtime(f"sqlite:///{tmp_path / 'store'}") as runtime:
        assert runtime.principal == Identity.load(local_identity_file).did


async def test_in_memory_each_runtime_is_a_new_user() -> None:
    async with Runtime("memory://") as one, Runtime("memory://") as two:
        assert one.principal != two.principal


async def test_a_wrong_storage_url_is_refused_before_a_key_file_is_made(tmp_path: Path) -> None:
    key = tmp_path / "never.pem"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CHARMSPACE_IDENTITY", str(key))
        with pytest.raises(StorageURLError, match="sqlite URLs have no host"):
            Runtime("sqlite://store")
    assert not key.exists()


@pytest.mark.parametrize("storage", [None, 3, Path("store")])
def test_a_storage_that_is_neither_a_url_nor_a_storage_is_refused(storage: object) -> None:
    """Regression: ``Runtime(None)`` raised a bare AttributeError ('no attribute service')."""
    with pytest.raises(StorageURLError, match="a storage URL is a string"):
        Runtime(storage)  # type: ignore[arg-type]
