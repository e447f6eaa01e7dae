"""Gmail agentic search: an LLM proposes Gmail searches for a goal, a job runs them.

The charm finds the user's Google auth charm with ``wish("#googleAuth")``. Scan
starts a job (a scan takes many seconds: it must not hold a transaction open)
that first makes sure the token is fresh, by calling the auth charm's
``refresh`` stream (this charm may not write the token: it lives in the auth
charm's space), then loops: the LLM asks for ``search_gmail(query)``, the job
runs the query with the Gmail client and answers with what it found, until the
LLM writes a summary or the search budget is spent. Every step lands in the
``progress`` cell, so the UI shows it live. Stop cancels the job.

Each scan is numbered (``progress["scan"]``) and the status line names it
("Status: done (scan 2)"): a second scan with the same goal ends with the same
status and results as the first, and without the number nobody watching the
page could tell whether the new scan has finished or the old one still shows.

Failures are shown from their :class:`~charmspace.errors.IntegrationError`
``reason``: an auth reason (an expired grant, a second 401) asks the user to
re-authenticate; nothing here reads error text to decide.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from charmspace.errors import CharmspaceError, IntegrationError
from charmspace.integrations.google.gmail import GMAIL_READONLY, GmailClient, needs_refresh
from charmspace.integrations.llm import function_tool
from charmspace.integrations.services import gmail_client
from charmspace.patterns import (
    NAME,
    UI,
    Default,
    cell,
    computed,
    handler,
    if_else,
    llm,
    map,
    now,
    pattern,
    wish,
)
from charmspace.patterns.ui import h
from charmspace.runtime import context
from charmspace.runtime.cell import Cell
from charmspace.runtime.jobs import JobContext, start_job
from charmspace.runtime.stream import Stream

AUTH_REASONS = frozenset({"auth", "invalid_grant", "permission", "refresh_failed"})
"""Reasons that only signing in again can fix."""

SEARCH_TOOL = function_tool(
    "search_gmail",
    "Search the user's Gmail with Gmail's search syntax (from:, to:, subject:, after:, "
    "before:, newer_than:, words, OR). Returns how many messages matched and the first few.",
    {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "A Gmail search query."}},
        "required": ["query"],
    },
)
SYSTEM_PROMPT = (
    "You help the user find emails. Call search_gmail with Gmail search queries to find "
    "what the user's goal asks for; refine the queries from the results. When you have "
    "enough, answer with a short summary of what you found."
)
DEFAULT_BUDGET, MAX_BUDGET = 5, 50
"""Searches per scan: the ``budget`` input, kept within 1..50."""
PER_QUERY = 10
"""Messages fetched per search (the LLM sees their headers and snippets)."""

IDLE: dict[str, Any] = {"status": "idle", "current_query": None, "queries": [], "steps": []}


def connection_state(auth: Any, at: float) -> str:
    """``connected``, ``token will be refreshed``, ``sign in`` or ``permission missing``."""
    if not isinstance(auth, dict) or not auth.get("token"):
        return "sign in"
    scopes = auth.get("scope") or []
    if isinstance(scopes, str):
        scopes = scopes.split()
    if scopes and GMAIL_READONLY not in scopes:
        return "permission missing"
    return "token will be refreshed" if needs_refresh(auth, at) else "connected"


def status_line(progress: Any) -> str:
    """The status the page shows, with the scan it belongs to: ``done (scan 2)``."""
    shown = progress if isinstance(progress, dict) else IDLE
    status = str(shown.get("status") or "idle")
    number = shown.get("scan")
    return f"{status} (scan {number})" if number else status


def _error_record(error: IntegrationError) -> dict[str, Any]:
    reauthenticate = error.reason in AUTH_REASONS
    return {"reason": error.reason, "message": str(error), "reauthenticate": reauthenticate}


def _query_problem(error: IntegrationError) -> bool:
    """Whether Gmail refused the query itself (a 400), not the token or the service."""
    return error.reason in ("bad_query", "upstream_400")


class _Scan:
    """One scan: the job's state and how it writes it to the charm's cells."""

    def __init__(
        self, ctx: JobContext, cells: dict[str, Cell[Any]], goal: str, budget: int, number: int
    ):
        runtime = ctx.runtime
        # The handler's cells belong to its (closed) transaction: address them afresh.
        self.cells: dict[str, Cell[Any]] = {k: Cell(runtime, c.address) for k, c in cells.items()}
        self.ctx = ctx
        self.goal = goal
        self.budget = budget
        self.progress: dict[str, Any] = {
            **IDLE,
            "status": "starting",
            "scan": number,
            "queries": [],
            "steps": [],
        }

    def publish(self, step: str | None = None, **changes: Any) -> None:
        self.progress.update(changes)
        if step:
            self.progress["steps"] = [*self.progress["steps"], step]
        with self.ctx.runtime.edit():
            self.cells["progress"].set(dict(self.progress))

    def finish(self, **values: Any) -> None:
        with self.ctx.runtime.edit():
            for name, value in values.items():
                self.cells[name].set(value)

    async def run(self, auth: Cell[Any], refresh: Stream[Any]) -> None:
        runtime = self.ctx.runtime
        auth, refresh = Cell(runtime, auth.address), Stream(runtime, refresh.address)
        try:
            async with gmail_client(runtime, auth, refresh) as gmail:
                current = gmail.current_auth()
                if needs_refresh(current, runtime.clock.now()):
                    self.publish("The token is about to expire: refreshing it", status="refreshing")
                    await gmail.refresh_token(str(current["token"]))
                await self._agent(gmail)
        except IntegrationError as e:
            record = _error_record(e)
            step = "Re-authenticate: " if record["reauthenticate"] else "Failed: "
            self.publish(step + e.reason, status="failed", current_query=None)
            self.finish(error=record)
        except asyncio.CancelledError:
            self.publish("Stopped", status="stopped", current_query=None)
            raise
        except Exception as e:  # a bug: say so, and let the runtime report it
            self.publish("Failed: internal error", status="failed", current_query=None)
            self.finish(
                error={
                    "reason": "internal",
                    "message": f"The scan failed unexpectedly ({type(e).__name__}).",
                    "reauthenticate": False,
                }
            )
            raise

    async def _agent(self, gmail: GmailClient) -> None:
        model = llm(self.ctx)
        conversation: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": self.goal},
        ]
        found: dict[str, dict[str, Any]] = {}
        searches = 0
        while True:
            self.publish(status="thinking")
            reply = await model.chat(conversation, tools=[SEARCH_TOOL])
            conversation.append(dict(reply.message))
            if not reply.tool_calls:
                self.publish("Summary written", status="done", current_query=None)
                self.finish(summary=reply.content or "", results=list(found.values()))
                return
            for call in reply.tool_calls:
                if call.name != "search_gmail" or not isinstance(call.arguments.get("query"), str):
                    answer: dict[str, Any] = {"error": f"unknown tool or arguments: {call.name}"}
                elif searches >= self.budget:
                    self.publish(
                        f"Search budget of {self.budget} reached",
                        status="budget reached",
                        current_query=None,
                    )
                    self.finish(results=list(found.values()))
                    return
                else:
                    searches += 1
                    query = str(call.arguments["query"])
                    try:
                        answer = await self._search(gmail, query, found)
                    except IntegrationError as e:
                        if not _query_problem(e):
                            raise
                        # The model wrote a query Gmail refuses: tell it, so it can fix it.
                        answer = {"error": f"Gmail rejected the query ({e.reason})"}
                        queries = [*self.progress["queries"], {"query": query, "count": 0}]
                        self.publish(f"Gmail rejected: {query}", queries=queries)
                conversation.append(
                    {"role": "tool", "tool_call_id": call.id, "content": json.dumps(answer)}
                )

    async def _search(
        self, gmail: GmailClient, query: str, found: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        self.publish(f"Searching: {query}", status="searching", current_query=query)
        ids = await gmail.list_messages(query, limit=PER_QUERY)
        messages = await gmail.get_messages([m["id"] for m in ids])
        for message in messages:
            found.setdefault(
                message.id,
                {
                    "id": message.id,
                    "subject": message.subject,
                    "from": message.sender,
                    "date": message.date,
                    "snippet": message.snippet,
                },
            )
        queries = [*self.progress["queries"], {"query": query, "count": len(ids)}]
        self.publish(f"{len(ids)} found for {query}", queries=queries, current_query=None)
        self.finish(results=list(found.values()))
        return {
            "count": len(ids),
            "messages": [
                {"subject": m.subject, "from": m.sender, "date": m.date, "snippet": m.snippet}
                for m in messages
            ],
        }


@handler
def scan(
    event: dict[str, Any],
    *,
    goal: Cell[str],
    budget: Cell[int],
    progress: Cell[dict[str, Any]],
    results: Cell[list[dict[str, Any]]],
    summary: Cell[str],
    error: Cell[Any],
    auth: Cell[Any],
    refresh: Stream[Any],
    linked_auth: Cell[Any],
    linked_refresh: Stream[Any],
) -> None:
    """Start a scan for the goal (replacing a running one)."""
    if linked_auth.get() is not None:  # the charm was given an auth cell: it wins
        auth, refresh = linked_auth, linked_refresh
    text = (goal.get() or "").strip()
    if not text:
        error.set({"reason": "no_goal", "message": "Write a goal first.", "reauthenticate": False})
        return
    try:
        signed_in = connection_state(auth.get(), now()) != "sign in"
    except CharmspaceError:
        signed_in = False  # no #googleAuth favorite: the link leads nowhere
    if not signed_in:
        error.set(
            {
                "reason": "auth",
                "message": "Sign in with Google first (favorite a Google auth charm).",
                "reauthenticate": True,
            }
        )
        return
    cells: dict[str, Cell[Any]] = {
        "progress": progress,
        "results": results,
        "summary": summary,
        "error": error,
    }
    number = int((progress.get() or IDLE).get("scan") or 0) + 1
    progress.set({**IDLE, "status": "starting", "scan": number})
    results.set([])
    summary.set("")
    error.set(None)
    limit = min(max(budget.get() or DEFAULT_BUDGET, 1), MAX_BUDGET)
    refresh_stream = refresh

    async def run_scan(ctx: JobContext) -> None:
        await _Scan(ctx, cells, text, limit, number).run(auth, refresh_stream)

    start_job(run_scan, name="scan")


@handler
def stop(event: dict[str, Any], *, progress: Cell[dict[str, Any]]) -> None:
    """Cancel the running scan, if any."""
    unit = context.current().unit
    job = unit.jobs.get("scan") if unit is not None else None
    if job is not None:
        job.cancel()
        progress.update({"status": "stopping"})


@pattern(tags=["#gmailSearch"])
def gmail_agentic_search(
    goal: Default[Cell[str], ""],
    budget: Default[Cell[int], 5],
    auth: Default[Cell[Any], None],
    refresh: Default[Stream[Any], None],
) -> dict[str, Any]:
    """Find emails for a goal: an LLM searches your Gmail. #gmailSearch #gmail

    The token comes from the ``auth`` and ``refresh`` inputs when they are
    linked (to an auth charm's ``auth`` cell and ``refresh`` stream), else
    from the user's ``#googleAuth`` favorite.
    """
    found = wish("#googleAuth")
    wished_auth = found["result"]["auth"]
    wished_refresh = found["result"]["refresh"]
    progress = cell(IDLE, name="progress")
    results = cell([], name="results")
    summary = cell("", name="summary")
    error = cell(None, name="error")

    def connection() -> str:
        linked = auth.get()
        if linked is not None:
            return connection_state(linked, now(30))
        if found.get()["result"] is None:
            return "sign in"
        return connection_state(wished_auth.get(), now(30))

    state = computed(connection, name="connection")
    scan_stream = scan.bind(
        goal=goal,
        budget=budget,
        progress=progress,
        results=results,
        summary=summary,
        error=error,
        auth=wished_auth,
        refresh=wished_refresh,
        linked_auth=auth,
        linked_refresh=refresh,
    )
    stop_stream = stop.bind(progress=progress)
    status = computed(lambda: status_line(progress.get()), name="status")
    current = computed(
        lambda: (progress.get() or IDLE).get("current_query") or "", name="current_query"
    )
    queries = computed(
        lambda: [
            f"{q['query']}: {q['count']}" for q in (progress.get() or IDLE).get("queries", [])
        ],
        name="query_lines",
    )
    problem = computed(
        lambda: (
            None
            if not error.get()
            else ("Re-authenticate: " if error.get().get("reauthenticate") else "Error: ")
            + f"{error.get()['message']} ({error.get()['reason']})"
        ),
        name="problem",
    )
    return {
        NAME: computed(lambda: f"Gmail search: {goal.get() or 'no goal yet'}"),
        UI: h(
            "stack",
            {},
            h("h2", {}, "Gmail agentic search"),
            h("div", {"id": "connection"}, "Google: ", state),
            h("input", {"id": "goal", "bind_value": goal, "placeholder": "What are you after?"}),
            h(
                "row",
                {},
                h("button", {"id": "scan", "on_click": scan_stream}, "Scan"),
                h("button", {"id": "stop", "on_click": stop_stream}, "Stop"),
            ),
            h("div", {"id": "status"}, "Status: ", status),
            h("div", {"id": "current"}, current),
            h("ul", {"id": "queries"}, map(queries, lambda line: h("li", {}, line))),
            if_else(problem, h("div", {"id": "error"}, problem), None),
            h("p", {"id": "summary"}, summary),
            h(
                "ul",
                {"id": "results"},
                map(results, lambda r: h("li", {}, r["subject"], " — ", r["from"])),
            ),
        ),
        "goal": goal,
        "budget": budget,
        "connection": state,
        "progress": progress,
        "results": results,
        "summary": summary,
        "error": error,
        "problem": problem,
        "scan": scan_stream,
        "stop": stop_stream,
    }
