"""The API's request and response bodies (they make /openapi.json complete)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from charmspace.patterns.charms import CharmBase
from charmspace.patterns.charms import CharmInfo as CharmInfo  # a charm as listed: the same here


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(Model):
    ok: bool


class Meta(Model):
    server: str = Field(description="The server's DID (its service identity).")
    version: str


class SpaceInfo(Model):
    space: str
    owner: str
    acl: dict[str, Literal["READ", "WRITE", "OWNER"]]
    created_at: float


class CreateSpace(Model):
    """Create the caller's home space (``space`` = the caller's DID) or a named space.

    A named space's DID is derived from the caller's key (``Identity.derive``),
    so only the caller can compute its key: ``proof`` is that key's creation
    proof for the caller (``charmspace.storage.proof.creation_proof``), unpadded
    base64url (see docs/server.md).
    """

    space: str = Field(max_length=128)
    proof: str | None = Field(default=None, max_length=128)


class AclChange(Model):
    subject: str = Field(max_length=128, description='A DID, or "*" for anyone.')
    capability: Literal["READ", "WRITE", "OWNER"] | None = Field(
        description="null revokes the subject's grant."
    )


class PatternInfo(Model):
    name: str
    import_path: str
    tags: list[str]
    description: str
    inputs: dict[str, JsonValue] = Field(description="JSON Schema of the pattern's inputs.")


class CreateCharm(Model):
    pattern: str = Field(max_length=200, description="The name of an installed pattern.")
    inputs: dict[str, JsonValue] = Field(default_factory=dict)


class CharmSummary(CharmBase):
    """One charm as ``GET`` shows it: its pattern, name, result and last error."""

    name: JsonValue = Field(description="The charm's $NAME, if it has one.")
    result: JsonValue = Field(description="The result, links resolved, without $NAME and $UI.")
    error: JsonValue = Field(description="The last error a handler or derived value raised.")


class CellValue(Model):
    value: JsonValue


class CellWritten(Model):
    ok: bool
    space: str | None
    seq: int


class Event(Model):
    event: JsonValue = Field(description="The event, validated by the handler's event type.")


class ErrorInfo(Model):
    type: str
    message: str


class Accepted(Model):
    accepted: bool


class CommitOutcome(Model):
    ok: bool
    space: str | None
    seq: int
    error: ErrorInfo | None


class CallOutcome(Model):
    ok: bool
    value: JsonValue
    space: str | None
    seq: int
    error: ErrorInfo | None


class Favorite(Model):
    id: str
    space: str
    name: str
    tags: list[str]


class CharmRef(Model):
    space: str = Field(max_length=128)
    id: str = Field(max_length=200)


class Wish(Model):
    query: str
    result: Favorite | None
    candidates: list[Favorite]


CauseKind = Literal[
    "event",
    "edit",
    "link",
    "derived",
    "start",
    "create",
    "rebuild",
    "remove",
    "job",
    "error",
    "outbox",
    "other",
]


class Cause(Model):
    """Why a commit happened (the principal says as whom it ran)."""

    kind: CauseKind = Field(
        description="event: a handler took an event; edit: a direct edit of a cell; link: an "
        "input linked to another cell; derived: derived values recomputed; start: a charm "
        "started; create/rebuild/remove: a charm's lifecycle; job, error, outbox: bookkeeping."
    )
    detail: str | None = Field(
        description="The handler (event), the charm's name (start, remove), the pattern "
        "(create, rebuild), the input (link), the job, or where an error was recorded."
    )
    charm: str | None = Field(description="The charm whose handler ran (event).")
    stream: str | None = Field(description="The stream the event was sent to (event).")


class LogEntry(Model):
    seq: int
    principal: str = Field(description="The DID the commit ran as.")
    time: float
    ids: list[str]
    meta: dict[str, JsonValue]
    cause: Cause


class SourceRef(Model):
    """A cell to link from: a charm's result, or the cell at ``path`` in it."""

    space: str = Field(max_length=128)
    id: str = Field(max_length=200)
    path: str = Field(
        default="",
        max_length=2000,
        description="A cell in the result (``a/0/b``); empty: all of it.",
    )


class LinkInput(Model):
    source: SourceRef


class Linked(Model):
    ok: bool
    space: str
    seq: int


class Document(Model):
    space: str
    id: str
    seq: int
    exists: bool
    value: JsonValue


class Challenge(Model):
    challenge: str = Field(description="Sign it (see docs/server.md) within two minutes, once.")
    expires: float


class Login(Model):
    """A browser's login: its DID and its signature of a challenge (unpadded base64url)."""

    did: str = Field(max_length=128)
    challenge: str = Field(max_length=128)
    signature: str = Field(max_length=128)


class SessionInfo(Model):
    did: str = Field(description="Who the request acts as.")
    expires: float | None = Field(
        default=None, description="When the session ends (none for a signed request)."
    )
    csrf: str | None = Field(
        default=None, description="The session's CSRF token, also in the charmspace_csrf cookie."
    )
