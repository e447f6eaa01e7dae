"""``charmspace space``: create spaces, list them, read and change their ACLs."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

from charmspace.cli.context import Options, confirm, emit, group, options, table

app = group("Create spaces, list the ones you can use, and share them (ACLs).")
acl_app = typer.Typer(
    help="Who may read, write or own the space (--space; default your home space).",
    invoke_without_command=True,
)
app.add_typer(acl_app, name="acl")


class Capability(StrEnum):
    READ = "READ"
    WRITE = "WRITE"
    OWNER = "OWNER"


@app.command("new")
def new(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(help="The space's name (its DID is derived from your key).", metavar="NAME"),
    ],
) -> None:
    """Create a space of yours named NAME (nothing happens if you have it already).

    charmspace space new work

    charmspace --space work charm new counter
    """
    opts = options(ctx)
    info = opts.client().spaces.create(name)
    confirm(opts, f"Space {name}: {info['space']}", info)


@app.command("ls")
def ls(ctx: typer.Context) -> None:
    """List the spaces you can read, with your capability in each."""
    opts = options(ctx)
    me = opts.identity.did
    found: list[dict[str, Any]] = opts.client().spaces.list()

    def human(console: Console) -> None:
        shown = table("space", "you", "owner", "created")
        for info in found:
            mine = "OWNER" if info["owner"] == me else info["acl"].get(me, info["acl"].get("*"))
            label = f"{info['space']} (home)" if info["space"] == me else info["space"]
            owner = "you" if info["owner"] == me else info["owner"]
            shown.add_row(label, mine or "", owner, _when(info["created_at"]))
        console.print(shown)

    emit(opts, found, human)


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def _show_acl(opts: Options, info: dict[str, Any]) -> None:
    me = opts.identity.did

    def human(console: Console) -> None:
        shown = table("subject", "capability", title=f"ACL of {info['space']}")
        owner = info["owner"] + (" (owner, you)" if info["owner"] == me else " (owner)")
        shown.add_row(owner, "OWNER")
        for subject, capability in sorted(info["acl"].items()):
            shown.add_row(subject + (" (you)" if subject == me else ""), capability)
        console.print(shown)

    emit(opts, info, human)


@acl_app.callback()
def acl(ctx: typer.Context) -> None:
    """Show the ACL (also `acl ls`); `acl set` and `acl rm` change it (needs OWNER)."""
    if ctx.invoked_subcommand is None:
        acl_ls(ctx)


@acl_app.command("ls")
def acl_ls(ctx: typer.Context) -> None:
    """Show who may read, write or own the space."""
    opts = options(ctx)
    _show_acl(opts, opts.client().spaces.acl(opts.space))


@acl_app.command("set")
def acl_set(
    ctx: typer.Context,
    did: Annotated[
        str, typer.Argument(help='The DID to grant to, or "*" for anyone.', metavar="DID")
    ],
    capability: Annotated[
        Capability,
        typer.Argument(case_sensitive=False, help="What they may do.", metavar="READ|WRITE|OWNER"),
    ],
) -> None:
    """Grant DID the capability READ, WRITE or OWNER in the space (needs OWNER).

    charmspace space acl set did:key:z6Mk… READ

    charmspace --space work space acl set '*' READ      (anyone may read)
    """
    opts = options(ctx)
    info = opts.client().spaces.set_acl(opts.space, did, capability.value)
    confirm(opts, f"{did} may now {capability.value} in {opts.space}.", info)


@acl_app.command("rm")
def acl_rm(
    ctx: typer.Context,
    did: Annotated[str, typer.Argument(help='The DID to revoke, or "*".', metavar="DID")],
) -> None:
    """Revoke what DID was granted in the space (needs OWNER)."""
    opts = options(ctx)
    info = opts.client().spaces.set_acl(opts.space, did, None)
    confirm(opts, f"{did} has no grant in {opts.space} any more.", info)
