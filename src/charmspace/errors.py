"""Every exception charmspace raises, in one tree.

::

    CharmspaceError
    ├── IdentityError                  malformed DID, wrong key file, bad key material
    │   └── InsecureKeyFileError       path, mode (others may read or write the key file)
    ├── StorageError
    │   ├── ConflictError              space, id, expected_seq, actual_seq (never values)
    │   ├── AuthorizationError         principal, space, needed capability
    │   │   ├── MissingPrincipalError  space, action (no acting principal was given)
    │   │   └── SpaceClaimError        space, owner (creating a space needs its key)
    │   ├── LimitExceededError         limit, actual, allowed
    │   ├── InvalidIdError             space, id, reason (not a usable document id)
    │   ├── SpaceNotFoundError         space
    │   ├── SpaceExistsError           space
    │   ├── StorageURLError            url, reason
    │   ├── StoragePermissionError     path, reason (the data is fine; access is not)
    │   ├── StoragePathError           path, reason (no directory can be there: change it)
    │   ├── DiskFullError              path
    │   ├── StorageIOError             path, reason (busy, I/O error: retry)
    │   ├── CorruptStorageError        space, path, reason
    │   ├── StorageVersionError        path, version, supported (written by a newer release)
    │   ├── HistoryPrunedError         space, at, horizon (a point in time retention dropped)
    │   └── LeaseLostError             space, holder, reason (another host may have the space)
    ├── TransactionError
    │   ├── WriteIsolationError        open, requested
    │   ├── TransactionRequiredError
    │   ├── TransactionClosedError
    │   └── ReadOnlyCellError          cell, owner action
    ├── LinkError                      cycle / hop limit / unresolvable
    │   └── InputLinkError             charm id, input, source (a link that cannot be followed)
    ├── SchemaError                    path, reason
    │   ├── NotJSONError               path, reason (also a TypeError)
    │   ├── PathTypeError              path, found, needed (also a TypeError)
    │   └── InputTypeError             charm id, pattern, input, wanted, found (an edit's value)
    ├── StreamError
    │   ├── NotAStreamError            location
    │   │   └── UnknownStreamError     charm id, name, the streams the charm has
    │   ├── DeadlockError              the cycle of charms
    │   ├── CallTimeoutError           timeout
    │   └── AwaitedSendError           location (a handler awaited its own send)
    ├── CycleError                     the names of the actions in a cycle
    ├── DerivedTimeoutError            action, timeout
    ├── JobError                       job id, reason
    ├── PatternError                   construction mistakes (captured cells, bad annotations)
    │   └── PatternNotInstalledError   space, charm id, pattern (a stored charm's, not known)
    ├── CharmNotFoundError             space, charm id
    ├── UnknownCellError               charm id, name, the names its result has (also a KeyError)
    ├── NotACharmError                 what was given instead (also a TypeError)
    ├── RuntimeClosedError             action (the runtime was closed before it)
    ├── CharmCreatorError              space, charm id, claimed creator, who wrote the claim
    └── IntegrationError               OAuth / Gmail / LLM failures with a machine-readable reason

``TypeError`` for a non-JSON value is raised as :class:`NotJSONError`, which is
both a :class:`SchemaError` and a :class:`TypeError`, so ``except TypeError``
written by someone who read only the cell docs still works.

Every error carries the fields a caller needs as attributes, and ``str(error)``
is a sentence a user can act on. No error ever carries a document value: values
can be secrets (OAuth tokens) and can be large.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence


class CharmspaceError(Exception):
    """Base class of every error charmspace raises on purpose."""


class IdentityError(CharmspaceError):
    """A DID, key or key file that cannot be used."""


class InsecureKeyFileError(IdentityError):
    """A key file that users other than its owner may read or write.

    Refused, not merely warned about, as ssh refuses such files: whoever could
    read the file may have copied the key, and whoever could write it may have
    put their own key in its place, so acting with it proves nothing.
    """

    def __init__(self, path: str, mode: int) -> None:
        self.path = path
        self.mode = mode
        super().__init__(
            f"Key file {path} has mode {mode:04o}, so other users can read or change it; "
            f"it was not used. Run `chmod 600 {shlex.quote(path)}` to make it private to you. "
            "If others could read it, the key may have been copied: "
            "make a new one with `charmspace id new`."
        )


# --- storage -------------------------------------------------------------------


class StorageError(CharmspaceError):
    """A storage operation was refused or could not be carried out."""


class ConflictError(StorageError):
    """A commit read or wrote a document that another commit changed since.

    Carries only sequence numbers, never values: conflicts are logged and shown
    to users, and document values can be secrets.
    """

    def __init__(self, space: str, id: str, expected_seq: int, actual_seq: int) -> None:
        self.space = space
        self.id = id
        self.expected_seq = expected_seq
        self.actual_seq = actual_seq
        super().__init__(
            f"Conflict in space {space}: document {id} was expected at seq {expected_seq} "
            f"but is now at seq {actual_seq}. Another commit changed it; read it again and retry."
        )


class AuthorizationError(StorageError):
    """The acting principal lacks the capability an operation needs."""

    def __init__(self, principal: str, space: str, needed: str, action: str = "") -> None:
        self.principal = principal
        self.space = space
        self.needed = needed
        self.action = action
        what = f" to {action}" if action else ""
        super().__init__(
            f"{principal} is not allowed{what} in space {space}: it needs {needed}. "
            f"Act as an identity that has {needed} there, or have the space's owner grant "
            f"it: the owner runs `charmspace --space {space} space acl set {principal} "
            f"{needed}`, or in Python storage.set_acl(space, owner, principal, "
            f"Capability.{needed}). If the space is yours, act as the identity that owns it "
            "(`charmspace --identity FILE`, Runtime(identity=...), or the local user's key "
            "file that both use by default)."
        )


class MissingPrincipalError(AuthorizationError):
    """A storage call was given no acting principal (``None`` or not a DID string).

    Why refused rather than treated as a stranger: with no service identity
    configured, ``None == service`` once let a missing principal through every
    check. An operation nobody is accountable for is refused before any ACL is
    looked at.
    """

    def __init__(self, space: str, action: str, given: object = None) -> None:
        self.principal = ""
        self.space = space
        self.needed = "a principal"
        self.action = action
        self.given = given
        where = f" in space {space}" if space else ""
        StorageError.__init__(
            self,
            f"No acting principal was given to {action}{where} "
            f"(it was {'an empty string' if given == '' else type(given).__name__}); "
            "storage refuses anonymous calls. Pass the DID of the identity acting "
            "(for a runtime, runtime.principal).",
        )


class SpaceClaimError(AuthorizationError):
    """A space was to be created for an owner who has not shown that it holds the space's key.

    Why: a space is named by a DID, and a DID belongs to whoever holds its key.
    Without this rule anyone could create another user's home space (or a named
    space derived from their key) first, and own it.
    """

    def __init__(self, space: str, owner: str, reason: str) -> None:
        self.principal = owner
        self.owner = owner
        self.space = space
        self.needed = "the space's key"
        self.action = "create the space"
        self.reason = reason
        StorageError.__init__(
            self,
            f"{owner} cannot create space {space}: {reason}. A space is created by the holder "
            "of its DID's key: either the owner is the space's own DID, or the call carries "
            "proof=creation_proof(space_identity, owner), signed with the space's key "
            "(Runtime.create_space(name=...) does this for you).",
        )


class InvalidIdError(StorageError):
    """A document id that is not a non-empty string (a commit with it writes nothing).

    Checked before a commit joins a group, so one handler's bad id fails only
    its own commit, never the others grouped with it.
    """

    def __init__(self, space: str, id: object, reason: str) -> None:
        self.space = space
        self.id = id
        self.reason = reason
        # Only a string is shown (and cut short): anything else may be a value
        # passed in the wrong place, and values can be secrets.
        if isinstance(id, str):
            shown = repr(id) if len(repr(id)) <= 60 else repr(id)[:57] + "..."
        else:
            shown = f"of type {type(id).__name__}"
        super().__init__(
            f"Document id {shown} in space {space} cannot be used: {reason}; nothing was "
            "written. Use a non-empty string, such as entity_id(cause)."
        )


class LimitExceededError(StorageError):
    """A document, commit or path is larger than the configured limit."""

    def __init__(self, limit: str, actual: int, allowed: int, detail: str = "") -> None:
        self.limit = limit
        self.actual = actual
        self.allowed = allowed
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{limit} is {actual}, over the limit of {allowed}{extra}; nothing was written."
        )


class SpaceNotFoundError(StorageError):
    """The named space does not exist in this store."""

    def __init__(self, space: str) -> None:
        self.space = space
        super().__init__(
            f"Space {space} does not exist here. Check the space's DID (or --space NAME); "
            "a space of yours is created with runtime.create_space() or `charmspace space "
            "new NAME`, and your home space also by creating a charm in it."
        )


class SpaceExistsError(StorageError):
    """A space with this DID already exists."""

    def __init__(self, space: str) -> None:
        self.space = space
        super().__init__(f"Space {space} already exists.")


class StorageURLError(StorageError):
    """A storage URL that names no known backend, is malformed, or names no usable directory.

    ``reason`` says what is wrong and how to write it instead; nothing is created.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            f"Cannot open storage {url!r}: {reason}. Use memory:// or sqlite:///path/to/dir."
        )


