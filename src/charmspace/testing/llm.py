"""A scripted LLM: OpenAI's ``POST /v1/chat/completions`` with tool calls, answering from a script.

``ScriptedLLM(script)`` is an ASGI app. ``script`` is either a list of steps
(:func:`tool_call` and :func:`reply`, answered in order, one per request) or a
policy: a function of the conversation so far that returns the next step.
:func:`gmail_policy` is the policy the demo and the tests use: it turns the
user's goal into Gmail searches through the ``search_gmail`` tool and then
summarizes what the searches returned.

Requests are checked as the real API checks them (a JSON object with a
``model`` string, a non-empty ``messages`` list of known roles, ``tools`` of
type ``function``, a ``tool`` message answering a call the assistant made):
malformed ones get 400 with OpenAI's error body, a wrong key 401.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

Conversation = list[dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """One answer: tool calls (``name``, ``arguments``) or, with none, ``content``."""

    calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    content: str | None = None


def tool_call(name: str, **arguments: Any) -> Step:
    """An answer asking for one tool call: ``tool_call("search_gmail", query="from:ada")``."""
    return Step(calls=((name, arguments),))


def reply(content: str) -> Step:
    """A final answer in words."""
    return Step(content=content)


Policy = Callable[[Conversation], Step]

_ROLES = {"system", "developer", "user", "assistant", "tool"}
_STOP_WORDS = {
    "a", "an", "and", "about", "all", "any", "find", "for", "from", "in", "me", "my",
    "of", "on", "or", "show", "the", "to", "with", "emails", "email", "mail", "messages",
}  # fmt: skip


def gmail_policy(searches: int = 2) -> Policy:
    """Propose up to ``searches`` Gmail queries from the goal's words, then summarize.

    The first query searches subjects for the goal's main word, the next ones
    plain words; the summary counts what the tool returned.
    """

    def policy(conversation: Conversation) -> Step:
        goal = next((m["content"] for m in conversation if m.get("role") == "user"), "") or ""
        words = [w for w in re.findall(r"[a-zà-ÿ]+", goal.lower()) if w not in _STOP_WORDS]
        queries = [f"subject:{words[0]}"] if words else ["in:inbox"]
        queries += words[1:]
        done = [m for m in conversation if m.get("role") == "tool"]
        if len(done) < min(searches, len(queries)):
            return tool_call("search_gmail", query=queries[len(done)])
        found = 0
        for message in done:
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                found += int(json.loads(message["content"]).get("count", 0))
        return reply(f"Found {found} messages about {goal!r} in {len(done)} searches.")

    return policy


def _invalid(message: str, param: str | None = None, status: int = 400) -> JSONResponse:
    return JSONResponse(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": param,
                "code": None,
            }
        },
        status_code=status,
    )


def check_request(body: Any) -> JSONResponse | None:
    """The 400 the real API gives this body, or None when it would accept it."""
    if not isinstance(body, dict):
        return _invalid("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _invalid("you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _invalid("'messages' must be a non-empty array.", "messages")
    called: set[str] = set()
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            return _invalid(f"Invalid value for 'messages[{i}].role'.", f"messages[{i}].role")
        content = m.get("content")
        if m["role"] == "assistant":
            for call in m.get("tool_calls") or []:
                if not isinstance(call, dict) or not isinstance(call.get("id"), str):
                    return _invalid(f"Invalid 'messages[{i}].tool_calls'.", f"messages[{i}]")
                called.add(call["id"])
        elif not isinstance(content, str):
            return _invalid(f"Invalid type for 'messages[{i}].content'.", f"messages[{i}].content")
        if m["role"] == "tool" and m.get("tool_call_id") not in called:
            return _invalid(
                "Invalid parameter: messages with role 'tool' must be a response to a "
                "preceeding message with 'tool_calls'.",
                f"messages[{i}].role",
            )
    tools = body.get("tools", [])
    if not isinstance(tools, list):
        return _invalid("Invalid type for 'tools': expected an array.", "tools")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
        ):
            return _invalid(f"Invalid value for 'tools[{i}]'.", f"tools[{i}]")
    return None


@dataclass
class ScriptedLLM:
    """OpenAI-compatible chat completions answering from ``script``; see the module docstring."""

    script: Sequence[Step] | Policy
    api_key: str = "test-llm-key"
    requests: list[dict[str, Any]] = field(default_factory=list)
    """Every accepted request body, in order."""
    failing: int = 0
    failure_status: int = 503

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[Route("/v1/chat/completions", self._complete, methods=["POST"])]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def fail(self, status: int = 503, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``status``."""
        self.failing, self.failure_status = times, status

    def _next(self, conversation: Conversation) -> Step:
        if callable(self.script):
            return self.script(conversation)
        index = len(self.requests) - 1
        if index < len(self.script):
            return self.script[index]
        return reply("(the script has ended)")

    async def _complete(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse(
                {
                    "error": {
                        "message": "Incorrect API key provided. You can find your API key in "
                        "your account settings.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
                status_code=401,
            )
        if self.failing > 0:
            self.failing -= 1
            return JSONResponse(
                {"error": {"message": "The server is overloaded.", "type": "server_error"}},
                status_code=self.failure_status,
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _invalid("We could not parse the JSON body of your request.")
        problem = check_request(body)
        if problem is not None:
            return problem
        self.requests.append(body)
        step = self._next(body["messages"])
        n = len(self.requests)
        message: dict[str, Any] = {"role": "assistant", "content": step.content}
        if step.calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{n}_{i}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
                for i, (name, arguments) in enumerate(step.calls)
            ]
        return JSONResponse(
            {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "created": 1_800_000_000 + n,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if step.calls else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
        )
