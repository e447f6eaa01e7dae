"""Charms: persisted, running instances of patterns.

A charm's documents, all in its space:

- the **argument** (its inputs: values, or redirect links to other cells),
- the **internal** document (stream markers, bound constants, internal cells,
  and the ``$charm`` record: pattern import path, source hash, creator),
- one document per **derived** value,
- the **result** (links to the above, constants, ``$NAME``, ``$UI``).

Ids derive from the charm id, so rebuilding the pattern after a restart finds
the same documents: handlers work again and derived values are intact.

A pattern that calls another builds a **child charm** (see
:mod:`charmspace.patterns.build`): it is written, started, rebuilt and removed
with its parent, its ``$charm`` record names its ``parent`` and ``root``, and
it is not in the index — ``list()`` shows only charms someone created, the
things a user can remove on their own.
"""

from __future__ import annotations

import builtins
import logging
import re
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from charmspace.errors import (
    AuthorizationError,
    CharmCreatorError,
    CharmNotFoundError,
    CharmspaceError,
    ConflictError,
    InputLinkError,
    LinkError,
    NotACharmError,
    PatternError,
    PatternNotInstalledError,
    UnknownCellError,
    UnknownStreamError,
)
from charmspace.patterns.build import (
    Built,
    build_charm,
    charm_docs,
    creator_doc,
    rebuilt_argument,
)
from charmspace.patterns.edits import CharmCell
from charmspace.patterns.index import bucket_of, index_address, index_entries
from charmspace.patterns.pattern import Pattern
from charmspace.patterns.refs import Ref
from charmspace.patterns.registry import known_pattern, register, reimportable, resolve_pattern
from charmspace.runtime.address import Address, is_stream_marker, link_to
from charmspace.runtime.cell import Cell
from charmspace.runtime.stream import Stream
from charmspace.runtime.transaction import Transaction
from charmspace.runtime.unit import HandlerSpec, Unit
from charmspace.storage import DELETE, Capability
from charmspace.storage.backends.memory import MemoryBackend
from charmspace.storage.ids import entity_id
from charmspace.types import DID, EntityId, JSONValue, SpaceDID
from charmspace.values import setpath

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime

log = logging.getLogger(__name__)

CREATE_ATTEMPTS = 5
SHOWN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:<>-]{0,199}")
"""What a stored pattern name may look like to be shown in an error or a log line."""


class CharmBase(BaseModel):
    """A charm and its pattern: what every description of a charm starts with.

    A pydantic model rather than a dataclass because the server answers with
    these very classes (its ``GET`` of one charm extends this one), so each
    field is declared once for Python and for the API.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: EntityId
    space: SpaceDID
    pattern: str
    import_path: str = Field(
        default="",
        description="The pattern's module:function, which tells two patterns of one name apart.",
    )


class CharmInfo(CharmBase):
    """A charm as listed: id, space, pattern, and when it was created.

    ``pattern`` is the pattern's name; ``import_path`` (``module:function``)
    tells apart two patterns of one name (empty for charms listed before it
    was recorded).
    """

    created_at: float


class Charm:
    """A running charm: ``charm["value"]`` is a result cell, ``charm.stream("adjust")`` a stream."""

    def __init__(
        self, charms: Charms, unit: Unit, pattern: Pattern, parent: Charm | None = None
    ) -> None:
        self.runtime = charms.runtime
        self.unit = unit
        self.pattern = pattern
        self.parent = parent
        """The charm whose pattern built this one, for a child charm."""
        self.children: tuple[Charm, ...] = ()
        """The child charms its pattern built, in construction order."""
        argument, internal, result = charm_docs(unit.space, unit.id)
        # Cells for code outside the charm: their writes are checked against the
        # input types (see charmspace.patterns.edits).
        self.argument: Cell[Any] = CharmCell(charms, argument)
        self.internal: Cell[Any] = CharmCell(charms, internal)
        self.result: Cell[Any] = CharmCell(charms, result)

    def __repr__(self) -> str:
        return f"<Charm {self.pattern.name} {self.id} in {self.space}>"

    @property
    def id(self) -> EntityId:
        return self.unit.id

    @property
    def space(self) -> SpaceDID:
        return self.unit.space

    @property
    def name(self) -> str:
        return self.pattern.name

    @property
    def tags(self) -> tuple[str, ...]:
        return self.pattern.tags

    @property
    def error(self) -> Cell[Any]:
        """The last error a handler or derived value of this charm raised."""
        return Cell(self.runtime, self.unit.error_address)

    def __getitem__(self, key: str) -> Cell[Any]:
        """The result's cell ``key``; a name the result lacks is :class:`UnknownCellError`.

        If the result cannot be read here (this principal may not), the cell is
        given unchecked, and its own ``get()`` says why it cannot be read.
        """
        try:
            result = Transaction(self.runtime, self.runtime.acting()).read(
                self.result.address, deep=False, track=False
            )
        except CharmspaceError:
            result = None
        if isinstance(result, dict) and key not in result:
            raise UnknownCellError(self.id, key, sorted(result))
        return self.result.key(key)

    def get(self) -> Any:
        """The result, links resolved."""
        return self.result.get()

    def stream(self, name: str) -> Stream[Any]:
        """The stream exported under ``name`` in the result.

        An unknown name raises :class:`~charmspace.errors.UnknownStreamError`
        listing the streams the charm has, here rather than at the first send.
        """
        streams = self._stream_names()
        if name not in streams:
            raise UnknownStreamError(self.id, name, streams)
        return Stream(self.runtime, self.result.address.key(name))

    def _stream_names(self) -> builtins.list[str]:
        """The result's keys that hold a stream (links followed), sorted."""
        tx = Transaction(self.runtime, self.runtime.acting())
        result = tx.read(self.result.address, deep=False)
        names = []
        for key in result if isinstance(result, dict) else ():
            try:
                value = tx.read(self.result.address.key(key), deep=False)
            except CharmspaceError:  # a link this principal cannot follow: not a stream here
                continue
            if is_stream_marker(value):
                names.append(key)
        return sorted(names)


