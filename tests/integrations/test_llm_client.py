"""The LLM client against the scripted LLM over HTTP, and the ``llm`` builtin in a job.

The scripted LLM checks requests as OpenAI's API does, so a request it accepts
is one the real API would; the key is a secret that no error or repr shows.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from charmspace import Runtime
from charmspace.errors import IntegrationError
from charmspace.integrations.llm import LLMClient, LLMSettings, function_tool
from charmspace.integrations.services import Services, configure
from charmspace.patterns import llm
from charmspace.runtime import Cell, FakeClock, JobContext, start_job
from charmspace.testing._serve import serve_asgi
from charmspace.testing.llm import ScriptedLLM, gmail_policy, reply, tool_call

KEY = "sk-secret-key-for-tests"
SEARCH = function_tool(
    "search_gmail",
    "Search Gmail.",
    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)


@pytest.fixture
def scripted() -> ScriptedLLM:
    return ScriptedLLM([tool_call("search_gmail", query="from:ada"), reply("Two invoices.")], KEY)


@pytest.fixture
def url(scripted: ScriptedLLM) -> Iterator[str]:
    with serve_asgi(scripted) as base:
        yield base


@pytest.fixture
async def client(url: str) -> AsyncIterator[LLMClient]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    c = LLMClient(
        base_url=f"{url}/v1", model="m", api_key=SecretStr(KEY), sleep=sleep, rng=random.Random(0)
    )
    c.sleeps = sleeps  # type: ignore[attr-defined]
    yield c
    await c.aclose()


async def test_a_tool_call_and_then_a_summary(client: LLMClient, scripted: ScriptedLLM) -> None:
    conversation: list[dict[str, Any]] = [{"role": "user", "content": "find invoices"}]
    first = await client.chat(conversation, tools=[SEARCH])
    [call] = first.tool_calls
    assert (call.name, dict(call.arguments)) == ("search_gmail", {"query": "from:ada"})
    conversation += [
        dict(first.message),
        {"role": "tool", "tool_call_id": call.id, "content": '{"count": 2}'},
    ]
    second = await client.chat(conversation, tools=[SEARCH])
    assert second.content == "Two invoices." and second.tool_calls == ()
    assert scripted.requests[1]["messages"][-1]["tool_call_id"] == call.id


async def test_a_wrong_key_is_llm_auth_and_the_key_is_never_shown(url: str) -> None:
    wrong = "sk-wrong-key-never-shown"
    with_client = LLMClient(base_url=f"{url}/v1", model="m", api_key=SecretStr(wrong))
    try:
        with pytest.raises(IntegrationError) as caught:
            await with_client.chat([{"role": "user", "content": "hi"}])
    finally:
        await with_client.aclose()
    assert caught.value.reason == "llm_auth"
    assert wrong not in str(caught.value) and wrong not in repr(with_client)


async def test_a_malformed_conversation_is_refused_without_retrying(client: LLMClient) -> None:
    bad = [
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "nope", "content": ""},
    ]
    with pytest.raises(IntegrationError) as caught:
        await client.chat(bad)
    assert caught.value.reason == "llm_bad_request"
    assert "messages[1].role" in str(caught.value)
    assert client.sleeps == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("messages", [[], "hello", [{"content": "no role"}], [["user", "x"]]])
async def test_a_conversation_of_the_wrong_shape_is_refused_before_sending(
    client: LLMClient, scripted: ScriptedLLM, messages: Any
) -> None:
    with pytest.raises(IntegrationError) as caught:
        await client.chat(messages)
    assert caught.value.reason == "llm_bad_request" and "'role'" in str(caught.value)
    assert scripted.requests == []


async def test_overload_is_retried_with_back_off(client: LLMClient, scripted: ScriptedLLM) -> None:
    scripted.fail(status=503, times=2)
    answer = await client.chat([{"role": "user", "content": "hi"}], tools=[SEARCH])
    assert answer.tool_calls
    assert len(client.sleeps) == 2  # type: ignore[attr-defined]


async def test_overload_that_lasts_fails_with_its_status(
    client: LLMClient, scripted: ScriptedLLM
) -> None:
    scripted.fail(status=503, times=50)
    with pytest.raises(IntegrationError) as caught:
        await client.chat([{"role": "user", "content": "hi"}])
    assert caught.value.reason == "upstream_503"


async def test_an_unreachable_provider_is_upstream_unreachable() -> None:
    async def sleep(seconds: float) -> None:
        pass

    c = LLMClient(base_url="http://127.0.0.1:9/v1", model="m", api_key=SecretStr(KEY), sleep=sleep)
    with pytest.raises(IntegrationError) as caught:
        await c.chat([{"role": "user", "content": "hi"}])
    await c.aclose()
    assert caught.value.reason == "upstream_unreachable"


async def test_without_a_key_the_client_says_how_to_configure_one() -> None:
    c = LLMClient(base_url="http://127.0.0.1:9/v1", model="m", api_key=None)
    with pytest.raises(IntegrationError) as caught:
        await c.chat([{"role": "user", "content": "hi"}])
    await c.aclose()
    assert caught.value.reason == "llm_unconfigured"
    assert "CHARMSPACE_LLM_API_KEY" in str(caught.value)


def test_settings_read_the_environment_and_a_private_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHARMSPACE_LLM_BASE_URL", "http://llm.internal/v1")
    monkeypatch.setenv("CHARMSPACE_LLM_MODEL", "small")
    monkeypatch.setenv("CHARMSPACE_LLM_API_KEY", KEY)
    settings = LLMSettings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.base_url, settings.model) == ("http://llm.internal/v1", "small")
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())
    monkeypatch.delenv("CHARMSPACE_LLM_API_KEY")
    key_file = tmp_path / "llm-key"
    key_file.write_text(KEY + "\n")
    os.chmod(key_file, 0o644)
    monkeypatch.setenv("CHARMSPACE_LLM_API_KEY_FILE", str(key_file))
    with pytest.raises(IntegrationError) as caught:
        LLMSettings(_env_file=None).key()  # type: ignore[call-arg]
    assert caught.value.reason == "llm_key_file" and "chmod 600" in str(caught.value)
    os.chmod(key_file, 0o600)
    key = LLMSettings(_env_file=None).key()  # type: ignore[call-arg]
    assert key is not None and key.get_secret_value() == KEY


def test_the_scripted_llm_answers_malformed_requests_like_openai(url: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    no_model = httpx.post(f"{url}/v1/chat/completions", json={"messages": []}, headers=headers)
    assert no_model.status_code == 400
    assert no_model.json()["error"]["type"] == "invalid_request_error"
    assert no_model.json()["error"]["param"] == "model"
    bad_tool = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{}]},
        headers=headers,
    )
    assert bad_tool.status_code == 400 and bad_tool.json()["error"]["param"] == "tools[0]"
    wrong = httpx.post(f"{url}/v1/chat/completions", json={}, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"


def test_the_gmail_policy_searches_the_goal_then_summarizes() -> None:
    policy = gmail_policy(searches=2)
    goal = [{"role": "user", "content": "Find invoices from Acme"}]
    assert policy(goal).calls == (("search_gmail", {"query": "subject:invoices"}),)
    one = [*goal, {"role": "tool", "tool_call_id": "1", "content": '{"count": 3}'}]
    assert policy(one).calls == (("search_gmail", {"query": "acme"}),)
    two = [*one, {"role": "tool", "tool_call_id": "2", "content": '{"count": 4}'}]
    assert policy(two).content == "Found 7 messages about 'Find invoices from Acme' in 2 searches."


async def test_the_llm_builtin_gives_a_job_the_configured_client(
    url: str, storage_url: str
) -> None:
    runtime = Runtime(storage_url, clock=FakeClock())
    client = LLMClient(base_url=f"{url}/v1", model="m", api_key=SecretStr(KEY))
    configure(runtime, Services(llm=client))
    space = runtime.create_space(name="llm")
    unit = runtime.unit(space, "asker")
    answers = unit.cell("answers", [])

    async def ask(ctx: JobContext) -> None:
        reply_ = await llm(ctx).chat([{"role": "user", "content": "find"}], tools=[SEARCH])
        async with ctx.runtime.edit():
            Cell(ctx.runtime, answers.address).push(reply_.tool_calls[0].name)

    def start(event: Any) -> None:
        start_job(ask, name="ask")

    stream = unit.handler("ask", start)
    await unit.start()
    try:
        assert (await stream.call({})).ok
        await runtime.idle(jobs=True)
        assert answers.get() == ["search_gmail"]
    finally:
        await client.aclose()
        await runtime.close()


async def test_without_configuration_the_llm_builtin_says_what_to_set() -> None:
    runtime = Runtime("memory://", clock=FakeClock())  # memory only: no storage is touched
    try:
        with pytest.raises(IntegrationError) as caught:
            llm(runtime)
        assert caught.value.reason == "llm_unconfigured"
        assert "CHARMSPACE_LLM_API_KEY" in str(caught.value)
    finally:
        await runtime.close()


async def test_the_server_configures_the_llm_and_gmail_from_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from charmspace.integrations.services import services_of
    from charmspace.server.app import create_app
    from charmspace.server.settings import Settings

    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("CHARMSPACE_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("CHARMSPACE_LLM_MODEL", "small")
    monkeypatch.setenv("CHARMSPACE_LLM_API_KEY", KEY)
    monkeypatch.setenv("CHARMSPACE_GMAIL_BASE_URL", "http://127.0.0.1:9")
    app = create_app(Settings(data=tmp_path / "data", storage="memory://"))
    async with app.router.lifespan_context(app):
        services = services_of(app.state.runtime)
        client = llm(app.state.runtime)
        assert (client.base_url, client.model) == ("http://127.0.0.1:9/v1", "small")
        assert services.gmail_base_url == "http://127.0.0.1:9"
        assert KEY not in repr(services)
