"""The README's example runs as printed (a docs regression test)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_the_readme_example_prints_what_the_readme_says(tmp_path: Path) -> None:
    text = README.read_text()
    module, program = re.findall(r"```python\n(.*?)```", text, re.S)[:2]
    assert module.startswith("# my_counter.py")
    (tmp_path / "my_counter.py").write_text(module)
    example = tmp_path / "example.py"
    example.write_text(program)
    done = subprocess.run(
        [sys.executable, str(example)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'value': 8, 'doubled': 16, 'adjust': {'$stream': True}}"
    assert (tmp_path / ".charmspace").is_dir()
    assert "no other process can import it" not in done.stderr  # the pattern is in a module


def test_a_second_run_finds_the_first_runs_charm(tmp_path: Path) -> None:
    """The README's runtime acts as the local user, so a later process reads its charms."""
    text = README.read_text()
    module, program = re.findall(r"```python\n(.*?)```", text, re.S)[:2]
    (tmp_path / "my_counter.py").write_text(module)
    (tmp_path / "first.py").write_text(program.replace("print(charm.get())", "print(charm.id)"))
    first = subprocess.run(
        [sys.executable, "first.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert first.returncode == 0, first.stderr
    second = tmp_path / "second.py"
    second.write_text(
        "import asyncio\n"
        "from charmspace import Runtime\n"
        "from charmspace.patterns.registry import register\n"
        "from my_counter import counter\n\n"
        "async def main() -> None:\n"
        "    register(counter)\n"
        "    async with Runtime('sqlite:///./.charmspace') as runtime:\n"
        f"        charm = await runtime.charms.get(runtime.principal, {first.stdout.strip()!r})\n"
        "        print(charm['doubled'].get())\n\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, str(second)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "16"
