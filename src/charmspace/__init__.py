"""charmspace: a runtime for charms — reactive programs whose state lives in persisted cells.

Everything public is importable from here; submodules are internal and may change.
"""

from __future__ import annotations

import logging

from charmspace.errors import (
    AuthorizationError,
    CallTimeoutError,
    CharmNotFoundError,
    CharmspaceError,
    ConflictError,
    CycleError,
    DeadlockError,
    IntegrationError,
    LimitExceededError,
    LinkError,
    NotAStreamError,
    PatternError,
    ReadOnlyCellError,
    SchemaError,
    StorageError,
    StreamError,
    TransactionClosedError,
    TransactionError,
    TransactionRequiredError,
    WriteIsolationError,
)
from charmspace.identity import Identity, verify
from charmspace.patterns import (
    NAME,
    UI,
    Charm,
    Default,
    Pattern,
    cell,
    computed,
    derive,
    handler,
    if_else,
    lift,
    map,
    now,
    pattern,
    wish,
)
from charmspace.patterns.render import render_ui
from charmspace.patterns.ui import h
from charmspace.runtime import (
    CallResult,
    Cell,
    CommitResult,
    Delivery,
    FakeClock,
    Runtime,
    Stream,
    start_job,
)
from charmspace.storage import Capability, open_storage

__version__ = "0.1.0"

# A library logs; the application decides where logs go (none by default).
logging.getLogger("charmspace").addHandler(logging.NullHandler())

__all__ = [
    "NAME",
    "UI",
    "AuthorizationError",
    "CallResult",
    "CallTimeoutError",
    "Capability",
    "Cell",
    "Charm",
    "CharmNotFoundError",
    "CharmspaceError",
    "CommitResult",
    "ConflictError",
    "CycleError",
    "DeadlockError",
    "Default",
    "Delivery",
    "FakeClock",
    "Identity",
    "IntegrationError",
    "LimitExceededError",
    "LinkError",
    "NotAStreamError",
    "Pattern",
    "PatternError",
    "ReadOnlyCellError",
    "Runtime",
    "SchemaError",
    "StorageError",
    "Stream",
    "StreamError",
    "TransactionClosedError",
    "TransactionError",
    "TransactionRequiredError",
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