class Charms:
    """``runtime.charms``: create, find, list, link and remove charms."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._running: dict[tuple[SpaceDID, EntityId], Charm] = {}
        self._by_argument: dict[tuple[SpaceDID, EntityId], Charm] = {}
        """The running charms by their argument document (see :meth:`with_argument`)."""
        runtime.owner_loader = self.start_stream_owner

    async def create(
        self,
        pattern: Pattern | str,
        *,
        space: SpaceDID | None = None,
        inputs: Mapping[str, Any] | None = None,
        principal: DID | None = None,
    ) -> Charm:
        """Create and start a charm of ``pattern`` (a Pattern, a name, or ``module:function``).

        Everything the charm needs is written in one transaction: a failed
        ``create`` (bad input, a pattern that raises) leaves nothing behind.
        """
        self.runtime.check_open("create a charm")
        pat = resolve_pattern(pattern) if isinstance(pattern, str) else pattern
        if not isinstance(pat, Pattern):
            raise PatternError(f"{pattern!r} is not a pattern (decorate it with @pattern)")
        register(pat)  # so this process can rebuild the charm (see registry.known_pattern)
        runtime = self.runtime
        if not reimportable(pat) and not isinstance(runtime.storage.backend, MemoryBackend):
            _warn_not_reimportable(pat)
        principal = principal or runtime.principal
        space = space or principal
        argument = pat.argument(inputs)
        charm_id = entity_id({"charm": pat.name, "space": space, "nonce": secrets.token_hex(8)})
        created_at = runtime.clock.now()
        record: dict[str, JSONValue] = {
            "id": charm_id,
            "pattern": pat.name,
            "import": pat.import_path,
            "source_hash": pat.source_hash,
            "tags": list(pat.tags),
            "creator": principal,
            "created_at": created_at,
        }
        for attempt in range(CREATE_ATTEMPTS):
            built = build_charm(runtime, pat, space, charm_id, principal, record)
            runtime.storage.ensure_space(space, principal)  # only once the pattern built
            tx = Transaction(runtime, principal, meta={"create": pat.name})
            arg_address, _internal, result_address = charm_docs(space, charm_id)
            tx.write(arg_address, argument)
            tx.write(creator_doc(space, charm_id), {"creator": principal})
            for node in built.walk():
                argument_doc, internal_doc, result_doc = node.docs
                if node.argument is not None:
                    tx.write(argument_doc, node.argument)
                tx.write(internal_doc, node.internal)
                tx.write(result_doc, node.result)
            bucket = index_address(space, bucket_of(charm_id))
            current = tx.read(bucket, deep=False)
            entries = list(current.get("charms", [])) if isinstance(current, dict) else []
            entries.append(
                {
                    "id": charm_id,
                    "pattern": pat.name,
                    "import": pat.import_path,
                    "result": result_address.id,
                    "created_at": created_at,
                }
            )
            tx.write(bucket, {"charms": entries})
            try:
                await tx.commit_to(runtime.store)
                break
            except ConflictError:
                if attempt + 1 == CREATE_ATTEMPTS:
                    raise
        return await self._start(built, principal)

    async def _start(self, built: Built, principal: DID) -> Charm:
        """Record the charm and its children as running and start their units, children first."""
        charm = self._charm_of(built, None)
        for node in built.walk():
            await node.unit.start(principal)
        return charm

    def _charm_of(self, built: Built, parent: Charm | None) -> Charm:
        charm = Charm(self, built.unit, built.pattern, parent)
        self._running[(charm.space, charm.id)] = charm
        self._by_argument[charm.argument.address.doc] = charm
        charm.children = tuple(self._charm_of(child, charm) for child in built.children)
        return charm

    def _stopped(self, charm: Charm) -> None:
        """Forget ``charm`` as running (its unit is stopped)."""
        self._running.pop((charm.space, charm.id), None)
        self._by_argument.pop(charm.argument.address.doc, None)

    def with_argument(self, space: SpaceDID, doc: EntityId) -> Charm | None:
        """The running charm whose argument (inputs) document is ``doc``, if any."""
        return self._by_argument.get((space, doc))

    async def get(self, space: SpaceDID, charm_id: EntityId) -> Charm:
        """The charm, started (and rebuilt from storage after a restart) if it is not running."""
        self.runtime.check_open("load a charm")
        charm = self._running.get((space, charm_id))
        if charm is not None:
            return charm
        return await self._load(space, charm_id)

    async def _load(self, space: SpaceDID, charm_id: EntityId) -> Charm:
        runtime = self.runtime
        _argument, internal, _result = charm_docs(space, charm_id)
        if not runtime.storage.has_space(space):
            raise CharmNotFoundError(space, charm_id)
        # Only the service may learn who made a charm nobody is running yet; from
        # there on the rebuild acts for that creator, inside the charm's space.
        log.debug("service identity reads a charm record", extra={"reason": "rebuild a charm"})
        doc = Transaction(runtime, runtime.service_did).read(internal, deep=False)
        record = doc.get("$charm") if isinstance(doc, dict) else None
        if not isinstance(record, dict):
            raise CharmNotFoundError(space, charm_id)
        root = record.get("root")
        if isinstance(root, str) and root != charm_id:  # a child: rebuilt by its root
            await self.get(space, root)
            child = self._running.get((space, charm_id))
            if child is None:  # the parent's pattern no longer builds it
                raise CharmNotFoundError(space, charm_id)
            return child
        pat = known_pattern(record.get("pattern"), record.get("import"))
        if pat is None:
            shown = _pattern_shown(record)
            log.warning(
                "charm %s names pattern %s, which is not installed; not starting it",
                charm_id,
                shown,
                extra={"charm": charm_id, "space": space, "pattern": shown},
            )
            raise PatternNotInstalledError(space, charm_id, shown)
        if pat.source_hash != record.get("source_hash"):
            log.info(
                "pattern %s changed since charm %s was saved; keeping its data",
                pat.name,
                charm_id,
                extra={"charm": charm_id, "space": space},
            )
            record = {**record, "source_hash": pat.source_hash}
        creator = self._vouched_creator(space, charm_id, record)
        built = build_charm(runtime, pat, space, charm_id, creator, record)
        tx = Transaction(runtime, creator, meta={"rebuild": pat.name}, confine=space)
        tx.write(creator_doc(space, charm_id), {"creator": creator})
        for node in built.walk():
            argument_doc, internal_doc, result_doc = node.docs
            if node.argument is not None:
                existing = tx.read_doc(space, argument_doc.id)
                tx.write(argument_doc, rebuilt_argument(existing, node.argument))
            existing = tx.read(internal_doc, deep=False)
            if isinstance(existing, dict):  # keep what earlier constructions stored there
                tx.write(internal_doc, {**existing, **node.internal})
            else:
                tx.write(internal_doc, node.internal)
            tx.write(result_doc, node.result)
        tx.commit()
        charm = self._running.get((space, charm_id))
        if charm is not None:  # started concurrently while we read
            return charm
        return await self._start(built, creator)

    def _vouched_creator(
        self, space: SpaceDID, charm_id: EntityId, record: Mapping[str, Any]
    ) -> DID:
        """The charm's creator, if storage recorded that principal writing the claim.

        The claim is the charm's creator document (or, for a charm stored before
        it existed, the internal document holding its record). Anyone with WRITE
        on the space could rewrite either; the commit log says who did.
        """
        storage, service = self.runtime.storage, self.runtime.service_did
        rev = storage.read(space, creator_doc(space, charm_id).id, service)
        if rev.exists and isinstance(rev.value, dict):
            claimed = str(rev.value.get("creator"))
        else:
            claimed = str(record.get("creator"))
            rev = storage.read(space, charm_docs(space, charm_id)[1].id, service)
        written_by = storage.committer(space, rev.seq, service)
        if written_by != claimed:
            log.warning(
                "charm %s claims creator %s, written by %s: not starting it",
                charm_id,
                claimed,
                written_by,
                extra={"charm": charm_id, "space": space},
            )
            raise CharmCreatorError(space, charm_id, claimed, written_by)
        return claimed

    async def start_stream_owner(self, address: Address) -> HandlerSpec | None:
        """The runtime's owner loader: start the charm whose internal document holds ``address``."""
        log.debug("service identity reads a charm record", extra={"reason": "start a stream owner"})
        tx = Transaction(self.runtime, self.runtime.service_did)
        doc = tx.read_doc(address.space, address.id)
        record = doc.get("$charm") if isinstance(doc, dict) else None
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            return None
        await self.get(address.space, record["id"])
        return self.runtime.handler_at(address)

    def list(
        self, space: SpaceDID | None = None, *, principal: DID | None = None
    ) -> builtins.list[CharmInfo]:
        """The charms recorded in ``space`` (default: the user's home space).

        Read as ``principal`` (default: whom the calling code acts for), who
        needs READ on the space.
        """
        self.runtime.check_open("list charms")
        space = space or self.runtime.principal
        if not self.runtime.storage.has_space(space):
            return []
        tx = Transaction(self.runtime, principal or self.runtime.acting())
        return [
            CharmInfo(
                id=e["id"],
                space=space,
                pattern=str(e.get("pattern", "?")),
                import_path=str(e.get("import", "")),
                created_at=float(e.get("created_at", 0)),
            )
            for e in index_entries(tx, space)
            if isinstance(e.get("id"), str)
        ]

    async def remove(
        self, space: SpaceDID, charm_id: EntityId, *, principal: DID | None = None
    ) -> None:
        """Stop the charm and its children; delete their documents (derived values too).

        A child charm is removed with the parent that built it, not on its own.
        The deletion commits first and the charms stop only once it did: a
        refused remove (no WRITE, a conflict) leaves them running, their jobs
        too. Without WRITE nothing is even loaded.
        """
        runtime = self.runtime
        runtime.check_open("remove a charm")
        principal = principal or runtime.acting()
        if not runtime.storage.has_space(space):
            raise CharmNotFoundError(space, charm_id)
        self._check_may_write(space, principal, f"remove charm {charm_id}")
        charm = await self.get(space, charm_id)
        if charm.parent is not None:
            raise PatternError(
                f"charm {charm_id} ({charm.name}) is a child of charm {charm.parent.id} "
                f"({charm.parent.name}), which built it: remove that charm instead"
            )
        family = _family(charm)
        owned: builtins.list[Address] = []
        derived: set[tuple[SpaceDID, EntityId]] = set()
        for member in family:
            unit = member.unit
            outputs = [action.output for action in unit.actions]
            derived.update(output.doc for output in outputs)
            owned += [
                *charm_docs(space, member.id),
                creator_doc(space, member.id),
                *outputs,
                unit.error_address,
                unit.jobs_address,
            ]
        tx = Transaction(
            runtime, principal, allowed_derived=frozenset(derived), meta={"remove": charm.name}
        )
        for address in owned:
            tx.write_doc(space, address.id, DELETE)
        bucket = index_address(space, bucket_of(charm_id))
        current = tx.read(bucket, deep=False)
        entries = current.get("charms", []) if isinstance(current, dict) else []
        tx.write(bucket, {"charms": [e for e in entries if e.get("id") != charm_id]})
        tx.commit()
        for member in family:  # no await since the commit: no event runs on deleted documents
            member.unit.stop()
            self._stopped(member)

    async def rebuild(self, module: str) -> builtins.list[Charm]:
        """Rebuild the running charms whose pattern is defined in ``module``, keeping their data.

        For a pattern author's edit-and-see loop (``charmspace serve --reload``):
        each charm stops and is rebuilt from storage, as after a restart, with
        the pattern that is known now under its recorded name and import path.
        Its inputs and named cells keep their stored values; derived values and
        the UI are computed by the new code. A charm whose pattern no longer
        builds stays stopped (its error is logged) and is rebuilt on next use.
        """
        self.runtime.check_open("rebuild charms")
        prefix = f"{module}:"
        roots = [
            charm
            for charm in self._running.values()
            if charm.parent is None and charm.pattern.import_path.startswith(prefix)
        ]
        rebuilt: builtins.list[Charm] = []
        for charm in roots:
            for member in _family(charm):
                member.unit.stop()
                self._stopped(member)
            try:
                rebuilt.append(await self._load(charm.space, charm.id))
            except Exception:  # the author's new code is broken: say so, keep serving
                log.exception(
                    "charm %s of pattern %s could not be rebuilt",
                    charm.id,
                    charm.pattern.name,
                    extra={"charm": charm.id, "space": charm.space},
                )
        return rebuilt

    def _check_may_write(self, space: SpaceDID, principal: DID, action: str) -> None:
        """Refuse ``action`` before anything is loaded or stopped if ``principal`` lacks WRITE."""
        storage = self.runtime.storage
        try:
            allowed = storage.allowed(storage.space(space, principal), principal, Capability.WRITE)
        except AuthorizationError:  # not even READ
            allowed = False
        if not allowed:
            raise AuthorizationError(principal, space, Capability.WRITE.name, action)

    async def link(
        self,
        source: Cell[Any] | Ref | Stream[Any] | Charm,
        target: Charm,
        input_name: str,
        *,
        principal: DID | None = None,
    ) -> None:
        """Bind ``target``'s input ``input_name`` to ``source`` (any space): data flows live."""
        require_charm_given(target, "charms.link(source, target, ...)")
        if not isinstance(source, Charm | Cell | Ref | Stream):
            raise NotACharmError("charms.link(source, ...)", source, "a Charm, a cell or a stream")
        if input_name not in target.pattern.inputs:
            raise PatternError(
                f"pattern {target.pattern.name} has no input {input_name!r} "
                f"(its inputs: {', '.join(target.pattern.inputs) or 'none'})"
            )
        address = source.result.address if isinstance(source, Charm) else source.address
        link = link_to(address, redirect=not isinstance(source, Stream))
        argument = target.argument.address
        async with self.runtime.edit(principal) as tx:
            # Replace the input itself: a plain write would follow its current link.
            doc = tx.read_doc(argument.space, argument.id)
            tx.write_doc(argument.space, argument.id, setpath(doc, (input_name,), link))
            refuse_unfollowable_link(tx, target.id, argument.key(input_name), address)

    async def start_all(self, space: SpaceDID) -> builtins.list[Charm]:
        """Start every charm recorded in ``space`` (a server does this at boot)."""
        return [await self.get(space, info.id) for info in self.list(space)]


