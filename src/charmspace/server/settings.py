"""The server's settings: ``CHARMSPACE_*`` environment variables, a ``.env`` file, or flags.

Every setting has a default that works on a laptop; ``docs/server.md`` lists them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from charmspace.identity.local import local_identity_path
from charmspace.integrations.google.oauth import GoogleSettings


class Settings(BaseSettings):
    """How ``charmspace serve`` runs: flags, then ``CHARMSPACE_*`` variables, then ``.env``."""

    model_config = SettingsConfigDict(
        env_prefix="CHARMSPACE_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = Field(
        default="127.0.0.1", description="Address to listen on (loopback by default)."
    )
    port: int = Field(
        default=8000, ge=0, le=65535, description="TCP port to listen on (0: any free)."
    )
    data: Path = Field(
        default=Path(".charmspace"),
        description="Data directory: the server's identity (server.pem) and, by default, "
        "the SQLite storage (store/).",
    )
    identity: Path | None = Field(
        default=None,
        description="The local user's key file, shared with the CLI, that the one-time login "
        "link logs a browser in as; default ~/.config/charmspace/identity.pem (created 0600).",
    )
    storage: str | None = Field(
        default=None,
        description="Storage URL (sqlite:///dir or memory://); default sqlite in DATA/store.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        description="Largest request body accepted; larger is refused (413).",
    )
    max_json_depth: int = Field(
        default=64,
        ge=1,
        description="Deepest nesting of a JSON request body; deeper is refused (400).",
    )
    clock_skew: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a signed request's time may differ from the server's.",
    )
    max_nonces: int = Field(
        default=1_000_000,
        ge=1,
        description="Nonces remembered within the skew window by all identities together "
        "(replay protection); when full, the identity holding the most forgets its oldest.",
    )
    max_nonces_per_did: int = Field(
        default=10_000,
        ge=1,
        description="Signed requests one identity may make within the skew window; past it, "
        "its own requests are refused (429) until its oldest nonce expires.",
    )
    max_sessions_per_did: int = Field(
        default=100,
        ge=1,
        description="Browser sessions one identity may hold; logging in once more ends its "
        "oldest session.",
    )
    max_sessions_per_address: int = Field(
        default=1_000,
        ge=1,
        description="Live browser sessions logged in from one client address; past it, a "
        "login from there gets 429 until one of them ends. When the server's 100,000 are "
        "all held, the address holding the most loses its oldest session.",
    )
    max_challenges_per_address: int = Field(
        default=100,
        ge=1,
        description="Unanswered login challenges one client address may hold; past it, it "
        "gets 429 until one is used or expires.",
    )
    max_websockets_per_did: int = Field(
        default=32,
        ge=1,
        description="Open /api/ws connections one identity may have; past it, the upgrade "
        "is refused (429).",
    )
    max_websockets_per_address: int = Field(
        default=200,
        ge=1,
        description="Open /api/ws connections from one client address, whatever the "
        "identities; past it, the upgrade is refused (429).",
    )
    max_websockets: int = Field(
        default=10_000,
        ge=1,
        description="Open /api/ws connections the server serves in all; past it, the upgrade "
        "is refused (429).",
    )
    call_timeout: float = Field(
        default=30.0, gt=0, description="Seconds a stream call waits for the handler's commit."
    )
    ws_send_queue: int = Field(
        default=256,
        ge=1,
        description="Frames a WebSocket may have waiting to be sent; a client that falls "
        "further behind is closed (1013).",
    )
    demo_banner: str = Field(
        default="",
        description="A notice every page of the web shell shows at the top (demo mode).",
    )
    demo: bool = Field(
        default=False,
        description="Demo mode: serve a fake Google, a fake Gmail and a scripted LLM under "
        "/_demo/, point the integrations at them, and seed a Google Auth charm and a Gmail "
        "search for the local user (offline; never for real use).",
    )
    log_json: bool = Field(default=False, description="Log JSON lines instead of text.")
    google: GoogleSettings = Field(
        default_factory=GoogleSettings,
        description="Google sign-in: CHARMSPACE_GOOGLE_* variables (see docs/google.md).",
    )
    patterns: Path | None = Field(
        default=None,
        description="A directory of pattern files (*.py) to install, besides the bundled "
        "library and installed packages.",
    )
    reload: bool = Field(
        default=False,
        description="Watch the patterns directory and rebuild the charms of an edited file, "
        "keeping their stored state (for pattern authors; needs a patterns directory).",
    )

    @model_validator(mode="after")
    def _patterns_directory(self) -> Settings:
        if self.patterns is not None and not self.patterns.is_dir():
            raise ValueError(
                f"patterns: {self.patterns} is not a directory; give the directory that "
                "holds your pattern files (*.py)"
            )
        if self.reload and self.patterns is None:
            raise ValueError("reload watches the patterns directory: give --patterns DIR too")
        if self.demo and not self.port and not self.google.public_url:
            raise ValueError(
                "demo mode needs to know the server's URL: give --port (not 0) or "
                "CHARMSPACE_GOOGLE_PUBLIC_URL"
            )
        return self

    @property
    def public_url(self) -> str | None:
        """The URL browsers reach the server at: the configured one, else host and port."""
        if self.google.public_url:
            return self.google.public_url.rstrip("/")
        if not self.port:
            return None
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def storage_url(self) -> str:
        """The storage URL: the one configured, or SQLite in the data directory."""
        if self.storage:
            return self.storage
        return f"sqlite:///{(self.data / 'store').resolve()}"

    @property
    def local_identity_path(self) -> Path:
        return self.identity or local_identity_path()

    @property
    def identity_path(self) -> Path:
        return self.data / "server.pem"
