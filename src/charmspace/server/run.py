"""Run the server in this process with uvicorn (what ``charmspace serve`` does).

uvicorn handles SIGINT and SIGTERM: it stops accepting connections, lets the
requests in flight finish, then runs the lifespan's shutdown, which closes the
runtime (queued events finish, commits become durable, storage closes).
"""

from __future__ import annotations

from types import FrameType

import uvicorn

from charmspace.server.app import create_app
from charmspace.server.logs import configure
from charmspace.server.settings import Settings


class _Server(uvicorn.Server):
    """uvicorn, where a stop asked for by SIGINT/SIGTERM is a clean exit (status 0).

    uvicorn re-raises the signal once it has shut down, so the process would
    report that it died of it even after a complete, graceful shutdown.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def serve(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; logs to stderr, one line per request."""
    configure(as_json=settings.log_json)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,  # ours, from configure()
        access_log=False,  # the RequestGate logs each request, with its id
        lifespan="on",
        timeout_graceful_shutdown=10,
        # Longer than clients keep idle connections (charmspace.client: 2 s), so a
        # client never reuses a connection the server is closing at that moment.
        timeout_keep_alive=30,
    )
    server = _Server(config)
    server.run()
    if not server.started:  # e.g. the port is taken: uvicorn has logged why
        raise SystemExit(3)
