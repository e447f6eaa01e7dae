"""The README's example runs as printed (a docs regression test)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


def test_the_readme_example_prints_what_the_readme_says(tmp_path: Path) -> None:
    text = README.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None
    example = tmp_path / "example.py"
    example.write_text(code.group(1))
    done = subprocess.run(
        [sys.executable, str(example)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "{'value': 8, 'doubled': 16, 'adjust': {'$stream': True}}"
    assert (tmp_path / ".charmspace").is_dir()