class StoragePermissionError(StorageError):
    """The operating system refused access to the storage's directory or files.

    Kept apart from :class:`CorruptStorageError` on purpose: the data is intact,
    and advice to move a "damaged" file away would lose good data.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"Permission denied for {path}: {reason}. The data is not damaged; give this "
            "process read and write access to the storage directory and its files (or run "
            "as the user who owns them), then retry."
        )


class StoragePathError(StorageError):
    """The storage's path cannot hold it: a parent that does not exist or is a file, say.

    Apart from :class:`StorageIOError` on purpose: that one may pass, so it
    says to retry; this one stays until the path (or what is at it) changes.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(
            f"Cannot use {path}: {reason}; nothing was written. Change the path to a "
            "directory this process may create and write (not below a file, nor in a "
            "system directory such as /proc), or create it first with `mkdir -p` as a user "
            "who may, then open the storage again."
        )


class DiskFullError(StorageError):
    """The disk holding the storage is full; the operation wrote nothing."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"The disk holding {path} is full; nothing was written. Free space on that disk "
            "(or move the storage to a larger one), then retry."
        )


class StorageIOError(StorageError):
    """The storage could not be read or written for a reason that may pass (busy, I/O)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"Cannot use {path}: {reason}. Nothing was written; retry.")


class CorruptStorageError(StorageError):
    """A space's file exists but is not a usable charmspace database (damaged or foreign).

    Never treated as an absent space: that would let anyone create the space
    again over the damaged file, and lose what a repair could have saved.
    """

    def __init__(self, space: str, path: str, reason: str) -> None:
        self.space = space
        self.path = path
        self.reason = reason
        super().__init__(
            f"The file {path} for space {space} is damaged or not a charmspace database: "
            f"{reason}. Keep the file (it may be recoverable; charmspace never overwrites it) "
            "and restore the space from a backup, or move the file out of the storage "
            "directory if it does not belong there."
        )


