"""``watch``: a cell's values as they change, over the server's WebSocket ``/api/ws``.

Each watch opens its own connection, signed like a request, and subscribes to
one cell. The first value is the cell's value now; then one per commit that
changed it, in commit order (a burst may arrive as its last value). A slow
reader is disconnected by the server (its send queue is bounded), which ends
the iteration with :class:`~charmspace.client.APIError`, type ``Disconnected``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from charmspace.client.ops import APIError, answer, unreachable
from charmspace.client.retry import BUSY, DEFAULT_RETRY, Retry, gave_up
from charmspace.identity import Identity
from charmspace.signing import sign_request
from charmspace.types import JSONValue, PathSegment

PATH = "/api/ws"


@dataclass(frozen=True, slots=True)
class Change:
    """A watched cell's value, current as of the space's commit ``seq``."""

    seq: int
    value: JSONValue


async def watch(
    base_url: str,
    identity: Identity,
    space: str,
    id: str,
    path: Sequence[PathSegment],
    retry: Retry = DEFAULT_RETRY,
) -> AsyncGenerator[Change, None]:
    """The values of the cell at ``path`` in charm ``id``'s result, as they change.

    An upgrade refused as busy (429: too many connections of this identity, or
    its nonces) is signed again and tried again as ``retry`` allows.
    """
    url = httpx.URL(base_url)
    ws_url = url.copy_with(scheme="wss" if url.scheme == "https" else "ws", raw_path=PATH.encode())
    try:
        ws = await _connect(str(ws_url), identity, retry)
    except TimeoutError:  # a server that is there but slow: not "no server"
        raise
    except OSError as refused:  # refused, or a host name that does not resolve
        raise unreachable(url, refused) from refused
    async with ws:
        frame = {"op": "subscribe", "id": 1, "space": space, "charm": id, "path": list(path)}
        await ws.send(json.dumps(frame))
        try:
            async for message in ws:
                received = json.loads(message)
                if received.get("op") == "value":
                    yield Change(int(received["seq"]), received["value"])
                elif received.get("op") == "error":
                    error = dict(received.get("error") or {})
                    kind = str(error.pop("type", "Error"))
                    message_ = str(error.pop("message", ""))
                    raise APIError(int(received.get("status", 400)), kind, message_, error)
        except ConnectionClosed as closed:
            raise APIError(
                0,
                "Disconnected",
                f"The server closed the watch: {closed.rcvd.reason if closed.rcvd else ''}",
                {"code": closed.rcvd.code if closed.rcvd else 1006},
            ) from None
        raise APIError(0, "Disconnected", "The server closed the watch.", {})


async def _connect(ws_url: str, identity: Identity, retry: Retry) -> ClientConnection:
    """The open WebSocket, each try signed anew; a refused upgrade raises :class:`APIError`."""
    tries, waited = 0, 0.0
    while True:
        header = sign_request(identity, "GET", PATH, b"", int(time.time())).render()
        try:
            headers = {"Authorization": header}
            return await connect(ws_url, additional_headers=headers, max_size=None)
        except InvalidStatus as refused:
            response = refused.response
            after = response.headers.get("retry-after")
            delay = retry.delay(response.status_code, after, tries, waited)
            if delay is None:
                note = gave_up(tries, waited, after) if response.status_code == BUSY else ""
                answer(
                    httpx.Response(
                        response.status_code,
                        headers=list(response.headers.raw_items()),
                        content=bytes(response.body or b""),
                    ),
                    note,
                )
                raise
        await asyncio.sleep(delay)
        tries, waited = tries + 1, waited + delay
