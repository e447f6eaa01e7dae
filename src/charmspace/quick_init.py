"""Frozen dataclasses that are built nearly as fast as plain ones: :func:`quick_init`.

Why: a frozen dataclass's generated ``__init__`` stores each field through
``object.__setattr__`` (the class's own ``__setattr__`` refuses), which makes
one of four fields cost more than three times what a plain class costs. The
value objects of one event (its commit, the commit prepared for the backend,
the revision, the notification, the result, the run context) are a dozen
such objects, and building them was about a tenth of the runtime's work per
event. A slot's descriptor stores into its slot directly: an ``__init__``
made of those stores builds the same object in about two thirds of the time,
and the object is exactly as frozen as before (assigning to it still raises
``FrozenInstanceError``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T", bound=type)


def quick_init(cls: T) -> T:
    """Give ``cls``, a ``@dataclass(frozen=True, slots=True)``, an ``__init__`` of slot stores.

    Same signature, defaults and default factories as the generated one.
    Apply it below the ``@dataclass`` decorator (it needs the finished class).
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"quick_init needs a frozen dataclass with slots, not {cls!r}")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"quick_init does not run __post_init__ ({cls.__qualname__})")
    namespace: dict[str, Any] = {"_MISSING": dataclasses.MISSING}
    args: list[str] = []
    body: list[str] = []
    for field in dataclasses.fields(cls):
        if not field.init or field.kw_only:
            raise TypeError(f"quick_init takes positional init fields only ({cls.__qualname__})")
        name = field.name
        namespace[f"_set_{name}"] = getattr(cls, name).__set__
        value = name
        if field.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = field.default
            args.append(f"{name}=_default_{name}")
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = field.default_factory
            args.append(f"{name}=_MISSING")
            value = f"_factory_{name}() if {name} is _MISSING else {name}"
        else:
            args.append(name)
        body.append(f"    _set_{name}(self, {value})")
    source = f"def __init__(self, {', '.join(args)}):\n" + "\n".join(body or ["    pass"])
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    cls.__init__ = init  # type: ignore[misc]
    return cls