class StorageVersionError(StorageError):
    """A space's file was written by a newer charmspace, in a format this one cannot read.

    Not damage: the file is left untouched, and the release that wrote it reads it.
    """

    def __init__(self, path: str, version: int, supported: int) -> None:
        self.path = path
        self.version = version
        self.supported = supported
        super().__init__(
            f"The file {path} has storage format {version}, written by a newer charmspace; "
            f"this one reads formats up to {supported}. Upgrade charmspace to open it "
            "(the file is untouched)."
        )


class HistoryPrunedError(StorageError):
    """A point-in-time read asked for a seq older than the space's retention horizon.

    Retention keeps every document's value as of the horizon and everything
    after it; older revisions are gone, so the read cannot be answered exactly
    (and a wrong answer, such as "did not exist", would be worse than none).
    """

    def __init__(self, space: str, at: int, horizon: int) -> None:
        self.space = space
        self.at = at
        self.horizon = horizon
        super().__init__(
            f"Space {space} keeps history from seq {horizon} on; seq {at} is older and its "
            f"revisions were pruned by the retention policy. Read at seq {horizon} or later, "
            "or keep more history (the keep_commits / keep_seconds options)."
        )


class LeaseLostError(StorageError):
    """A lease on a space ended while its block was still running.

    Its holder must stop hosting the space at once: another process may be
    running the space's handlers and derived values by now, and two hosts would
    compute and commit them twice. Raised by :meth:`Lease.check
    <charmspace.storage.lease.Lease.check>`, never by the lease's block itself.
    """

    def __init__(self, space: str, holder: str, reason: str) -> None:
        self.space = space
        self.holder = holder
        self.reason = reason
        super().__init__(
            f"The lease of {holder} on space {space} was lost: {reason}. Stop running the "
            "space's handlers and derived values, leave the lease's block, and take the "
            "lease again before hosting the space."
        )


