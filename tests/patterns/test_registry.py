"""Which patterns can be instantiated by name: the library, entry points, a patterns directory."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

from charmspace import Runtime
from charmspace.errors import PatternError, PatternNotInstalledError
from charmspace.library.counter import counter
from charmspace.patterns import NAME, cell, pattern, registry
from charmspace.patterns import charms as charms_module
from charmspace.patterns.registry import (
    add_patterns_directory,
    installed_patterns,
    known_pattern,
    register,
    resolve_pattern,
)

OpenRuntime = Callable[[], Awaitable[Runtime]]

GREETER = """
from charmspace import NAME, Default, computed, pattern


@pattern(tags=["#greeting"])
def greeter(name: Default[str, "world"]):
    return {NAME: "Greeter", "greeting": computed(lambda: f"hello {name.get()}")}
"""


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_directories", [])
    monkeypatch.setattr(registry, "_by_name", {})
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_warned", set())
    monkeypatch.setattr(charms_module, "_warned_not_reimportable", set())


def test_the_bundled_library_is_installed() -> None:
    assert {"counter", "notes"} <= set(installed_patterns())
    assert resolve_pattern("counter") is counter


def test_an_import_path_names_a_pattern() -> None:
    assert resolve_pattern("charmspace.library.counter:counter") is counter


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "no-such-pattern",
            r"No installed pattern is named .no-such-pattern.\. Installed: counter",
        ),
        ("charmspace.library.counter:adjust", "is not a pattern"),
        ("no.such.module:thing", "cannot be imported"),
        ("", "non-empty string"),
    ],
)
def test_unknown_patterns_are_refused_with_what_is_installed(name: str, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        resolve_pattern(name)


async def test_a_patterns_directory_makes_its_patterns_instantiable(
    tmp_path: Path, runtime: Runtime
) -> None:
    (tmp_path / "greeter.py").write_text(GREETER)
    add_patterns_directory(tmp_path)
    charm = await runtime.charms.create("greeter", inputs={"name": "ada"})
    assert charm["greeting"].get() == "hello ada"


def test_a_broken_patterns_file_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("this is not python\n")
    add_patterns_directory(tmp_path)
    with pytest.raises(PatternError, match=r"broken\.py failed to import"):
        resolve_pattern("anything")


def test_a_missing_patterns_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PatternError, match="does not exist"):
        add_patterns_directory(tmp_path / "nowhere")


def test_packages_declare_patterns_with_an_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "greeting_pkg.py").write_text(GREETER)
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [EntryPoint("greeter", "greeting_pkg:greeter", registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(
        registry,
        "entry_points",
        lambda group: points if group == registry.ENTRY_POINT_GROUP else [],
    )
    assert resolve_pattern("greeter").tags == ("#greeting",)
    monkeypatch.delitem(sys.modules, "greeting_pkg", raising=False)


# --- which pattern rebuilds a stored charm -----------------------------------------------


@pattern
def journal() -> Any:
    """A pattern of the application's own code: neither bundled nor installed."""
    return {NAME: "Journal", "entries": cell(["first"], name="entries")}


def test_a_stored_charm_finds_its_pattern_by_import_path_then_by_name() -> None:
    assert known_pattern("counter", "charmspace.library.counter:counter") is counter
    assert known_pattern("counter", "somewhere.else:counter") is counter  # moved: the name
    assert known_pattern("journal", "tests.nowhere:journal") is None
    register(journal)
    assert known_pattern("journal", journal.import_path) is journal


