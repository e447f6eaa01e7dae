"""Someone at a terminal running ``charmspace``: in-process (Typer's runner) or as a process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from charmspace.cli import app
from charmspace.identity import Identity


@dataclass
class Ran:
    """What a ``charmspace`` run left: exit status and output."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class User:
    """Someone at a terminal: their key file, the server they talk to, how they run commands."""

    name: str
    key: Path
    url: str
    home: Path
    runner: CliRunner = field(default_factory=CliRunner)

    @property
    def did(self) -> str:
        return Identity.load(self.key).did

    def env(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("CHARMSPACE_")}
        return {
            **clean,
            "HOME": str(self.home),
            "CHARMSPACE_API_URL": self.url,
            "CHARMSPACE_IDENTITY": str(self.key),
        }

    def __call__(self, *args: str) -> Ran:
        """``charmspace ARGS`` in this process (Typer's runner)."""
        result = self.runner.invoke(app, list(args), env=self.env())
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Ran(result.exit_code, result.stdout, result.stderr)

    def run(self, *args: str, timeout: float = 30) -> Ran:
        """``charmspace ARGS`` as a subprocess: the installed entry point, as a user runs it."""
        done = subprocess.run(
            [str(Path(sys.executable).parent / "charmspace"), *args],
            env=self.env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Ran(done.returncode, done.stdout, done.stderr)

    def settled(self, expected: str, *args: str, as_process: bool = False) -> Ran:
        """Run ``args`` until stdout is ``expected`` (up to 5 s): derived values follow a
        commit shortly after it, so a read right after an edit may see the old one."""
        run = self.run if as_process else self
        deadline = time.monotonic() + 5
        ran = run(*args)
        while ran.stdout.strip() != expected and time.monotonic() < deadline:
            time.sleep(0.05)
            ran = run(*args)
        assert ran.stdout.strip() == expected, ran.output
        return ran

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "charmspace"), *args],
            env=self.env(),
            cwd=self.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def make_user(name: str, tmp_path: Path, url: str) -> User:
    home = tmp_path / name
    home.mkdir()
    key = home / "key.pem"
    Identity.generate().save(key)
    return User(name, key, url, home)
