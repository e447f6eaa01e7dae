"""Which patterns can be instantiated by name: the library, entry points, a patterns directory."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from charmspace.errors import PatternError
from charmspace.library.counter import counter
from charmspace.patterns import registry
from charmspace.patterns.registry import add_patterns_directory, installed_patterns, resolve_pattern
from charmspace.runtime import Runtime

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
