"""Every code block in the README and docs/ runs as written, and no doc points outside
the repository (a docs regression test).

How a block is run, and the markers that say more (an HTML comment on the line
right before the opening fence; several may stand on consecutive lines):

- A ```python block is a program of its own: it runs in a fresh process, as
  ``python block.py`` would run it, in a working directory that the blocks of its
  file share, in document order (so a later block sees the files an earlier one
  wrote).
- A ```python block whose first line is a comment naming a file, ``# my_counter.py``,
  is that file: it is written to the working directory (and must compile) instead
  of run, and a later block of the same doc must use it.
- ``<!-- continues -->``: the block goes on from the python block right before it
  (in the same process, with the names that block defined), like the next lines of
  one script.
- ``<!-- raises: PatternError -->``: the block shows a mistake and must raise exactly
  that exception type (not a subclass, not another error, not nothing).
- A line ``print(...)  # {'value': 8, ...}``: a comment after a ``print`` call states
  what it prints. When a block has such comments, its output must be exactly those
  lines, in order, where ``...`` stands for any text.
- A ```sh block runs with ``bash -euo pipefail`` in the same working directory, with
  this interpreter's bin directory (the repository's ``.venv/bin``) first on PATH.
- ``<!-- from the repository root -->``: the sh block runs in the repository's root
  instead (``bash scripts/demo``); such a block must not write into the repository.
- ``<!-- serves -->``: the sh block starts a server that runs until stopped. It runs
  with ``CHARMSPACE_PORT`` set to a free port and ``HOME`` and ``CHARMSPACE_DATA`` in
  a scratch directory; it must answer ``/_health`` there, then it is stopped with
  Ctrl-C (SIGINT to its process group) and must exit with status 0.
- ``<!-- not run: REASON -->``: the block is not run (reported as a skip with REASON).
  Only for a block that runs this test suite itself (``bash scripts/test``).
- A fence without a language (```) is output or a drawing, not code; any other
  language tag is refused, so every piece of code is one of the two kinds above.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN_LANGUAGES = ("python", "sh")

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*(?P<body>.*?)\s*-->\s*$")
FILE_BLOCK = re.compile(r"#\s*(?P<name>[\w.-]+\.py)\s*")
TIMEOUT = 60
MARKER_NAMES = ("continues", "raises", "not run", "from the repository root", "serves")


@dataclass
class Block:
    doc: Path
    index: int  # among the doc's fenced blocks, counting from 0
    line: int  # of the opening fence, counting from 1
    language: str
    code: str
    markers: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)} block {self.index} (line {self.line})"

    @property
    def continues(self) -> bool:
        return "continues" in self.markers

    @property
    def raises(self) -> str | None:
        for marker in self.markers:
            if marker.startswith("raises:"):
                return marker.removeprefix("raises:").strip()
        return None

    @property
    def from_root(self) -> bool:
        return "from the repository root" in self.markers

    @property
    def serves(self) -> bool:
        return "serves" in self.markers

    @property
    def not_run(self) -> str | None:
        for marker in self.markers:
            if marker.startswith("not run:"):
                return marker.removeprefix("not run:").strip()
        return None

    @property
    def file_name(self) -> str | None:
        """The file a ``# name.py`` python block stands for."""
        if self.language != "python":
            return None
        first = self.code.split("\n", 1)[0]
        match = FILE_BLOCK.fullmatch(first)
        return match.group("name") if match else None


def parse(doc: Path) -> list[Block]:
    """The fenced blocks of ``doc``, with the marker comments right above each."""
    lines = doc.read_text().split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening.group("indent"), opening.group("fence")
        markers: list[str] = []
        above = i - 1
        while above >= 0 and (marker := MARKER.match(lines[above])):
            markers.insert(0, marker.group("body"))
            above -= 1
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            stripped = lines[j].strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                break
            body.append(lines[j].removeprefix(indent))
            j += 1
        else:
            raise AssertionError(f"{doc.relative_to(ROOT)}:{i + 1}: a fence that never closes")
        code = "\n".join(body) + "\n"
        blocks.append(Block(doc, len(blocks), i + 1, opening.group("info").strip(), code, markers))
        i = j + 1
    return blocks


