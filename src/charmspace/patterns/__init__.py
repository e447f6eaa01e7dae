"""The authoring API: write charms as Python functions whose type hints are the schema."""

from __future__ import annotations

from charmspace.patterns.builtins import (
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

__all__ = [
    "NAME",
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
