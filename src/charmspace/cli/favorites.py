"""``charmspace favorite`` and ``charmspace wish``: the charms you keep at hand, found by tag."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from charmspace.cli.context import confirm, confirm_removed, emit, fail, group, options, table

app = group("Your favorite charms (kept in your home space); `wish` finds one by tag.")

IdArg = Annotated[str, typer.Argument(help="The charm's id, in --space.", metavar="ID")]


def _table(found: list[dict[str, Any]]) -> Any:
    shown = table("id", "name", "tags", "space")
    for fav in found:
        shown.add_row(fav["id"], fav["name"], " ".join(fav["tags"]), fav["space"])
    return shown


@app.command("add")
def add(ctx: typer.Context, id: IdArg) -> None:
    """Favorite a charm you can read (in --space; default your home space)."""
    opts = options(ctx)
    favorite = opts.client().favorites.add(opts.space, id)
    confirm(opts, f"Favorited {favorite['name']} ({id}).", favorite)


@app.command("rm")
def rm(ctx: typer.Context, id: IdArg) -> None:
    """Remove a charm from your favorites (nothing changes if it is not one)."""
    opts = options(ctx)
    client = opts.client()
    was = any(f["id"] == id and f["space"] == opts.space for f in client.favorites.list())
    client.favorites.remove(opts.space, id)
    if was:
        confirm_removed(opts, id, f"Unfavorited {id}.")
    else:  # the same answer for scripts: rm is idempotent, and the id is not a favorite now
        confirm_removed(
            opts,
            id,
            f"{id} (in {opts.space}) is not one of your favorites; nothing changed. "
            "`charmspace favorite ls` lists them, with their spaces.",
        )


@app.command("ls")
def ls(ctx: typer.Context) -> None:
    """List your favorites, oldest first."""
    opts = options(ctx)
    found: list[dict[str, Any]] = opts.client().favorites.list()
    emit(opts, found, lambda console: console.print(_table(found)))


def wish(
    ctx: typer.Context,
    query: Annotated[
        str, typer.Argument(help="A tag, e.g. '#counter' (quote it for the shell).", metavar="TAG")
    ],
) -> None:
    """Find the favorite a tag names: what a pattern's wish('#tag') would get.

    charmspace wish '#counter'

    Exits 1 when none of your favorites has the tag.
    """
    opts = options(ctx)
    answer = opts.client().wish(query)

    def human(console: Console) -> None:
        result = answer["result"]
        console.print(f"{result['name']}  {result['id']}  ({result['space']})", markup=False)

    if answer["result"] is None:
        if opts.as_json:
            emit(opts, answer)
        fail(
            f"none of your favorites is tagged {query}; "
            "favorite one with `charmspace favorite add ID`."
        )
    emit(opts, answer, human)