# --- transactions --------------------------------------------------------------


class TransactionError(CharmspaceError):
    """A transaction was used in a way its rules forbid."""


class WriteIsolationError(TransactionError):
    """A transaction that writes one space tried to write another.

    Why a transaction writes one space: each space commits on its own sequence,
    so a commit spanning two spaces could land in one and not the other. The fix
    is never to force the write through: it is to ask a charm that lives in the
    other space to make the change, by sending an event to one of its streams.
    """

    def __init__(self, open: str, requested: str) -> None:
        self.open = open
        self.requested = requested
        super().__init__(
            f"Cannot write to space {requested} in this transaction: it already writes to "
            f"{open}. A transaction writes to one space. To change data in another space, "
            "send an event to a stream of a charm that lives there "
            "(declare it as Stream[...] in the handler's state and use send() or call())."
        )


class TransactionRequiredError(TransactionError):
    """A write was attempted outside any transaction."""

    def __init__(self, what: str = "write to a cell") -> None:
        super().__init__(
            f"Cannot {what} outside a transaction. Use `async with runtime.edit() as tx:` "
            "and write through tx, or send an event to a stream."
        )


class TransactionClosedError(TransactionError):
    """A transaction was used after it committed or aborted."""

    def __init__(self, state: str) -> None:
        self.state = state
        super().__init__(
            f"This transaction is already {state}; open a new one with runtime.edit()."
        )


class ReadOnlyCellError(TransactionError):
    """A write to a derived cell, which only its action may compute."""

    def __init__(self, cell: str, action: str) -> None:
        self.cell = cell
        self.action = action
        super().__init__(
            f"Cell {cell} is derived by action {action!r} and is read-only. "
            "Change the inputs it is derived from instead."
        )


# --- links, schemas, streams -----------------------------------------------------


class LinkError(CharmspaceError):
    """A link that cannot be followed: a cycle, too many hops, or a bad target."""

    def __init__(self, reason: str, location: str = "") -> None:
        self.reason = reason
        self.location = location
        at = f" at {location}" if location else ""
        super().__init__(f"Cannot follow link{at}: {reason}.")


class InputLinkError(LinkError):
    """Linking a charm's input to ``source`` would make a link no read can follow.

    Refused before the commit: such a link commits like any other, and then
    every read of the charm (its result, its UI, its handlers) fails on it.
    """

    def __init__(self, charm_id: str, input: str, source: str, reason: str) -> None:
        self.charm_id = charm_id
        self.input = input
        self.source = source
        CharmspaceError.__init__(
            self,
            f"Cannot link input {input!r} of charm {charm_id} to {source}: the link could "
            f"not be followed ({reason}), so nothing was linked. Link the input to a cell "
            "that does not lead back to it.",
        )
        self.reason = reason
        self.location = source


class SchemaError(CharmspaceError):
    """A value or event does not match the declared schema."""

    def __init__(self, path: Sequence[str | int], reason: str) -> None:
        self.path = tuple(path)
        self.reason = reason
        where = "/".join(str(p) for p in self.path) or "(root)"
        super().__init__(f"Invalid value at {where}: {reason}.")


class NotJSONError(SchemaError, TypeError):
    """A value that is not JSON (dict, list, str, int, float, bool, None)."""


class PathTypeError(SchemaError, TypeError):
    """A write below a value that cannot hold it: a key under a list or a string, say.

    Why refuse instead of making room: replacing the list or string with an
    object would drop what was there, silently. ``path`` is where the
    mismatching value is, ``found`` its JSON type (``"a list"``), ``needed``
    what the write needs there (``"an object"``); never the value itself.
    """

    def __init__(
        self,
        path: Sequence[str | int],
        found: str,
        needed: str,
        write: Sequence[str | int],
        hint: str,
    ) -> None:
        self.path = tuple(path)
        self.found = found
        self.needed = needed
        self.write = tuple(write)
        self.reason = f"it holds {found}, not {needed}"
        where = "/".join(str(p) for p in self.path) or "the document root"
        target = "/".join(str(p) for p in self.write)
        CharmspaceError.__init__(
            self,
            f"Cannot write at {target}: {where} holds {found}, not {needed}; "
            f"nothing was written. {hint}",
        )


