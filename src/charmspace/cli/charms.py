"""``charmspace charm``: create charms, read and edit their cells, send events, watch, link, log."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console

from charmspace.cli.context import (
    NOT_RUNNING,
    Options,
    confirm,
    confirm_removed,
    emit,
    fail,
    group,
    options,
    parse_json,
    resolve_space,
    short,
    stderr,
    table,
)
from charmspace.client import APIError, AsyncClient, ServerUnreachableError
from charmspace.types import PathSegment

app = group(
    "Create charms from installed patterns, read and edit their cells, send events, "
    "watch them change, link them, and read who changed them."
)

IdArg = Annotated[
    str, typer.Argument(help="The charm's id (`charmspace charm ls` lists them).", metavar="ID")
]
PathArg = Annotated[
    str,
    typer.Argument(
        help="A cell in the charm's result, e.g. value or items/0/title.", metavar="PATH"
    ),
]


def path_of(text: str) -> tuple[PathSegment, ...]:
    """``a/0/b`` as path segments (the server reads digits as list indexes)."""
    return tuple(part for part in text.strip("/").split("/") if part)


def _inputs(given: list[str]) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    for item in given:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(
                f"{item!r} is not NAME=JSON, e.g. --input value=3 or --input 'title=\"hi\"'.",
                param_hint="--input",
            )
        inputs[name] = parse_json(value, f"--input {name}")
    return inputs


@app.command("new")
def new(
    ctx: typer.Context,
    pattern: Annotated[
        str, typer.Argument(help="An installed pattern (`charmspace patterns`).", metavar="PATTERN")
    ],
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="An input as NAME=JSON; repeat for more.",
            metavar="NAME=JSON",
        ),
    ] = None,
) -> None:
    """Create a charm of PATTERN in the space and start it; prints its id.

    charmspace charm new counter --input value=5

    charmspace charm new notes --input 'title="Groceries"'
    """
    inputs = _inputs(input or [])
    opts = options(ctx)
    info = opts.client().charms.create(pattern, space=opts.space, inputs=inputs)
    emit(opts, info, lambda console: console.print(info["id"], markup=False))


@app.command("ls")
def ls(ctx: typer.Context) -> None:
    """List the charms in the space."""
    opts = options(ctx)
    try:
        found: list[dict[str, Any]] = opts.client().charms.list(opts.space)
    except APIError as error:
        # Your home space comes to be with your first charm: until then it has none.
        if error.type != "SpaceNotFoundError" or opts.space != opts.identity.did:
            raise
        found = []

    def human(console: Console) -> None:
        shown = table("id", "pattern", "created")
        for info in found:
            shown.add_row(info["id"], info["pattern"], _when(info["created_at"]))
        console.print(shown)

    emit(opts, found, human)


def _when(timestamp: float) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.localtime(timestamp))


@app.command("inspect")
def inspect(ctx: typer.Context, id: IdArg) -> None:
    """Show a charm: its pattern, name, result (secrets redacted) and last error."""
    opts = options(ctx)
    summary = opts.client().charms.get(opts.space, id)

    def human(console: Console) -> None:
        console.print(f"id       {summary['id']}", markup=False)
        console.print(f"space    {summary['space']}", markup=False)
        console.print(f"pattern  {summary['pattern']}", markup=False)
        if summary["name"] is not None:
            console.print(f"name     {summary['name']}", markup=False)
        if summary["error"] is not None:
            console.print(f"error    {json.dumps(summary['error'])}", markup=False, style="red")
        console.print("result", markup=False)
        console.print(json.dumps(summary["result"], indent=2, ensure_ascii=False), markup=False)

    emit(opts, summary, human)


@app.command("get")
def get(ctx: typer.Context, id: IdArg, path: PathArg) -> None:
    """Print the value of a cell as JSON (links followed).

    charmspace charm get of:… value
    """
    opts = options(ctx)
    value = opts.client().cell(opts.space, id, *path_of(path)).get()
    typer.echo(json.dumps(value, indent=None if opts.as_json else 2, ensure_ascii=False))


@app.command("set")
def set_(
    ctx: typer.Context,
    id: IdArg,
    path: PathArg,
    value: Annotated[str, typer.Argument(help="The new value as JSON.", metavar="JSON")],
) -> None:
    """Set a cell to a JSON value (a direct edit; derived cells refuse it).

    charmspace charm set of:… value 10

    charmspace charm set of:… title '"Groceries"'
    """
    opts = options(ctx)
    parsed = parse_json(value, "JSON")
    written = opts.client().cell(opts.space, id, *path_of(path)).set(parsed)
    confirm(opts, f"Set {path} (commit {written['seq']}).", written)


@app.command("call")
def call(
    ctx: typer.Context,
    id: IdArg,
    stream: Annotated[
        str, typer.Argument(help="The stream to send to, e.g. increment.", metavar="STREAM")
    ],
    event: Annotated[
        str, typer.Argument(help="The event as JSON.", metavar="[JSON]", show_default=True)
    ] = "{}",
    wait: Annotated[
        bool,
        typer.Option(
            "--wait", help="Wait until the handler committed; print its result and commit."
        ),
    ] = False,
) -> None:
    """Send an event to a charm's stream; with --wait, wait for the handler's commit.

    charmspace charm call of:… increment --wait

    charmspace charm call of:… adjust '{"amount": 5}'
    """
    opts = options(ctx)
    payload = parse_json(event, "JSON")
    target = opts.client().stream(opts.space, id, stream)
    if not wait:
        accepted = target.send(payload)
        confirm(opts, f"Sent to {stream}.", accepted)
        return
    try:
        with stderr().status(f"Waiting for {stream}'s handler to commit…", spinner="dots"):
            outcome = target.call(payload)
    except KeyboardInterrupt:
        # Ctrl-C stops the waiting, not the event: it may have reached the server.
        where = f"--space {opts.space_option} " if opts.space_option else ""
        stderr().print(
            f"Stopped waiting. The event may have reached {stream} already, and then its "
            f"handler still runs and commits; `charmspace {where}charm log {id}` shows "
            "whether it did.",
            markup=False,
        )
        raise typer.Exit(130) from None
    if not outcome["ok"]:  # the handler raised: its commit was aborted
        error = outcome.get("error") or {}
        fail(f"the handler of {stream} raised {error.get('type')}: {error.get('message')}")

    def human(console: Console) -> None:
        console.print(f"Committed {stream} as commit {outcome['seq']}.", markup=False)
        if outcome["value"] is not None:
            console.print(json.dumps(outcome["value"], ensure_ascii=False), markup=False)

    emit(opts, outcome, human)


@app.command("rm")
def rm(ctx: typer.Context, id: IdArg) -> None:
    """Stop a charm and delete its documents."""
    opts = options(ctx)
    opts.client().charms.remove(opts.space, id)
    confirm_removed(opts, id, f"Removed {id}.")


@app.command("link")
def link(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            help="The charm to read from, and optionally a cell in its result: ID or ID/PATH.",
            metavar="SOURCE_ID[/PATH]",
        ),
    ],
    target: Annotated[
        str,
        typer.Argument(
            help="The charm and the input to link: ID/INPUT.", metavar="TARGET_ID/INPUT"
        ),
    ],
    source_space: Annotated[
        str | None,
        typer.Option(
            "--from-space",
            help="The source's space, a DID or the name of one of yours (default: --space).",
            metavar="NAME|DID",
        ),
    ] = None,
) -> None:
    """Link a charm's input to another charm's cell: the value flows live from then on.

    Needs WRITE in the target's space (--space) and READ in the source's.

    charmspace charm link of:aaa/value of:bbb/value
    """
    opts = options(ctx)
    source_id, _, source_path = source.partition("/")
    target_id, _, input_name = target.partition("/")
    if not source_id:
        raise typer.BadParameter("name the source charm: ID or ID/PATH.", param_hint="SOURCE")
    if not target_id or not input_name or "/" in input_name:
        raise typer.BadParameter("name the target as ID/INPUT.", param_hint="TARGET_ID/INPUT")
    from_space = resolve_space(opts.identity, source_space) if source_space else opts.space
    linked = opts.client().charms.link(
        opts.space, target_id, input_name, (from_space, source_id), *path_of(source_path)
    )
    confirm(opts, f"Linked {target} to {source} (commit {linked['seq']}).", linked)


@app.command("watch")
def watch(
    ctx: typer.Context,
    id: IdArg,
    path: Annotated[
        str,
        typer.Argument(help="A cell in the result (default: the whole result).", metavar="PATH"),
    ] = "",
) -> None:
    """Print a cell's value now and each time it changes, until Ctrl-C.

    charmspace charm watch of:… value
    """
    opts = options(ctx)
    try:
        asyncio.run(_watch(opts, id, path_of(path)))
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends
        pass
    except ServerUnreachableError:
        fail(NOT_RUNNING.format(url=opts.url))
    except TimeoutError:
        fail(f"The server at {opts.url} did not answer the watch in time.")


async def _watch(opts: Options, id: str, path: tuple[PathSegment, ...]) -> None:
    async with AsyncClient(opts.url, opts.identity) as client:
        if path:  # a misspelt name is refused here, not watched as null until Ctrl-C
            await client.cell(opts.space, id, *path).get()
        async for change in client.cell(opts.space, id, *path).watch():
            value = json.dumps(change.value, ensure_ascii=False)
            if opts.as_json:
                typer.echo(f'{{"seq": {change.seq}, "value": {value}}}')
            else:
                typer.echo(f"[{change.seq}] {value}")  # echo flushes: each change shows at once


_CAUSES = {
    "edit": "direct edit",
    "derived": "derived values",
    "other": "unknown",
}


def cause_text(cause: dict[str, Any]) -> str:
    """A log entry's cause in words: ``event on stream increment``, ``direct edit``, …"""
    kind, detail = cause["kind"], cause.get("detail")
    if kind == "event":
        return f"event on stream {cause.get('stream') or detail}"
    if kind == "link":
        return f"link of input {detail}"
    if kind == "start":
        return f"start-up of {detail}"
    if kind in _CAUSES:
        return _CAUSES[kind]
    return f"{kind} {detail}" if detail else str(kind)


@app.command("log")
def log(
    ctx: typer.Context,
    id: IdArg,
    since: Annotated[
        int, typer.Option(min=0, help="Only commits after this seq.", metavar="SEQ")
    ] = 0,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
) -> None:
    """Show the commits that changed a charm: when, as whom, and why.

    Each row is one commit of the charm's space: its seq, time, the principal
    it ran as (you, or the charm's creator for derived values and start-up)
    and its cause (an event on a stream, a direct edit, derived values, …).

    charmspace charm log of:… --since 10
    """
    opts = options(ctx)
    client = opts.client()
    entries: list[dict[str, Any]] = client.charms.log(opts.space, id, since, limit)
    me = opts.identity.did

    def human(console: Console) -> None:
        server = client.meta()["server"]
        shown = table("seq", "time", "space", "as", "cause", title=f"Commits of {id}")
        for entry in entries:
            who = entry["principal"]
            label = " (you)" if who == me else " (server)" if who == server else ""
            shown.add_row(
                str(entry["seq"]),
                _when(entry["time"]),
                short(opts.space),
                short(who) + label,
                cause_text(entry["cause"]),
            )
        console.print(shown)

    emit(opts, entries, human)