ALL_BLOCKS = [block for doc in DOCS for block in parse(doc)]
CODE_BLOCKS = [block for block in ALL_BLOCKS if block.language in RUN_LANGUAGES]


def expected_output(code: str) -> list[str] | None:
    """The lines that the ``print(...)  # ...`` comments of ``code`` say it prints."""
    expected: list[str] = []
    lines = code.split("\n")
    for token in tokenize.generate_tokens(StringIO(code).readline):
        if token.type != tokenize.COMMENT:
            continue
        if lines[token.start[0] - 1].lstrip().startswith("print("):
            expected.append(token.string.removeprefix("#").strip())
    return expected or None


def matches(expected: str, printed: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, printed) is not None


# A python block runs in this driver: one process per block (and the blocks that
# continue it), each block's code executed as __main__ from a real file, so
# tracebacks, inspect.getsource and import paths behave as for ``python block.py``.
DRIVER = """
import contextlib, io, json, sys, traceback, __main__

def _run(plan, results):
    done = []
    for path in json.load(open(plan)):
        out = io.StringIO()
        raised = None
        try:
            with open(path) as f:
                code = compile(f.read(), path, "exec")
            __main__.__file__, sys.argv = path, [path]
            with contextlib.redirect_stdout(out):
                exec(code, __main__.__dict__)
        except BaseException as e:
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next))
            raised = {"type": type(e).__name__, "traceback": tb}
        done.append({"stdout": out.getvalue(), "raised": raised})
    with open(results, "w") as f:
        json.dump(done, f)

_run(sys.argv[1], sys.argv[2])
"""


@dataclass
class Outcome:
    stdout: str = ""
    raised: dict[str, str] | None = None
    error: str | None = None  # the block did not run through: a timeout, a crash, an exit code


def run_python(blocks: list[Block], work: Path, scratch: Path) -> list[Outcome]:
    paths = []
    for block in blocks:
        path = scratch / f"{block.doc.stem}_block_{block.index}.py"
        path.write_text(block.code)
        paths.append(str(path))
    plan, results = scratch / "plan.json", scratch / "results.json"
    plan.write_text(json.dumps(paths))
    results.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, str(plan), str(results)],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return [Outcome(error=f"did not finish in {TIMEOUT} s") for _ in blocks]
    if not results.exists():
        crash = f"the program died (exit {done.returncode}):\n{done.stderr}"
        return [Outcome(error=crash) for _ in blocks]
    return [Outcome(**result) for result in json.loads(results.read_text())]


def run_sh(block: Block, work: Path, scratch: Path) -> Outcome:
    script = scratch / f"{block.doc.stem}_block_{block.index}.sh"
    script.write_text(block.code)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if block.serves:
        return run_server(block, script, env, work, scratch)
    try:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", str(script)],
            cwd=ROOT if block.from_root else work,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return Outcome(error=f"did not finish in {TIMEOUT} s")
    if done.returncode != 0:
        output = f"{done.stdout}{done.stderr}"
        return Outcome(stdout=done.stdout, error=f"exit {done.returncode}:\n{output}")
    return Outcome(stdout=done.stdout)