class InputTypeError(SchemaError):
    """An edit from outside a charm would give one of its typed inputs a value of another type.

    Refused before anything is written: the charm's handlers and derived
    values read the input as the type its pattern declares, and every one of
    them would fail on the stored value from then on. ``path`` is where the
    mismatch is inside the input (``("value",)``, ``("items", 2)``), ``found``
    its JSON type (``"a string"``), never the value itself.
    """

    def __init__(
        self,
        charm_id: str,
        pattern: str,
        input: str,
        wanted: str,
        path: Sequence[str | int],
        found: str,
        reason: str,
    ) -> None:
        self.charm_id = charm_id
        self.pattern = pattern
        self.input = input
        self.wanted = wanted
        self.path = tuple(path)
        self.found = found
        self.reason = reason
        where = "/".join(str(p) for p in self.path)
        made = f"make it {found}" if len(self.path) <= 1 else f"put {found} at {where}"
        CharmspaceError.__init__(
            self,
            f"Input {input!r} of charm {charm_id} (pattern {pattern}) is {wanted}, and this "
            f"edit would {made} ({reason}); nothing was written. Write a value of type "
            f"{wanted} there (`charmspace patterns` lists each pattern's inputs).",
        )


class StreamError(CharmspaceError):
    """An event could not be delivered or answered."""


class NotAStreamError(StreamError):
    """An event was sent to a location that holds no stream."""

    def __init__(self, location: str) -> None:
        self.location = location
        super().__init__(
            f"{location} holds no stream, so the event was not delivered. "
            'Send events to a handler exported by a charm (a value shaped {"$stream": true}).'
        )


class UnknownStreamError(NotAStreamError):
    """A charm was asked for a stream under a name its result does not export as one."""

    def __init__(self, charm_id: str, name: str, streams: Sequence[str]) -> None:
        self.charm_id = charm_id
        self.name = name
        self.streams = tuple(streams)
        self.location = f"{charm_id}/{name}"
        StreamError.__init__(
            self,
            f"Charm {charm_id} has no stream {name!r}; its streams are: "
            f"{', '.join(self.streams) or 'none'}. Use one of those names.",
        )