def require_charm_given(value: object, where: str) -> None:
    """Raise :class:`NotACharmError` unless ``value`` is a :class:`Charm`."""
    if not isinstance(value, Charm):
        raise NotACharmError(where, value)


def refuse_unfollowable_link(
    tx: Transaction, charm_id: EntityId, input_at: Address, source: Address
) -> None:
    """Raise :class:`InputLinkError` if the input ``tx`` just linked cannot be read.

    Why before the commit: a link back to the input itself (or to a value
    that holds it) commits like any other, and then every read of the charm
    fails on it. Any other refusal on the way (a space the linker may not
    read) is not this check's to make: the link is kept, as before.
    """
    try:
        tx.read(input_at, track=False)
    except LinkError as error:
        raise InputLinkError(charm_id, str(input_at.path[-1]), str(source), error.reason) from None
    except CharmspaceError:
        pass


_warned_not_reimportable: set[str] = set()


def _warn_not_reimportable(pat: Pattern) -> None:
    """Say at create, not at the next restart, that the charm cannot be rebuilt elsewhere."""
    if pat.import_path in _warned_not_reimportable:
        return
    _warned_not_reimportable.add(pat.import_path)
    where = "the script being run" if pat.import_path.startswith("__main__:") else "a function"
    log.warning(
        "pattern %r (%s) is defined in %s, so no other process can import it: "
        "`charmspace serve` or another program opening this storage cannot rebuild its "
        "charms (PatternNotInstalledError). Define it at the top level of a module "
        "(e.g. my_patterns.py) and import it from there.",
        pat.name,
        pat.import_path,
        where,
    )


def _pattern_shown(record: Mapping[str, Any]) -> str:
    """The pattern a charm record names, fit to show: the record is data anyone may have edited."""
    for key in ("pattern", "import"):
        value = record.get(key)
        if isinstance(value, str) and SHOWN_NAME.fullmatch(value):
            return repr(value)
    return "(a name that is not a pattern name)"


def _family(charm: Charm) -> builtins.list[Charm]:
    """The charm and its descendants, children first."""
    return [*(m for child in charm.children for m in _family(child)), charm]
