"""``charmspace id``: create identities and show their DIDs (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from charmspace.cli.context import LOCAL_KEY, group, stderr
from charmspace.identity import Identity

app = group("Create identities (Ed25519 keys in PKCS#8 PEM) and show their did:key DIDs.")


def _print_key(identity: Identity) -> None:
    typer.echo(identity.to_pem().decode("ascii"), nl=False)


@app.command("new")
def new(
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
        _print_key(identity)
        return
    identity.save(out, overwrite=force)
    stderr().print(Text(f"Wrote {identity.did} to {out}"))


@app.command("did")
def did(
    file: Annotated[
        Path | None,
        typer.Argument(
            help=f"A PKCS#8 PEM key file [default: the local user's, {LOCAL_KEY}].",
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


@app.command("derive")
def derive(
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
        _print_key(identity)
    else:
        typer.echo(identity.did)
