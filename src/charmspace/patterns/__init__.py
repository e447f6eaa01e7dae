"""The authoring API: write charms as Python functions whose type hints are the schema."""

from __future__ import annotations

from charmspace.patterns.builtins import (
    alarm,
    cell,
    computed,
    derive,
    if_else,
    lift,
    llm,
    map,
    now,
    wish,
)
from charmspace.patterns.charms import Charm, CharmInfo, Charms
from charmspace.patterns.favorites import Favorites
from charmspace.patterns.handler import HandlerDef, handler
from charmspace.patterns.markers import NAME, UI
from charmspace.patterns.markers import Default as Default
from charmspace.patterns.pattern import Pattern, pattern
from charmspace.patterns.refs import Ref, StreamRef
from charmspace.runtime.secrets import SECRET

__all__ = [
    "NAME",
    "SECRET",
    "UI",
    "Charm",
    "CharmInfo",
    "Charms",
    "Default",
    "Favorites",
    "HandlerDef",
    "Pattern",
    "Ref",
    "StreamRef",
    "alarm",
    "cell",
    "computed",
    "derive",
    "handler",
    "if_else",
    "lift",
    "llm",
    "map",
    "now",
    "pattern",
    "wish",
]
