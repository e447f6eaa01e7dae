"""The reactive, transactional runtime."""

from __future__ import annotations

from charmspace.runtime import outbox
from charmspace.runtime.address import STREAM_MARKER, Address, is_link, link_to
from charmspace.runtime.cell import Cell
from charmspace.runtime.clock import Clock, FakeClock, SystemClock
from charmspace.runtime.jobs import Job, JobContext, start_job
from charmspace.runtime.runtime import Edit, ErrorReport, Runtime
from charmspace.runtime.stream import CallResult, Delivery, Stream
from charmspace.runtime.transaction import CommitResult, Transaction
from charmspace.runtime.unit import Action, HandlerSpec, Unit

__all__ = [
    "STREAM_MARKER",
    "Action",
    "Address",
    "CallResult",
    "Cell",
    "Clock",
    "CommitResult",
    "Delivery",
    "Edit",
    "ErrorReport",
    "FakeClock",
    "HandlerSpec",
    "Job",
    "JobContext",
    "Runtime",
    "Stream",
    "SystemClock",
    "Transaction",
    "Unit",
    "is_link",
    "link_to",
    "outbox",
    "start_job",
]
