"""``/api/ws``: live cell values and the web shell's views (docs/server.md, docs/shell.md)."""

from __future__ import annotations

import os

from fastapi import APIRouter, WebSocket

from charmspace.server.live import Connection
from charmspace.server.sessions import SESSION_COOKIE, SessionStore

router = APIRouter()

TEST_DELAY_VARIABLE = "CHARMSPACE_TESTING_WS_DELAY_MS"
"""Tests only: every frame to the page leaves this many milliseconds late.

Read from the environment and nowhere else (no flag, no setting, no docs for
users): the browser tests use it to play a slow network.
"""


@router.websocket("/api/ws")
async def live(websocket: WebSocket) -> None:
    """Subscriptions and views; the RequestGate authenticated the upgrade already."""
    principal = websocket.scope.get("state", {}).get("principal")
    if not isinstance(principal, str):  # fail closed should the gate ever be bypassed
        await websocket.close(1008)
        return
    app = websocket.app
    sessions: SessionStore = app.state.sessions
    session = sessions.get(websocket.cookies.get(SESSION_COOKIE, ""))
    csrf = session.csrf if session is not None and session.did == principal else None
    if "authorization" in websocket.headers:
        csrf = None  # a signed upgrade: the signature proves who it is
    delay = os.environ.get(TEST_DELAY_VARIABLE, "")
    await websocket.accept()
    connection = Connection(
        websocket,
        app.state.runtime,
        principal,
        app.state.settings.ws_send_queue,
        csrf=csrf,
        send_delay=int(delay) / 1000 if delay.isdigit() else 0.0,
    )
    await connection.run()
