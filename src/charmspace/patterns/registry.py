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
    "charmspace.library.gmail_agentic_search",
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


def directory_module(path: Path) -> str:
    """The module name a file of a patterns directory is loaded as (its import path's module)."""
    return f"charmspace_patterns_dir.{path.stem}"


def reload_installed() -> dict[str, Pattern]:
    """Scan again (re-running the files of pattern directories); what is installed now.

    Charms rebuilt from here on use the new patterns; running charms keep
    their code until rebuilt (see ``Charms.rebuild``).
    """
    patterns = installed_patterns()
    _by_name.clear()
    _by_name.update(patterns)
    return patterns


def _patterns_in(module: object) -> dict[str, Pattern]:
    return {p.name: p for p in vars(module).values() if isinstance(p, Pattern)}


def _load_file(path: Path) -> dict[str, Pattern]:
    name = directory_module(path)
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
    """Every pattern that can be instantiated, by name.

    A name means one pattern. Why the first one found keeps it (the bundled
    library, then entry points, then pattern directories): a user's file that
    happens to define ``counter`` must not silently replace the bundled
    ``counter`` under the charms already made of it. The later pattern is
    left out with a warning that says how to rename it; its import path
    (``module:function``) still names it for ``charms.create``.
    """
    found: dict[str, Pattern] = {}

    def add(patterns: dict[str, Pattern], source: str) -> None:
        for name, pat in patterns.items():
            first = found.get(name)
            if first is not None and first.import_path != pat.import_path:
                _warn_shadowed(pat, first, source)
                continue
            found[name] = pat

    for module_name in LIBRARY_MODULES:
        add(_patterns_in(importlib.import_module(module_name)), "the bundled library")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            value = ep.load()
        except Exception:
            log.exception("pattern entry point %s failed to load", ep.name)
            continue
        source = f"entry point {ep.name}"
        add({value.name: value} if isinstance(value, Pattern) else _patterns_in(value), source)
    for directory in _directories:
        for path in sorted(directory.glob("*.py")):
            add(_load_file(path), str(path))
    return found


_warned: set[tuple[str, str]] = set()


def _warn_shadowed(pat: Pattern, first: Pattern, source: str) -> None:
    if (pat.import_path, first.import_path) in _warned:
        return
    _warned.add((pat.import_path, first.import_path))
    log.warning(
        "pattern %r from %s (%s) is not installed under that name: %s already has it. "
        "Rename it with @pattern(name=...), or create it by import path %r.",
        pat.name,
        source,
        pat.import_path,
        first.import_path,
        pat.import_path,
    )


def reimportable(pat: Pattern) -> bool:
    """Whether another process can find ``pat`` by its import path.

    A pattern defined in the script being run (``__main__``) or inside a
    function is not: a process that did not run that very code cannot rebuild
    the charms made of it.
    """
    module, _, qualname = pat.import_path.partition(":")
    return module != "__main__" and "<locals>" not in qualname


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
            bundled = _bundled(import_path)
            if bundled is not None:
                return bundled
            _by_name.update(installed_patterns())  # scanning is slow: only on a miss
    return None


def _bundled(import_path: object) -> Pattern | None:
    """The bundled pattern at ``import_path``, importing its own module only.

    Why: the first charm a process rebuilds would otherwise import every
    installed pattern, the Google sign-in stack of the bundled auth charm
    included, before a counter can take its first event (B4's first event
    after a restart). Only a module of :data:`LIBRARY_MODULES`, our own code,
    is imported here, never one a stored record merely names; the bundled
    library is the first source a name is taken from, so knowing its pattern
    early changes no lookup.
    """
    if not isinstance(import_path, str):
        return None
    module_name = import_path.partition(":")[0]
    if module_name not in LIBRARY_MODULES:
        return None
    for pat in _patterns_in(importlib.import_module(module_name)).values():
        if pat.import_path == import_path:
            _by_name.setdefault(pat.name, pat)
            return pat
    return None
