"""A signed client of ``/api/ws``: connect as an identity, send and receive JSON frames."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from charmspace.identity import Identity
from charmspace.signing import sign_request


async def connect_signed(url: str, identity: Identity) -> ClientConnection:
    """A WebSocket to ``url``'s ``/api/ws``, its upgrade signed by ``identity`` (close it)."""
    header = sign_request(identity, "GET", "/api/ws", b"", int(time.time())).render()
    return await connect(
        url.replace("http://", "ws://") + "/api/ws",
        additional_headers={"Authorization": header},
        compression=None,
        proxy=None,
    )


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def receive(ws: ClientConnection, timeout: float = 30) -> dict[str, Any]:
    """The next frame, parsed; TimeoutError if none comes within ``timeout`` seconds."""
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return frame


async def frames(ws: ClientConnection) -> AsyncIterator[dict[str, Any]]:
    """Every frame until the connection closes, parsed."""
    async for message in ws:
        frame: dict[str, Any] = json.loads(message)
        yield frame
