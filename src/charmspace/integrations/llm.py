"""An OpenAI-compatible chat-completions client with tool calls.

Built on httpx rather than the ``openai`` package: charmspace needs one
endpoint, httpx is already its HTTP client (one transport, one way to inject
a fake in tests, one set of timeouts), and the retry policy here must match
the Gmail client's (bounded back-off honouring ``Retry-After``, errors as
:class:`~charmspace.errors.IntegrationError` with a reason) rather than the
SDK's own.

The API key is a secret: held as a ``SecretStr``, read from
``CHARMSPACE_LLM_API_KEY`` or a file only its owner may read, sent only in the
``Authorization`` header, and never put in a log line, an error or a repr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from charmspace.backoff import DEFAULT_BACKOFF, Backoff, parse_retry_after
from charmspace.errors import IntegrationError
from charmspace.integrations.secret_file import read_secret_file

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class LLMSettings(BaseSettings):
    """``CHARMSPACE_LLM_BASE_URL``, ``_MODEL``, ``_API_KEY`` (or ``_API_KEY_FILE``), ``_TIMEOUT``.

    The key is a ``SecretStr``: its repr and a ``model_dump`` show ``**********``.
    """

    model_config = SettingsConfigDict(
        env_prefix="CHARMSPACE_LLM_", env_file=".env", extra="ignore", frozen=True
    )

    base_url: str = Field(
        default="https://api.openai.com/v1",
        description="Base URL of an OpenAI-compatible API (…/v1).",
    )
    model: str = Field(default="gpt-4o-mini", description="Model name sent with each request.")
    api_key: SecretStr | None = Field(default=None, description="API key (secret).")
    api_key_file: Path | None = Field(
        default=None, description="A file holding the API key; must be private (mode 0600)."
    )
    timeout: float = Field(default=60.0, gt=0, description="Seconds one request may take.")

    def key(self) -> SecretStr | None:
        """The API key: the variable's, else the file's (refused if others may read it)."""
        if self.api_key is not None:
            return self.api_key
        if self.api_key_file is None:
            return None
        return SecretStr(
            read_secret_file(self.api_key_file, what="LLM API key", reason="llm_key_file")
        )


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function the model asked to call, with its parsed arguments."""

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChatReply:
    """The model's answer: ``content`` (words), ``tool_calls``, and the message to append."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    message: Mapping[str, Any]
    """The assistant message as the API returned it: append it to the conversation."""


def function_tool(name: str, description: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A ``tools`` entry: ``{"type": "function", "function": {name, description, parameters}}``."""
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": dict(parameters)},
    }


class LLMClient:
    """``await client.chat(messages, tools=[...])`` against an OpenAI-compatible API."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: SecretStr | None,
        timeout: float = 60.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        sleep: Sleep | None = None,
        now: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        import asyncio
        import time

        self.base_url = base_url.rstrip("/")
        self.model = model
        self._key = api_key
        self.backoff = backoff
        self._sleep: Sleep = sleep or asyncio.sleep
        self._now = now or time.time
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    @classmethod
    def from_settings(cls, settings: LLMSettings | None = None, **options: Any) -> LLMClient:
        settings = settings or LLMSettings()
        return cls(
            base_url=settings.base_url,
            model=settings.model,
            api_key=settings.key(),
            timeout=settings.timeout,
            **options,
        )

    def __repr__(self) -> str:
        return f"<LLMClient {self.base_url} model={self.model}>"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def chat(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
    ) -> ChatReply:
        """One completion. Retries 429/5xx and network failures; other failures raise at once."""
        if self._key is None:
            raise IntegrationError(
                "llm_unconfigured",
                "No LLM API key is configured: set CHARMSPACE_LLM_API_KEY "
                "(or CHARMSPACE_LLM_API_KEY_FILE) and restart.",
            )
        if (
            isinstance(messages, str | bytes)
            or not messages
            or not all(isinstance(m, Mapping) and isinstance(m.get("role"), str) for m in messages)
        ):
            raise IntegrationError(
                "llm_bad_request",
                "chat() takes a non-empty list of messages, each a dict with a 'role' "
                "(e.g. {'role': 'user', 'content': '…'}).",
            )
        if tools is not None and not all(isinstance(t, Mapping) for t in tools):
            raise IntegrationError(
                "llm_bad_request", "tools is a list of dicts such as function_tool(...) returns."
            )
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages]}
        if tools:
            body["tools"] = [dict(t) for t in tools]
        response = await self._post(body)
        return _parse_reply(response)

    async def _post(self, body: Mapping[str, Any]) -> httpx.Response:
        assert self._key is not None
        headers = {"Authorization": f"Bearer {self._key.get_secret_value()}"}
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.backoff.retries + 1):
            last = attempt == self.backoff.retries
            try:
                response = await self._http.post(url, json=body, headers=headers)
            except httpx.HTTPError as e:
                if last:
                    raise IntegrationError(
                        "upstream_unreachable",
                        f"The LLM provider at {self.base_url} could not be reached "
                        f"({type(e).__name__}).",
                    ) from None
                await self._sleep(self.backoff.delay(attempt, self._rng))
                continue
            status = response.status_code
            if status == 200:
                return response
            if status in (429, 500, 502, 503, 504) and not last:
                hint = parse_retry_after(response.headers.get("retry-after"), self._now())
                if hint is None or hint <= self.backoff.max_retry_after:
                    delay = self.backoff.delay(attempt, self._rng, hint)
                    log.info("LLM answered %s; retrying in %.1f s", status, delay)
                    await self._sleep(delay)
                    continue
            raise _status_error(status, response)
        raise AssertionError("unreachable")  # pragma: no cover


def _status_error(status: int, response: httpx.Response) -> IntegrationError:
    if status == 401:
        return IntegrationError(
            "llm_auth",
            "The LLM provider refused the API key (401): check CHARMSPACE_LLM_API_KEY.",
        )
    if status == 400:
        param = None
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            param = response.json()["error"].get("param")
        where = f" (parameter {param!s})" if isinstance(param, str) else ""
        return IntegrationError(
            "llm_bad_request", f"The LLM provider rejected the request as malformed{where}."
        )
    return IntegrationError(
        f"upstream_{status}", f"The LLM provider answered {status}; try again later."
    )


def _parse_reply(response: httpx.Response) -> ChatReply:
    try:
        choice = response.json()["choices"][0]
        message = choice["message"]
        calls = tuple(
            ToolCall(
                id=str(call["id"]),
                name=str(call["function"]["name"]),
                arguments=_arguments(call["function"].get("arguments")),
            )
            for call in message.get("tool_calls") or ()
        )
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise TypeError("content")
        return ChatReply(
            content=content,
            tool_calls=calls,
            finish_reason=str(choice.get("finish_reason") or ""),
            message=message,
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise IntegrationError(
            "malformed_response", "The LLM provider's answer was not a chat completion."
        ) from None


def _arguments(raw: Any) -> Mapping[str, Any]:
    """A tool call's arguments: a JSON object in a string (models do get this wrong)."""
    if isinstance(raw, dict):
        return raw
    value = json.loads(raw or "{}")
    if not isinstance(value, dict):
        raise TypeError("arguments")
    return value
