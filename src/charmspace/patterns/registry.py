"""Which patterns can be instantiated, and by what name.

Patterns are Python code running in the server process, and Python has no safe
in-process sandbox, so only installed patterns can be instantiated: the bundled
library, packages that declare the ``charmspace.patterns`` entry point group, and
files in a patterns directory the operator configured. There is no way to
upload code.

An application that embeds the runtime and creates charms of its own patterns
makes them known with :func:`register` (``charms.create`` registers the
pattern it is given, for the life of the process).

A charm is rebuilt (after a restart, or when an event reaches a charm that is
not running) from :func:`known_pattern`, never from :func:`resolve_pattern`:
the charm's record is a document anyone with WRITE on its space can edit, so
the import path stored there is only a key among the patterns already known,
and is never imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from importlib.metadata import entry_points
from pathlib import Path

from charmspace.errors import PatternError
from charmspace.patterns.pattern import Pattern

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "charmspace.patterns"
LIBRARY_MODULES = (
    "charmspace.library.counter",
    "charmspace.library.google_auth",
    "charmspace.library.notes",
)

_directories: list[Path] = []
_by_name: dict[str, Pattern] = {}
_registered: dict[str, Pattern] = {}
"""Patterns the application registered, by import path."""


def register(*patterns: Pattern) -> None:
    """Make patterns of the application's own code known, so charms of them can be rebuilt.

    Call it at startup, before charms are loaded: after a restart a charm is
    rebuilt only from a known pattern (see :func:`known_pattern`).
    """
    for pat in patterns:
        if not isinstance(pat, Pattern):
            raise PatternError(f"register() takes patterns (decorated with @pattern), not {pat!r}")
        _registered[pat.import_path] = pat


def add_patterns_directory(path: str | Path) -> None:
    """Make the patterns in the ``*.py`` files of ``path`` available by name."""
    directory = Path(path)
    if not directory.is_dir():
        raise PatternError(f"patterns directory {directory} does not exist")
    if directory not in _directories:
        _directories.append(directory)
        _by_name.clear()


def _patterns_in(module: object) -> dict[str, Pattern]:
    return {p.name: p for p in vars(module).values() if isinstance(p, Pattern)}


def _load_file(path: Path) -> dict[str, Pattern]:
    name = f"charmspace_patterns_dir.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return {}
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise PatternError(f"patterns file {path} failed to import: {e}") from e
    return _patterns_in(module)


def installed_patterns() -> dict[str, Pattern]:
    """Every pattern that can be instantiated, by name."""
    found: dict[str, Pattern] = {}
    for module_name in LIBRARY_MODULES:
        found.update(_patterns_in(importlib.import_module(module_name)))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            value = ep.load()
        except Exception:
            log.exception("pattern entry point %s failed to load", ep.name)
            continue
        if isinstance(value, Pattern):
            found[value.name] = value
        else:
            found.update(_patterns_in(value))
    for directory in _directories:
        for path in sorted(directory.glob("*.py")):
            found.update(_load_file(path))
    return found


def resolve_pattern(ref: str) -> Pattern:
    """A pattern by name (``counter``) or import path (``package.module:function``)."""
    if not isinstance(ref, str) or not ref:
        raise PatternError(f"a pattern is named by a non-empty string, not {ref!r}")
    if ":" in ref:
        module_name, _, attr = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise PatternError(
                f"pattern {ref!r}: module {module_name!r} cannot be imported ({e})"
            ) from None
        value: object = module
        for part in attr.split("."):
            value = getattr(value, part, None)
        if not isinstance(value, Pattern):
            raise PatternError(
                f"{ref!r} is not a pattern (no @pattern named {attr!r} in {module_name})"
            )
        return value
    cached = _by_name.get(ref)
    if cached is not None:
        return cached
    patterns = installed_patterns()  # scanning entry points is slow: only on a miss
    _by_name.update(patterns)
    if ref in patterns:
        return patterns[ref]
    raise PatternError(
        f"No installed pattern is named {ref!r}. "
        f"Installed: {', '.join(sorted(patterns)) or 'none'}."
    )


def known_pattern(name: object, import_path: object) -> Pattern | None:
    """The known pattern a stored charm record names, or None; imports nothing the record names.

    The import path is looked up first (it tells two patterns of one name
    apart), then the name (the pattern may have moved to another module).
    Installed patterns come before registered ones of the same name.
    """
    for attempt in range(2):
        installed = list(_by_name.values())
        registered = list(_registered.values())
        if isinstance(import_path, str):
            for pat in (*installed, *registered):
                if pat.import_path == import_path:
                    return pat
        if isinstance(name, str):
            for pat in (*installed, *reversed(registered)):
                if pat.name == name:
                    return pat
        if attempt == 0:
            _by_name.update(installed_patterns())  # scanning is slow: only on a miss
    return None
