"""The ``charmspace`` command line.

Each area is a sub-app in its own module (``charm`` in ``charms.py``, ``space``
in ``spaces.py``, …), added to the root here. Commands that talk to a server
take the global options (``--api-url``, ``--identity``, ``--space``,
``--json``) from :mod:`charmspace.cli.context` and use the signed
:class:`~charmspace.client.Client`. Commands raise
:class:`~charmspace.errors.CharmspaceError` (the client's ``APIError`` is one)
for anything a user got wrong or must fix; the root group turns it into a red
message on stderr and exit status 1, so no command needs its own ``try``.
Usage errors exit 2 (Typer's default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from charmspace.cli.context import (
    LOCAL_KEY,
    NOT_RUNNING,
    Options,
    emit,
    group,
    key_file_option,
    options,
    stderr,
    table,
)
from charmspace.client.ops import DEFAULT_URL, APIURLError, ServerUnreachableError
from charmspace.errors import CharmspaceError


class _ReportingGroup(TyperGroup):
    """Reports domain errors from any command below it as a message, not a traceback."""

    # ``Any``: the Context class lives in ``click`` or in Typer's vendored copy,
    # depending on the Typer version; this override does not care which.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except APIURLError as error:  # a usage error, found only once a command needs the URL
            stderr().print(Text(f"Error: {error}", style="red"))
            raise typer.Exit(2) from None
        except ServerUnreachableError as error:  # said as the command's user needs it
            stderr().print(Text(f"Error: {_unreachable(ctx, error)}", style="red"))
            raise typer.Exit(1) from None
        except CharmspaceError as error:
            stderr().print(Text(f"Error: {error}", style="red"))
            raise typer.Exit(1) from None
        except httpx.TransportError as error:
            stderr().print(Text(f"Error: {_unreachable(ctx, error)}", style="red"))
            raise typer.Exit(1) from None


def _unreachable(ctx: Any, error: httpx.TransportError) -> str:
    """What to tell a user whose request got no answer."""
    found = ctx.find_object(Options)
    url = found.url if found is not None else DEFAULT_URL
    if isinstance(error, httpx.ConnectError):
        return NOT_RUNNING.format(url=url)
    return f"The server at {url} did not answer ({type(error).__name__}: {error or 'no detail'})."


app = group(
    "charmspace: reactive charms whose state lives in spaces owned by did:key identities.",
    cls=_ReportingGroup,
)


def _print_version(value: bool) -> None:
    if value:
        from charmspace import __version__

        typer.echo(f"charmspace {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    api_url: Annotated[
        str,
        typer.Option(
            "--api-url",
            envvar="CHARMSPACE_API_URL",
            help="The server to talk to.",
            metavar="URL",
        ),
    ] = DEFAULT_URL,
    identity: Annotated[
        Path | None,
        key_file_option(
            f"The key file requests are signed with (default: {LOCAL_KEY}: the local user "
            "of `charmspace serve`)."
        ),
    ] = None,
    space: Annotated[
        str | None,
        typer.Option(
            "--space",
            help="The space to work in: a DID, or the name of one of your spaces "
            "(default: your home space).",
            metavar="NAME|DID",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """charmspace: reactive charms whose state lives in spaces owned by did:key identities.

    Create identities, spaces and charms, send events, read and edit cells,
    and watch them change, all over a server's signed HTTP API.
    """
    options = Options(api_url, identity, space, as_json)
    ctx.obj = options
    ctx.call_on_close(options.close)


def main() -> None:
    """Entry point of the ``charmspace`` script."""
    app()


# The command groups, each in its module; imported last, as they add to ``app``.
from charmspace.cli import charms, favorites, identity, spaces  # noqa: E402

app.add_typer(identity.app, name="id")
app.add_typer(spaces.app, name="space")
app.add_typer(charms.app, name="charm")
app.add_typer(favorites.app, name="favorite")
app.command("wish")(favorites.wish)


@app.command("demo")
def demo() -> None:
    """Tell the seed's story in the terminal: a refused cross-space write, then a stream call."""
    from charmspace.demo import main as run

    run()


@app.command("patterns")
def patterns(ctx: typer.Context) -> None:
    """List the patterns the server has installed: the names `charm new` takes.

    charmspace patterns

    charmspace --json patterns | jq '.[].name'
    """
    opts = options(ctx)
    found = opts.client().patterns()

    def human(console: Console) -> None:
        shown = table("pattern", "tags", "inputs", "description")
        for p in found:
            inputs = p["inputs"].get("properties", {}) if isinstance(p["inputs"], dict) else {}
            shown.add_row(p["name"], " ".join(p["tags"]), ", ".join(inputs), p["description"])
        console.print(shown)

    emit(opts, found, human)


@app.command("serve")
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port [default: 8000].")] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Data directory: server identity and SQLite storage [default: ./.charmspace].",
            metavar="DIR",
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="Storage URL [default: sqlite in DIR/store].", metavar="URL"),
    ] = None,
    identity: Annotated[
        Path | None,
        key_file_option(
            "The local user's key file, which the printed login link logs a browser in "
            "as [default: ~/.config/charmspace/identity.pem, created 0600]."
        ),
    ] = None,
    log_json: Annotated[
        bool | None, typer.Option("--log-json", help="Log JSON lines instead of text.")
    ] = None,
    patterns: Annotated[
        Path | None,
        typer.Option(
            "--patterns",
            help="Install the patterns of the *.py files in DIR (your own patterns).",
            metavar="DIR",
        ),
    ] = None,
    reload: Annotated[
        bool | None,
        typer.Option(
            "--reload",
            help="Watch --patterns DIR; when a file changes, rebuild its charms with the new "
            "code, keeping their stored state.",
        ),
    ] = None,
    demo: Annotated[
        bool | None,
        typer.Option(
            "--demo",
            help="Demo mode, offline: a fake Google, a fake Gmail and a scripted LLM in the "
            "server, and a Google Auth charm and a Gmail search to try them with.",
        ),
    ] = None,
) -> None:
    """Run the HTTP API server until Ctrl-C or SIGTERM.

    Prints a one-time link that logs a browser in as the local user.

    Flags override CHARMSPACE_* environment variables, which override a .env file.
    """
    from charmspace.server.run import serve as run
    from charmspace.server.run import settings_from

    given: dict[str, Any] = {
        "host": host,
        "port": port,
        "data": data,
        "storage": storage,
        "identity": identity,
        "log_json": log_json,
        "patterns": patterns,
        "reload": reload,
        "demo": demo,
    }
    run(settings_from(given))
