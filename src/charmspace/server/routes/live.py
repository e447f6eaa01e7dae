"""``/api/ws``: live cell values over a WebSocket (the protocol is in docs/server.md)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from charmspace.server.live import Connection

router = APIRouter()


@router.websocket("/api/ws")
async def live(websocket: WebSocket) -> None:
    """Subscribe to cells; the RequestGate authenticated the upgrade already."""
    principal = websocket.scope.get("state", {}).get("principal")
    if not isinstance(principal, str):  # fail closed should the gate ever be bypassed
        await websocket.close(1008)
        return
    await websocket.accept()
    app = websocket.app
    connection = Connection(
        websocket, app.state.runtime, principal, app.state.settings.ws_send_queue
    )
    await connection.run()