class DeadlockError(StreamError):
    """A call would wait on itself: a charm calling itself, or a cycle of calls."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__(
            "Call would deadlock: " + " -> ".join(self.cycle) + ". "
            "Use send() (which does not wait) or restructure the calls."
        )


class CallTimeoutError(StreamError):
    """A call did not get its answer in time."""

    def __init__(self, location: str, timeout: float) -> None:
        self.location = location
        self.timeout = timeout
        super().__init__(
            f"Call to {location} got no answer within {timeout:g} s; the event may still run."
        )


class AwaitedSendError(StreamError):
    """A handler awaited a send it made itself.

    Why it cannot work: a handler's send is delivered only once the handler's
    transaction commits (an aborted handler sends nothing), and the handler
    cannot commit while it waits — so the wait would never end and the charm
    would hang. ``call()`` is delivered at once and waits for the answer.
    """

    def __init__(self, location: str) -> None:
        self.location = location
        super().__init__(
            f"A handler awaited its own send to {location}, which is delivered only after "
            "the handler commits, so it would wait forever. To wait for the target inside "
            "a handler, use `await stream.call(event)`; or send without awaiting and pass "
            "on_commit= to learn the outcome."
        )


# --- scheduler, patterns, charms -------------------------------------------------


class CycleError(CharmspaceError):
    """Derived cells that depend on each other in a circle."""

    def __init__(self, actions: Sequence[str]) -> None:
        self.actions = tuple(actions)
        super().__init__(
            "Derived values depend on each other in a cycle: "
            + " -> ".join(self.actions)
            + ". Break the cycle; a derived value cannot depend on itself."
        )


class DerivedTimeoutError(CharmspaceError):
    """An async derived value did not finish in time; its previous value stays."""

    def __init__(self, action: str, timeout: float) -> None:
        self.action = action
        self.timeout = timeout
        super().__init__(
            f"Derived value {action} did not finish within {timeout:g} s; its previous value "
            "is kept. Move long work into a job (start_job) and let the derived value read "
            "its result, or raise Runtime(derived_timeout=...)."
        )


class JobError(CharmspaceError):
    """A job could not be started, or was interrupted."""


class PatternError(CharmspaceError):
    """A mistake in how a pattern or handler is written or built."""


class PatternNotInstalledError(PatternError):
    """A stored charm names a pattern this process does not know, so it cannot be rebuilt.

    Why the runtime does not simply import what the charm's record names: the
    record is a document, and anyone with WRITE on the space can edit it.
    Importing a module is running its code, so only patterns the operator
    installed (or the application registered) are ever used.
    """

    def __init__(self, space: str, charm_id: str, pattern: str) -> None:
        self.space = space
        self.charm_id = charm_id
        self.pattern = pattern
        super().__init__(
            f"Charm {charm_id} in space {space} is an instance of pattern {pattern}, which is "
            "not installed here, so it was not started. Install the pattern (a package declaring "
            "the 'charmspace.patterns' entry point, or a file in the patterns directory) or "
            "register it with charmspace.patterns.registry.register(), then load the charm again."
        )


class CharmNotFoundError(CharmspaceError):
    """No charm with this id in this space."""

    def __init__(self, space: str, charm_id: str) -> None:
        self.space = space
        self.charm_id = charm_id
        super().__init__(
            f"No charm {charm_id} in space {space}. Check the id and the space: "
            "`charmspace charm ls` (with --space) or runtime.charms.list(space) lists the "
            "charms there."
        )


class UnknownCellError(CharmspaceError, KeyError):
    """``charm[name]`` for a name the charm's result does not have.

    Why refuse: a misspelt ``charm["vaule"]`` used to be a cell that reads
    ``None`` and that ``runtime.edit()`` would add to the result, so the typo
    showed up as a wrong value much later. Also a ``KeyError``, as for a dict.
    """

    def __init__(self, charm_id: str, name: str, names: Sequence[str]) -> None:
        self.charm_id = charm_id
        self.name = name
        self.names = tuple(names)
        CharmspaceError.__init__(
            self,
            f"Charm {charm_id} has no {name!r} in its result; it has: "
            f"{', '.join(self.names) or 'nothing'}. Use one of those names.",
        )

    def __str__(self) -> str:  # KeyError's own would show the message in quotes
        return str(self.args[0])


class NotACharmError(CharmspaceError, TypeError):
    """A charm was expected and something else was given, most often a coroutine.

    Why its own error: ``runtime.charms.create(...)`` without ``await`` gives a
    coroutine, and passing that on used to fail deep inside with an
    ``AttributeError`` about ``.id`` that did not point at the missing ``await``.
    """

    def __init__(self, where: str, given: object, expected: str = "a Charm") -> None:
        self.where = where
        self.given = type(given).__name__
        hint = (
            " Did you forget `await` (charms.create and charms.get are coroutines)?"
            if self.given == "coroutine"
            else ""
        )
        super().__init__(f"{where} takes {expected}, not a {self.given}.{hint}")


class RuntimeClosedError(CharmspaceError):
    """Something new was asked of a runtime after :meth:`close`: nothing was done.

    Why refuse rather than carry on: in memory a closed runtime's storage
    still accepts commits, so a charm created after ``close()`` would be
    written and never run; on SQLite the same call failed on the closed files.
    Both backends now refuse alike, before anything is written.
    """

    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(
            f"The runtime is closed, so it cannot {action}; nothing was done. "
            "Open a new Runtime on the same storage to go on."
        )


class CharmCreatorError(CharmspaceError):
    """A stored charm names a creator storage cannot vouch for: it is not rebuilt.

    Why: a rebuilt charm's derived values act for its creator, and anyone with
    WRITE on the space can edit the charm's documents; a creator is believed only
    if storage recorded that very principal writing the claim.
    """

    def __init__(self, space: str, charm_id: str, claimed: str, written_by: str | None) -> None:
        self.space = space
        self.charm_id = charm_id
        self.claimed = claimed
        self.written_by = written_by
        super().__init__(
            f"Charm {charm_id} in space {space} names {claimed} as its creator, but that "
            f"claim was written by {written_by or 'an unknown principal'}; it is not started "
            "with another principal's rights. Its creator can remove it and create it again."
        )


class IntegrationError(CharmspaceError):
    """An external integration (OAuth, Gmail, an LLM) failed.

    ``reason`` is machine-readable (``invalid_grant``, ``upstream_503``, ``auth``)
    so callers branch on it instead of searching message text.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
