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

from charmspace.cli.context import NOT_RUNNING, Options, emit, options, table
from charmspace.client.ops import DEFAULT_URL
from charmspace.errors import CharmspaceError
from charmspace.identity import Identity

_stderr = Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)


class _ReportingGroup(TyperGroup):
    """Reports domain errors from any command below it as a message, not a traceback."""

    # ``Any``: the Context class lives in ``click`` or in Typer's vendored copy,
    # depending on the Typer version; this override does not care which.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except CharmspaceError as error:
            _stderr.print(Text(f"Error: {error}", style="red"))
            raise typer.Exit(1) from None
        except httpx.TransportError as error:
            _stderr.print(Text(f"Error: {_unreachable(ctx, error)}", style="red"))
            raise typer.Exit(1) from None


def _unreachable(ctx: Any, error: httpx.TransportError) -> str:
    """What to tell a user whose request got no answer."""
    found = ctx.find_object(Options)
    url = found.url if found is not None else DEFAULT_URL
    if isinstance(error, httpx.ConnectError):
        return NOT_RUNNING.format(url=url)
    return f"The server at {url} did not answer ({type(error).__name__}: {error or 'no detail'})."


app = typer.Typer(
    cls=_ReportingGroup,
    help="charmspace: reactive charms whose state lives in spaces owned by did:key identities.",
    no_args_is_help=True,
)

id_app = typer.Typer(
    help="Create identities (Ed25519 keys in PKCS#8 PEM) and show their did:key DIDs.",
    no_args_is_help=True,
)
app.add_typer(id_app, name="id")


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
        typer.Option(
            "--identity",
            help="The key file requests are signed with (default: $CHARMSPACE_IDENTITY or "
            "~/.config/charmspace/identity.pem, created on first use: the local user of "
            "`charmspace serve`).",
            metavar="FILE",
            show_default=False,
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


@id_app.command("new")
def id_new(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write the key to FILE (created with mode 0600) and print its DID to "
            "stderr, instead of printing the key to stdout.",
            metavar="FILE",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="With --out, replace FILE if it exists.")
    ] = False,
) -> None:
    """Create a new identity and print its private key as PKCS#8 PEM.

    charmspace id new > me.pem        (then: chmod 600 me.pem)

    charmspace id new --out me.pem    (mode 0600; refuses to replace a file)
    """
    identity = Identity.generate()
    if out is None:
        typer.echo(identity.to_pem().decode("ascii"), nl=False)
        return
    identity.save(out, overwrite=force)
    _stderr.print(Text(f"Wrote {identity.did} to {out}"))


@id_app.command("did")
def id_did(
    file: Annotated[
        Path | None,
        typer.Argument(
            help="A PKCS#8 PEM key file [default: the local user's, $CHARMSPACE_IDENTITY or "
            "~/.config/charmspace/identity.pem, created on first use].",
            metavar="FILE",
        ),
    ] = None,
) -> None:
    """Print the DID of the identity in a key file (by default the local user's).

    The local user's key is the one `charmspace serve`'s login link logs a browser in as.
    """
    if file is None:
        from charmspace.identity.local import load_or_create, local_identity_path

        typer.echo(load_or_create(local_identity_path()).did)
        return
    typer.echo(Identity.load(file).did)


@id_app.command("derive")
def id_derive(
    passphrase: Annotated[
        str,
        typer.Argument(help="The passphrase; its SHA-256 is the key's seed.", metavar="PASSPHRASE"),
    ],
    name: Annotated[
        str | None,
        typer.Option(
            help="Derive the identity named NAME (e.g. a space) from the passphrase's.",
            metavar="NAME",
        ),
    ] = None,
    pem: Annotated[
        bool, typer.Option("--pem", help="Print the private key as PEM instead of the DID.")
    ] = False,
) -> None:
    """Print the DID of the identity a passphrase stands for.

    Anyone who knows the passphrase has the key, and a passphrase given on the
    command line is visible in shell history: use this for test and demo
    identities.
    """
    identity = Identity.from_passphrase(passphrase)
    if name is not None:
        identity = identity.derive(name)
    if pem:
        typer.echo(identity.to_pem().decode("ascii"), nl=False)
    else:
        typer.echo(identity.did)


def main() -> None:
    """Entry point of the ``charmspace`` script."""
    app()


# The command groups, each in its module; imported last, as they add to ``app``.
from charmspace.cli import charms, favorites, spaces  # noqa: E402

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
        typer.Option(
            help="The local user's key file, which the printed login link logs a browser in "
            "as [default: ~/.config/charmspace/identity.pem, created 0600].",
            metavar="FILE",
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
    }
    run(settings_from(given))
