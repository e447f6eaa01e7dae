"""What every command that talks to a server shares: the global options, the client, output.

The root command stores :class:`Options` in Click's context; a command asks it
for a signed :class:`~charmspace.client.Client` (``options.client()``), the
space it works in (``options.space``), and prints through :func:`emit`, which
writes JSON for ``--json`` and the human form otherwise.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from charmspace.client import Client
from charmspace.client.ops import DEFAULT_URL, base_url
from charmspace.identity import Identity

NOT_RUNNING = (
    "No charmspace server answers at {url}; is the server running? "
    "Start it with `charmspace serve`."
)

PIPE_WIDTH = 200

LOCAL_KEY = "$CHARMSPACE_IDENTITY or ~/.config/charmspace/identity.pem, created on first use"
"""Where the local user's key file is, for help texts."""


def group(help: str, **settings: Any) -> typer.Typer:
    """A command group that shows its help when given no command."""
    return typer.Typer(help=help, no_args_is_help=True, **settings)


def key_file_option(help: str) -> Any:
    """``--identity FILE``: a key file, whose default (None) the help text describes."""
    return typer.Option("--identity", help=help, metavar="FILE", show_default=False)


@dataclass
class Options:
    """The global options, as given (``identity`` None: the local user's key file)."""

    api_url: str = DEFAULT_URL
    identity_file: Path | None = None
    space_option: str | None = None
    as_json: bool = False
    _clients: list[Client] = field(default_factory=list)

    @cached_property
    def identity(self) -> Identity:
        """The key requests are signed with; the default file is created on first use."""
        if self.identity_file is None:
            from charmspace.identity.local import load_or_create, local_identity_path

            return load_or_create(local_identity_path())
        return Identity.load(self.identity_file.expanduser())

    @property
    def url(self) -> str:
        return base_url(self.api_url)

    @cached_property
    def space(self) -> str:
        """``--space``: a DID as is, a name as the caller's space of that name; else home."""
        return resolve_space(self.identity, self.space_option)

    def client(self) -> Client:
        """A client signing as :attr:`identity`, closed when the command ends."""
        client = Client(self.url, self.identity)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


def resolve_space(identity: Identity, space: str | None) -> str:
    """A space DID from a DID, a name of one of ``identity``'s spaces, or None (home)."""
    if space is None:
        return identity.did
    if space.startswith("did:"):
        return space
    return identity.derive(space).did


def options(ctx: typer.Context) -> Options:
    """The global options the root command stored in ``ctx``."""
    found: Options | None = ctx.find_object(Options)
    return found if found is not None else Options()


def stdout() -> Console:
    """A console on the current stdout (created per call: test runners swap the stream).

    Into a pipe or file, tables take the width they need (not 80 columns), so
    ids and DIDs stay on one line for whoever copies them.
    """
    wide = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(soft_wrap=False, highlight=False, emoji=False, width=wide)


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)


def table(*headers: str, title: str | None = None) -> Table:
    """A table whose cells wrap rather than elide: ids and DIDs must stay copyable."""
    made = Table(title=title)
    for header in headers:
        made.add_column(header, overflow="fold")
    return made


def emit(opts: Options, data: Any, human: Callable[[Console], None] | None = None) -> None:
    """``data`` as JSON with ``--json`` (or without ``human``); else what ``human`` prints."""
    if opts.as_json or human is None:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        human(stdout())


def confirm(opts: Options, message: str, data: Any) -> None:
    """A short confirmation for people, or ``data`` as JSON for scripts."""
    emit(opts, data, lambda console: console.print(message, markup=False))


def confirm_removed(opts: Options, id: str, message: str) -> None:
    """Confirm that ``id`` is gone from ``--space``: ``message``, or JSON for scripts."""
    confirm(opts, message, {"removed": id, "space": opts.space})


def fail(message: str) -> NoReturn:
    """End the command with exit status 1 and ``Error: message`` on stderr (no traceback)."""
    stderr().print(f"Error: {message}", markup=False, style="red")
    raise typer.Exit(1)


def parse_json(text: str, what: str) -> Any:
    """``text`` as JSON, or a usage error that shows how to quote it."""
    try:
        return json.loads(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not JSON. Quote strings for the shell and for JSON, "
            f"e.g. '\"hello\"'; numbers, true, false, null, [..] and {{..}} as they are.",
            param_hint=what,
        ) from None


def short(did: str) -> str:
    """A did:key shortened for a table (``z6Mkmd…mJdLx``); --json shows it whole."""
    if not did.startswith("did:key:") or len(did) <= 24:
        return did
    return f"{did[8:14]}…{did[-5:]}"
