"""Secret fields: values only the owner of their space may see, and nobody in history.

A pattern marks a field secret in its type: ``token: Annotated[str, SECRET]``.
The field's JSON Schema then says ``"x-charmspace-secret": true``, and every
field name so marked by a pattern this process has loaded is *declared*. Where
values leave for someone (the HTTP API, the live WebSocket), :func:`redact`
replaces a declared field's non-empty value by ``"…"`` unless the reader owns
the space, and point-in-time reads are redacted for everyone, owners included,
so that once a token is cleared no read of the past returns it.

Why by name, everywhere, rather than by document and path: an API read follows
links, and historical and raw document reads have no pattern at hand to ask
which path is secret. Masking every field of that name is the safe side of the
trade: another charm's field named ``token`` is masked for non-owners too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pydantic import Field

from charmspace.types import JSONValue, Schema

__all__ = ["MASK", "SECRET", "SECRET_KEY", "declare", "declared", "redact", "secret_fields"]

SECRET_KEY: Final = "x-charmspace-secret"
MASK: Final = "…"

SECRET: Any = Field(json_schema_extra={SECRET_KEY: True})
"""Annotation metadata marking a field secret: ``Annotated[str, SECRET]``."""

_declared: set[str] = set()


def secret_fields(schema: object, root: object = None) -> set[str]:
    """The names of the properties marked secret anywhere in a JSON Schema (``$defs`` too)."""
    found: set[str] = set()
    if isinstance(schema, Mapping):
        props = schema.get("properties")
        if isinstance(props, Mapping):
            for name, prop in props.items():
                if isinstance(prop, Mapping) and prop.get(SECRET_KEY) is True:
                    found.add(str(name))
        for value in schema.values():
            found |= secret_fields(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= secret_fields(value)
    return found


def declare(schema: Schema) -> frozenset[str]:
    """Declare the secret fields of ``schema`` (a pattern's inputs); returns them."""
    names = secret_fields(schema)
    _declared.update(names)
    return frozenset(names)


def declared() -> frozenset[str]:
    """Every field name declared secret in this process."""
    return frozenset(_declared)


def redact(
    value: JSONValue, names: frozenset[str] | None = None, path: Sequence[object] = ()
) -> JSONValue:
    """``value`` with every non-empty secret field shown as ``"…"`` (empty stays empty).

    ``path`` is where ``value`` was read from: a value read *at* a secret field
    (``…/auth/token``) is masked whole.
    """
    names = declared() if names is None else names
    if not names:
        return value
    if any(isinstance(segment, str) and segment in names for segment in path):
        return MASK if value not in ("", None) else value
    return _redact(value, names)


def _redact(value: JSONValue, names: frozenset[str]) -> JSONValue:
    if isinstance(value, Mapping):
        return {
            k: (MASK if k in names and v not in ("", None) else _redact(v, names))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, names) for v in value]
    return value
