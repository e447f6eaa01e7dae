"""What an error may say where others can read it: logs and error cells get no user-code message.

Why: the message of an exception raised by a handler, an action or a job is
built from whatever that code had at hand. ``int(token)`` fails with
``invalid literal for int() with base 10: 'ya29…'``, ``d[token]`` with
``KeyError('ya29…')``. The code read those values with the authority of the
principal who caused the event (an action, of its charm's creator); the log
is read by whoever operates the runtime, and the charm's error cell by
everyone who may read the charm's space. Neither audience is that principal
alone, so neither may see what it read.

The rule, then:

- A :class:`~charmspace.errors.CharmspaceError` keeps its message: charmspace
  builds those from ids, paths, DIDs and counts, never from document values
  (see :mod:`charmspace.errors`). Code that raises one itself must keep to
  that, too.
- Any other exception is described by its type and where it was raised (file,
  line, function), never by its message or arguments, and its traceback is
  not logged (the last line of a traceback is the message).

The exception object itself is not changed. In-process ``on_error`` listeners
get it (they are the application hosting the runtime, which holds the service
identity anyway), and so does whoever sent the event, in ``CallResult.error``
and ``CommitResult.error``: the handler ran as that principal, read only what
that principal may read, and got the rest from the event that principal sent.
Anything that carries such an error further (to another process, say) must
show its message only to that principal.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from charmspace.errors import CharmspaceError

__all__ = ["describe", "error_record", "log_error", "message_is_safe", "raised_at"]


def message_is_safe(error: BaseException) -> bool:
    """Whether ``str(error)`` may be logged and stored: only charmspace's own errors."""
    return isinstance(error, CharmspaceError)


def raised_at(error: BaseException) -> str:
    """``"notes.py:42 in add"`` for the innermost frame of ``error``'s traceback, else ``""``.

    Only the file's name, not its directory: where the code is installed is
    nobody's business but the operator's, and the name is enough to find it.
    """
    tb = error.__traceback__
    if tb is None:
        return ""
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    return f"{os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name}"


def describe(error: BaseException) -> str:
    """A one-line account of ``error`` that holds no value from user code.

    ``"ConflictError: <its message>"`` for a charmspace error;
    ``"ValueError raised at notes.py:42 in add (message withheld …)"`` otherwise.
    """
    if message_is_safe(error):
        return f"{type(error).__name__}: {error}"
    at = raised_at(error)
    where = f" raised at {at}" if at else ""
    return (
        f"{type(error).__name__}{where} (message withheld: it may hold values the code read; "
        "runtime.on_error listeners and the caller's result get the exception)"
    )


def error_record(where: str, error: BaseException, time: float) -> dict[str, object]:
    """What a charm's error cell holds: ``where``, ``type``, ``time``, and a safe ``message``.

    ``message`` is there only for charmspace's own errors; a user-code error is
    recorded by its type alone, because the cell is readable by everyone who
    may read the charm's space.
    """
    record: dict[str, object] = {"where": where, "type": type(error).__name__, "time": time}
    if message_is_safe(error):
        record["message"] = str(error)
        reason = getattr(error, "reason", None)
        if isinstance(reason, str):  # IntegrationError's machine-readable reason
            record["reason"] = reason
    return record


def log_error(
    logger: logging.Logger, what: str, error: BaseException, extra: Mapping[str, object]
) -> None:
    """Log ``error`` from ``what`` (``"notes.add"``): WARNING for ours, ERROR for user code.

    No ``exc_info``: a traceback ends with the message this module withholds.
    """
    level = logging.WARNING if message_is_safe(error) else logging.ERROR
    fields = {**extra, "error_type": type(error).__name__, "raised_at": raised_at(error)}
    logger.log(level, "%s failed: %s", what, describe(error), extra=fields)