def run_server(
    block: Block, script: Path, env: dict[str, str], work: Path, scratch: Path
) -> Outcome:
    """Start the block's server, wait for ``/_health``, press Ctrl-C: it must exit cleanly."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = scratch / f"home_{block.index}"
    home.mkdir(exist_ok=True)
    env = {
        **{k: v for k, v in env.items() if not k.startswith("CHARMSPACE_")},
        "HOME": str(home),
        "CHARMSPACE_PORT": str(port),
        "CHARMSPACE_DATA": str(home / "data"),
    }
    log = scratch / f"{block.doc.stem}_block_{block.index}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["bash", "-euo", "pipefail", str(script)],
            cwd=ROOT if block.from_root else work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    healthy = False
    deadline = time.monotonic() + TIMEOUT
    try:
        while not healthy and time.monotonic() < deadline and process.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/_health", timeout=1)
                healthy = answer.json() == {"ok": True}
            except (httpx.HTTPError, ValueError):
                time.sleep(0.2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
        try:
            status = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            status = process.wait()
    output = log.read_text(errors="replace")
    if not healthy:
        return Outcome(stdout=output, error=f"the server never answered /_health:\n{output}")
    if status != 0:
        return Outcome(stdout=output, error=f"exit {status} after Ctrl-C:\n{output}")
    return Outcome(stdout=output)


def run_doc(doc: Path, work: Path, scratch: Path) -> dict[int, Outcome]:
    """Run the code blocks of ``doc`` in order; the outcome of each by block index."""
    outcomes: dict[int, Outcome] = {}
    program: list[Block] = []  # a python block and the blocks that continue it

    def finish_program() -> None:
        if program:
            outcomes.update(
                zip([b.index for b in program], run_python(program, work, scratch), strict=True)
            )
            program.clear()

    for block in parse(doc):
        if block.language not in RUN_LANGUAGES:
            continue
        if block.continues and block.language == "python":
            if not program:
                outcomes[block.index] = Outcome(
                    error="marked continues, but the block before it is not a python program"
                )
                continue
            program.append(block)
            continue
        finish_program()
        if block.not_run is not None:
            continue
        elif block.file_name is not None:
            (work / block.file_name).write_text(block.code)
            outcomes[block.index] = Outcome()
        elif block.language == "python":
            program.append(block)
        else:
            outcomes[block.index] = run_sh(block, work, scratch)
    finish_program()
    return outcomes


@pytest.fixture(scope="module")
def doc_outcomes(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Block], Outcome]:
    """Runs each doc's blocks once (on its first block's test); outcomes by doc."""
    runs: dict[Path, dict[int, Outcome]] = {}

    def outcome(block: Block) -> Outcome:
        if block.doc not in runs:
            base = tmp_path_factory.mktemp(block.doc.stem)
            (base / "work").mkdir()
            (base / "scratch").mkdir()
            runs[block.doc] = run_doc(block.doc, base / "work", base / "scratch")
        return runs[block.doc][block.index]

    return outcome


@pytest.mark.parametrize(
    "block", CODE_BLOCKS, ids=[f"{b.doc.relative_to(ROOT)}:{b.index}" for b in CODE_BLOCKS]
)
def test_the_block_runs_as_written(block: Block, doc_outcomes: Callable[[Block], Outcome]) -> None:
    misuse = marker_misuse(block)
    if misuse:
        pytest.fail(f"{block.where}: {misuse}")
    if block.not_run is not None:
        pytest.skip(f"{block.where} is not run: {block.not_run}")
    outcome = doc_outcomes(block)
    if outcome.error is not None:
        pytest.fail(f"{block.where} failed: {outcome.error}")
    if block.file_name is not None:
        compile(block.code, block.file_name, "exec")
        module = block.file_name.removesuffix(".py")
        later = [b for b in CODE_BLOCKS if b.doc == block.doc and b.index > block.index]
        if not any(re.search(rf"\b{re.escape(module)}\b", b.code) for b in later):
            pytest.fail(f"{block.where} writes {block.file_name}, which no later block uses")
        return
    raised = outcome.raised
    if block.raises is None and raised is not None:
        pytest.fail(f"{block.where} raised:\n{raised['traceback']}")
    if block.raises is not None and raised is None:
        pytest.fail(
            f"{block.where} ran without error, but its marker says it raises {block.raises}"
        )
    if block.raises is not None and raised is not None and raised["type"] != block.raises:
        pytest.fail(
            f"{block.where} should raise {block.raises} (its marker says so), "
            f"but raised:\n{raised['traceback']}"
        )
    expected = expected_output(block.code) if block.language == "python" else None
    if expected is not None:
        printed = outcome.stdout.rstrip("\n").split("\n") if outcome.stdout else []
        if len(printed) != len(expected) or not all(map(matches, expected, printed)):
            pytest.fail(
                f"{block.where} printed:\n{outcome.stdout}\nbut its print comments say:\n"
                + "\n".join(expected)
            )


def marker_misuse(block: Block) -> str | None:
    """What is wrong with the block's markers, if anything."""
    unknown = [m for m in block.markers if m.split(":")[0] not in MARKER_NAMES]
    if unknown:
        return f"unknown markers {unknown} (known: {', '.join(MARKER_NAMES)})"
    python_only = ("continues", "raises")
    if block.language != "python" and any(m.split(":")[0] in python_only for m in block.markers):
        return "continues and raises are for python blocks"
    if block.language != "sh" and (block.from_root or block.serves):
        return "from the repository root and serves are for sh blocks"
    if block.file_name is not None and block.markers:
        return f"a file block ({block.file_name}) is written, not run: it takes no marker"
    return None


