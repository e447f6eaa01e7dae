"""``charmspace.__all__`` is the public API: pinned here so a change to it is deliberate."""

from __future__ import annotations
import __future__

import types

import charmspace

EXPECTED = [
    "NAME",
    "UI",
    "AuthorizationError",
    "AwaitedSendError",
    "CallResult",
    "CallTimeoutError",
    "Capability",
    "Cell",
    "Charm",
    "CharmCreatorError",
    "CharmNotFoundError",
    "CharmspaceError",
    "CommitResult",
    "ConflictError",
    "CorruptStorageError",
    "CycleError",
    "DeadlockError",
    "Default",
    "Delivery",
    "DerivedTimeoutError",
    "DiskFullError",
    "FakeClock",
    "Identity",
    "IdentityError",
    "InputTypeError",
    "InsecureKeyFileError",
    "IntegrationError",
    "InvalidIdError",
    "JobError",
    "LeaseLostError",
    "LimitExceededError",
    "LinkError",
    "MissingPrincipalError",
    "NotAStreamError",
    "NotJSONError",
    "PathTypeError",
    "Pattern",
    "PatternError",
    "PatternNotInstalledError",
    "ReadOnlyCellError",
    "Runtime",
    "SchemaError",
    "SpaceClaimError",
    "SpaceExistsError",
    "SpaceNotFoundError",
    "StorageError",
    "StorageIOError",
    "StoragePathError",
    "StoragePermissionError",
    "StorageURLError",
    "Stream",
    "StreamError",
    "TransactionClosedError",
    "TransactionError",
    "TransactionRequiredError",
    "UnknownStreamError",
    "WriteIsolationError",
    "__version__",
    "cell",
    "computed",
    "derive",
    "h",
    "handler",
    "if_else",
    "lift",
    "map",
    "now",
    "open_storage",
    "pattern",
    "render_ui",
    "start_job",
    "verify",
    "wish",
]


def test_all_is_the_expected_list() -> None:
    assert charmspace.__all__ == EXPECTED


def test_every_exported_name_is_importable() -> None:
    namespace: dict[str, object] = {}
    exec("from charmspace import *", namespace)
    for name in charmspace.__all__:
        assert getattr(charmspace, name) is not None, name
        if not name.startswith("_"):
            assert name in namespace, name


def test_every_public_name_of_the_package_is_exported() -> None:
    """Httpx's rule: nothing public lives in the top-level namespace without being in __all__."""
    public = {
        name
        for name, value in vars(charmspace).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }
    assert public <= set(charmspace.__all__)


def test_the_design_example_imports_work() -> None:
    from charmspace import (  # noqa: F401 - the import line of design/03-patterns.md
        NAME,
        UI,
        Cell,
        Default,
        Stream,
        computed,
        derive,
        h,
        handler,
        pattern,
    )
