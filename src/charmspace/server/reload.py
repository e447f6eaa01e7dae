"""``charmspace serve --patterns DIR --reload``: rebuild the charms of an edited pattern file.

For pattern authors iterating against a running server. The files of DIR are
installed patterns like any other (the registry-only loading rule holds: only
what the operator put in DIR runs); on a change, they are loaded again and the
running charms of the changed files are rebuilt from storage, keeping their
inputs and named cells, with the new derived values and UI.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import watchfiles
from fastapi import FastAPI

from charmspace.errors import PatternError
from charmspace.facade import Runtime
from charmspace.patterns.registry import (
    add_patterns_directory,
    directory_module,
    reload_installed,
)
from charmspace.server.settings import Settings

log = logging.getLogger(__name__)


def _is_python(change: watchfiles.Change, path: str) -> bool:
    return path.endswith(".py")


async def watch(app: FastAPI, runtime: Runtime, directory: Path, stop: asyncio.Event) -> None:
    """Until ``stop`` is set: on each change to a ``*.py`` file of ``directory``, reload."""
    async for changes in watchfiles.awatch(directory, watch_filter=_is_python, stop_event=stop):
        files = sorted({Path(path) for _change, path in changes})
        try:
            await reload(app, runtime, files)
        except Exception:  # keep watching: the next save may fix it
            log.exception("reloading %s failed", ", ".join(path.name for path in files))


async def reload(app: FastAPI, runtime: Runtime, files: list[Path]) -> None:
    """Load the pattern files again and rebuild the running charms defined in ``files``."""
    try:
        app.state.patterns = reload_installed()
    except PatternError as error:  # a file that does not import: keep the old code running
        log.error("patterns not reloaded: %s", error)
        return
    for path in files:
        rebuilt = await runtime.charms.rebuild(directory_module(path))
        log.info("reloaded %s: rebuilt %d charm(s)", path.name, len(rebuilt))


class PatternsDirectory:
    """The configured patterns directory for the life of the server, watched if asked."""

    def __init__(self, settings: Settings) -> None:
        self.directory = settings.patterns
        self.watching = settings.reload
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def install(self) -> None:
        """Make the directory's patterns installed (before the server lists them)."""
        if self.directory is not None:
            add_patterns_directory(self.directory)

    def start(self, app: FastAPI, runtime: Runtime) -> None:
        if self.directory is not None and self.watching:
            self._task = asyncio.create_task(watch(app, runtime, self.directory, self._stop))
            log.info("watching %s for pattern changes", self.directory)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