def test_rebuilding_a_bundled_charm_imports_its_own_module_only() -> None:
    """Regression: the first charm a process rebuilt imported every installed pattern,
    the Google sign-in stack included, before a counter took its first event."""
    script = (
        "import sys\n"
        "from charmspace.patterns.registry import known_pattern\n"
        "pat = known_pattern('counter', 'charmspace.library.counter:counter')\n"
        "print(pat.import_path, 'charmspace.library.google_auth' in sys.modules)\n"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert ran.stdout.split() == ["charmspace.library.counter:counter", "False"]


def test_only_patterns_can_be_registered() -> None:
    with pytest.raises(PatternError, match="register\\(\\) takes patterns"):
        register(len)  # type: ignore[arg-type]


async def test_after_a_restart_a_charm_of_an_unregistered_pattern_says_to_install_it(
    open_runtime: OpenRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    first = await open_runtime()
    charm = await first.charms.create(journal)
    await first.close()
    registry._registered.clear()  # a new process: only what it installs or registers is known

    second = await open_runtime()
    with pytest.raises(PatternNotInstalledError) as info:
        await second.charms.get(charm.space, charm.id)
    error = info.value
    assert (error.space, error.charm_id, error.pattern) == (charm.space, charm.id, "'journal'")
    assert "Install the pattern" in str(error)
    assert "register it with charmspace.patterns.registry.register()" in str(error)
    assert f"charm {charm.id} names pattern 'journal', which is not installed" in caplog.text

    register(journal)
    again = await second.charms.get(charm.space, charm.id)
    assert again["entries"].get() == ["first"]


SHADOW = """
from charmspace import Default, pattern


@pattern
def counter(value: Default[int, 100]):
    return {"value": value, "mine": True}
"""


async def test_a_user_pattern_named_like_a_bundled_one_does_not_replace_it(
    tmp_path: Path, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a patterns file defining `counter` silently replaced the bundled one,
    and the charms of both were listed as pattern='counter'."""
    (tmp_path / "shadow.py").write_text(SHADOW)
    add_patterns_directory(tmp_path)
    assert installed_patterns()["counter"] is counter
    assert "Rename it with @pattern(name=...)" in caplog.text
    assert "charmspace_patterns_dir.shadow:counter" in caplog.text

    bundled = await runtime.charms.create("counter")
    mine = await runtime.charms.create("charmspace_patterns_dir.shadow:counter")
    assert mine["mine"].get() is True
    listed = {info.id: info for info in runtime.charms.list()}
    assert listed[bundled.id].import_path == "charmspace.library.counter:counter"
    assert listed[mine.id].import_path == "charmspace_patterns_dir.shadow:counter"


def made_in_a_function() -> Any:
    @pattern
    def local():
        return {"n": cell(1)}

    return local


async def test_creating_a_charm_of_a_pattern_no_process_can_import_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A pattern defined inside a function (or in __main__) is stored and, before this,
    failed only when another process loaded its charm."""
    # SQLite only: the warning is about storage another process opens; memory has none.
    async with Runtime(f"sqlite:///{tmp_path / 'store'}") as runtime:
        await runtime.charms.create(made_in_a_function())
    assert "defined in a function, so no other process can import it" in caplog.text
    assert "Define it at the top level of a module" in caplog.text


async def test_in_memory_a_local_pattern_is_fine(caplog: pytest.LogCaptureFixture) -> None:
    # memory only: the counterpart of the SQLite warning above
    async with Runtime("memory://") as runtime:
        await runtime.charms.create(made_in_a_function())
    assert "no other process can import it" not in caplog.text


TALLY = """
from charmspace import Cell, Default, cell, derive, handler, pattern


@handler
def increment(event: dict, *, value: Cell[int]) -> None:
    value.set(value.get() + 1)


@pattern
def tally(value: Default[int, 0]):
    note = cell("NOTE", name="note")
    return {"value": value, "note": note, "shown": derive(value, lambda v: v * FACTOR),
            "increment": increment.bind(value=value)}
"""


async def test_an_edited_patterns_file_rebuilds_its_running_charms_keeping_their_state(
    tmp_path: Path, runtime: Runtime
) -> None:
    path = tmp_path / "tally.py"
    path.write_text(TALLY.replace("FACTOR", "2").replace("NOTE", "first"))
    add_patterns_directory(tmp_path)
    charm = await runtime.charms.create("tally")
    await charm.stream("increment").call({})
    await runtime.idle()
    assert charm["shown"].get() == 2

    path.write_text(TALLY.replace("FACTOR", "10").replace("NOTE", "second"))
    registry.reload_installed()
    rebuilt = await runtime.charms.rebuild(registry.directory_module(path))

    assert [c.id for c in rebuilt] == [charm.id]
    again = await runtime.charms.get(charm.space, charm.id)
    assert again is rebuilt[0]
    await runtime.idle()
    assert again["value"].get() == 1  # the input kept its stored value
    assert again["note"].get() == "first"  # so did the named cell
    assert again["shown"].get() == 10  # derived by the new code
    await again.stream("increment").call({})
    await runtime.idle()
    assert again["shown"].get() == 20
    assert await runtime.charms.rebuild("some_other_module") == []
