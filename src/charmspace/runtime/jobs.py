"""Jobs: multi-step async work a handler starts, running outside any transaction.

Why outside: a transaction stays open while its handler awaits, so a Gmail scan
or an agent loop inside one handler would hold it open for minutes and conflict
with everything. A job runs on its own and changes state only by sending events
to streams or through short ``runtime.edit()`` transactions. Its status lives in
a cell so UIs can show it; it survives nothing (a restart marks it
``interrupted``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charmspace.errors import JobError, TransactionRequiredError
from charmspace.runtime import context
from charmspace.runtime.cell import Cell, to_json
from charmspace.runtime.redaction import message_is_safe
from charmspace.runtime.transaction import Transaction
from charmspace.types import DID, JSONValue

if TYPE_CHECKING:
    from charmspace.runtime.runtime import Runtime
    from charmspace.runtime.unit import Unit

log = logging.getLogger(__name__)

JobFunction = Callable[["JobContext"], Awaitable[Any]]

RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "running",
    "done",
    "failed",
    "cancelled",
    "interrupted",
)


@dataclass(eq=False)
class JobContext:
    """What a job function receives: who started it, and a way to report progress."""

    runtime: Runtime
    unit: Unit
    name: str
    principal: DID
    _job: Job | None = field(default=None, repr=False)

    async def progress(self, value: JSONValue) -> None:
        """Publish progress (any JSON) in the job's status cell."""
        assert self._job is not None
        self._job.write(progress=to_json(value))


class Job:
    """A running job; ``cancel()`` stops it, ``status`` is its status cell."""

    def __init__(self, runtime: Runtime, unit: Unit, name: str, ctx: JobContext) -> None:
        self.runtime = runtime
        self.unit = unit
        self.name = name
        self.ctx = ctx
        self.task: asyncio.Task[Any] | None = None
        self.cancel_requested = False

    @property
    def status(self) -> Cell[Any]:
        return Cell(self.runtime, self.unit.jobs_address.key(self.name))

    def cancel(self) -> None:
        """Stop the job; one cancelled before its task began never begins."""
        self.cancel_requested = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def wait(self) -> None:
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)

    def write(self, **fields: JSONValue) -> None:
        tx = Transaction(
            self.runtime, self.unit.creator, meta={"job": self.name}, confine=self.unit.space
        )
        address = self.unit.jobs_address.key(self.name)
        current = tx.read(address, deep=False)
        base = dict(current) if isinstance(current, dict) else {}
        base.update(fields)
        tx.write(address, to_json(base))
        tx.commit()


def start_job(fn: JobFunction, *, name: str | None = None) -> Job:
    """Start ``fn(ctx)`` as a job of the charm whose handler is running.

    The job starts after the handler's transaction commits (an aborted handler
    starts nothing). Starting a job under a name that is still running cancels
    the old one first.
    """
    tx = context.current().transaction
    unit = context.current().unit
    if tx is None or unit is None or tx.state != "open":
        raise TransactionRequiredError("start a job (start jobs from inside a handler)")
    if not callable(fn):
        raise JobError(f"a job must be an async function, not {type(fn).__name__}")
    job_name: str = name or str(getattr(fn, "__name__", "job"))
    ctx = JobContext(unit.runtime, unit, job_name, tx.principal)
    job = Job(unit.runtime, unit, job_name, ctx)
    ctx._job = job
    jobs = unit.runtime.jobs
    # Visible as soon as the handler's commit is (the next event may cancel it),
    # running only once that commit is durable.
    tx.on_applied(lambda: jobs.register(job))
    tx.after_commit(lambda _r: jobs.launch(job, fn))
    tx.on_abort(lambda: jobs.unregister(job))
    return job


class Jobs:
    """The runtime's registry of running jobs."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.running: set[Job] = set()

    def register(self, job: Job) -> None:
        """Make ``job`` the charm's job under its name, cancelling the one it replaces."""
        old = job.unit.jobs.get(job.name)
        if old is not None and old is not job:
            old.cancel()
        job.unit.jobs[job.name] = job

    def unregister(self, job: Job) -> None:
        if job.unit.jobs.get(job.name) is job:
            del job.unit.jobs[job.name]

    def launch(self, job: Job, fn: JobFunction) -> None:
        """Start ``job``'s task, unless it was cancelled before its handler's commit was durable."""
        if job.cancel_requested:
            self._final(job, status=CANCELLED, started_at=None)
            self.unregister(job)
            return
        clock = self.runtime.clock
        job.write(status=RUNNING, error=None, started_at=clock.now(), finished_at=None)
        job.task = self.runtime.loop.create_task(self._run(job, fn))
        job.task.add_done_callback(lambda task: self._done(job, task))
        self.running.add(job)

    async def _run(self, job: Job, fn: JobFunction) -> None:
        # The task copied the context of the handler that started it; a job is
        # neither in that handler's (closed) transaction nor that charm's event,
        # and its sends and edits act for whoever started it.
        context.enter(transaction=None, unit=None, action=None, principal=job.ctx.principal)
        try:
            await fn(job.ctx)
        except asyncio.CancelledError:
            self._final(job, status=CANCELLED)
        except Exception as e:
            error: dict[str, JSONValue] = {"type": type(e).__name__}
            if message_is_safe(e):  # a user-code message may hold what the job read
                error["message"] = str(e)
            self._final(job, status=FAILED, error=error)
            self.runtime.report(job.unit, f"job {job.name}", e)
        else:
            self._final(job, status=DONE)

    def _final(self, job: Job, **fields: JSONValue) -> None:
        """Record how ``job`` ended, unless a job started since under its name owns the status."""
        if job.unit.jobs.get(job.name) is job:
            job.write(finished_at=self.runtime.clock.now(), **fields)

    def _done(self, job: Job, task: asyncio.Task[Any]) -> None:
        if task.cancelled():  # cancelled before its first step: _run never ran
            self._final(job, status=CANCELLED)
        self.running.discard(job)
        self.unregister(job)
        self.runtime.activity(0)

    def mark_interrupted(self, unit: Unit) -> None:
        """After a restart: jobs the store still calls running were cut off."""
        tx = Transaction(
            self.runtime, unit.creator, meta={"jobs": "interrupted"}, confine=unit.space
        )
        statuses = tx.read(unit.jobs_address, deep=False)
        if not isinstance(statuses, dict):
            return
        fixed = {
            name: {**s, "status": INTERRUPTED}
            if isinstance(s, dict) and s.get("status") == RUNNING
            else s
            for name, s in statuses.items()
        }
        if fixed != statuses:
            tx.write(unit.jobs_address, to_json(fixed))
            tx.commit()

    def cancel_all(self) -> None:
        for job in list(self.running):
            job.cancel()