def test_code_blocks_are_python_or_sh() -> None:
    """Code in another language would not be run: only untagged blocks (output) may be."""
    other = [
        f"{b.where}: {b.language}" for b in ALL_BLOCKS if b.language not in ("", *RUN_LANGUAGES)
    ]
    assert not other, "blocks in a language this test does not run:\n" + "\n".join(other)


def test_markers_stand_only_before_code_blocks_that_use_them() -> None:
    """A marker on an untagged block would be silently ignored."""
    misplaced = [b.where for b in ALL_BLOCKS if b.markers and b.language not in RUN_LANGUAGES]
    assert not misplaced, "markers before blocks that are not run:\n" + "\n".join(misplaced)


def test_only_a_block_that_runs_the_test_suite_is_not_run() -> None:
    not_run = [b for b in CODE_BLOCKS if b.not_run is not None]
    for block in not_run:
        print(f"not run: {block.where}: {block.not_run}")
    recursing = [b for b in not_run if "bash scripts/test" in b.code]
    assert recursing == not_run, "blocks not run that do not run the test suite:\n" + "\n".join(
        b.where for b in not_run if b not in recursing
    )


OUTSIDE = [
    (re.compile(r"(?<![\w./-])shared/"), "the shared/ folder, which is not in the repository"),
    (re.compile(r"https?://\S+"), "a web address"),
    # An absolute path, except the kernel's (/proc/cpuinfo is on every machine) and the
    # server's HTTP routes (/api/spaces/{space}/log is a URL template, not a file;
    # /_demo/ holds the demo server's fakes).
    (
        re.compile(r"(?<![\w:/.~}-])~?/(?!proc/|sys/|dev/|api/|_demo/)[A-Za-z_][\w.-]*/"),
        "an absolute path",
    ),
]
RELATIVE = re.compile(r"(?<![\w./-])(?:\./)?(?:\.\./)+[\w./-]*")


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_the_doc_points_only_inside_the_repository(doc: Path) -> None:
    text = doc.read_text()
    found = []
    for number, line in enumerate(text.split("\n"), 1):
        for pattern, what in OUTSIDE:
            found += [f"line {number}: {m.group()!r} is {what}" for m in pattern.finditer(line)]
        for m in RELATIVE.finditer(line):
            target = (doc.parent / m.group()).resolve()
            if not target.is_relative_to(ROOT) or not target.exists():
                found.append(f"line {number}: {m.group()!r} is not a path in the repository")
    assert not found, f"{doc.relative_to(ROOT)} points outside the repository:\n" + "\n".join(found)
