"""B6 (web shell): a click in a view until its patch and its ack are back, over ``/api/ws``.

A real ``charmspace serve`` process (SQLite in a temporary directory) and one
page's worth of the view protocol, spoken from this process: ``hello``,
``open`` a charm, then ``n`` times, one after another, an ``event`` naming a
node, and a wait for its ``ack`` and its ``patch``; clicks are paced under the
limit of 50 events a second per tab.

Two charms: the bundled counter (a four-node UI; a click changes one text
node), and a notes list of 200 items where a click on one checkbox toggles that
item. The notes figures show what a change costs when the view is large: the
server renders again only the nodes that show the changed cell, and sends
only what changed.

Figures, per charm: p50 and p99 from sending the event to its first patch
arriving, p50 and p99 to its ack, and the median number of patch operations
per click. Every patch of a commit comes before its ack; the ack also waits
for the derived values the commit changes (the notes' mapped list and count).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bench.cli import parser, run_and_print
from bench.server import serving
from bench.stats import percentile
from bench.ws import connect_signed, receive, send
from charmspace.client import AsyncClient
from charmspace.identity import Identity

NOTES = 200


def _find(node: dict[str, Any], tag: str) -> str:
    """The id of the first node with ``tag`` and an event handler, depth first."""
    if node.get("tag") == tag and node.get("on"):
        return str(node["id"])
    for child in node.get("children", []):
        if "tag" in child:
            try:
                return _find(child, tag)
            except KeyError:
                continue
    raise KeyError(tag)


async def _clicks(url: str, owner: Identity, charm: str, tag: str, name: str, n: int) -> Any:
    async with await connect_signed(url, owner) as ws:
        await send(ws, {"type": "hello", "v": 1, "tab": "bench"})
        charm_ref = {"space": owner.did, "id": charm}
        await send(ws, {"type": "open", "id": "bench:0", "view": "v", "charm": charm_ref})
        root = None
        while True:
            frame = await receive(ws)
            if frame["type"] == "mount":
                root = frame["root"]
            if frame["type"] == "ack":
                break
        node = _find(root or {}, tag)
        to_patch: list[float] = []
        to_ack: list[float] = []
        ops: list[int] = []
        for i in range(1, n + 1):
            await asyncio.sleep(1 / 45)  # a tab may send at most 50 events a second
            id = f"bench:{i}"
            sent = time.perf_counter()
            await send(
                ws,
                {
                    "type": "event",
                    "id": id,
                    "view": "v",
                    "node": node,
                    "name": name,
                    "detail": {"data_index": 0},  # which note the checkbox toggles
                },
            )
            patched = acked = False
            while not (patched and acked):
                frame = await receive(ws)
                if frame["type"] == "patch" and not patched:
                    patched = True
                    to_patch.append(time.perf_counter() - sent)
                    ops.append(len(frame["ops"]))
                if frame["type"] == "nack":
                    raise RuntimeError(f"refused: {frame}")
                if frame["type"] == "ack" and frame["id"] == id:
                    if not patched:
                        raise RuntimeError(f"the ack of {id} came before its patch")
                    acked = True
                    to_ack.append(time.perf_counter() - sent)
    return to_patch, to_ack, ops


async def _round(url: str, n: int) -> dict[str, float]:
    owner = Identity.generate()
    figures: dict[str, float] = {}
    async with AsyncClient(url, owner) as client:
        await client.spaces.create()
        counter = (await client.charms.create("counter"))["id"]
        notes = [{"title": f"note {i}", "done": False} for i in range(NOTES)]
        listing = (await client.charms.create("notes", inputs={"notes": notes}))["id"]
    for label, charm, tag, name in (
        ("counter", counter, "button", "click"),
        ("notes", listing, "checkbox", "change"),
    ):
        to_patch, to_ack, ops = await _clicks(url, owner, charm, tag, name, n)
        figures[f"{label}_patch_p50_ms"] = percentile(to_patch, 0.50) * 1e3
        figures[f"{label}_patch_p99_ms"] = percentile(to_patch, 0.99) * 1e3
        figures[f"{label}_ack_p50_ms"] = percentile(to_ack, 0.50) * 1e3
        figures[f"{label}_ack_p99_ms"] = percentile(to_ack, 0.99) * 1e3
        figures[f"{label}_ops"] = statistics.median(ops)
    return figures


def run(n: int = 200, rounds: int = 3) -> dict[str, object]:
    with serving("charmspace-b6-") as url:
        results = [asyncio.run(_round(url, n)) for _ in range(rounds)]
    out: dict[str, object] = {"bench": "B6_shell"}
    for key in results[0]:
        out[key] = round(statistics.median(r[key] for r in results), 2)
    out.update({"clicks": n, "rounds": rounds, "notes": NOTES})
    return out


def main(argv: list[str] | None = None) -> None:
    args = parser("bench.b6_shell", __doc__, "clicks", quick=(30, 1)).parse_args(argv)
    run_and_print(args, run, full=(200, 3), quick=(30, 1))


if __name__ == "__main__":
    main()
