"""The provider seam: the named table, the completions provider end to end against the stub's real
/v1/completions route, and a provider written in one place (here, a test) used by ask().

Usage: python -m pytest tests/collect/test_providers.py -q
"""

from __future__ import annotations

import asyncio
import dataclasses
import pkgutil
import random
from pathlib import Path

import aiohttp
import pytest

from valuecsv_ray.collect import providers, requester
from valuecsv_ray.collect.config import Endpoint
from valuecsv_ray.collect.providers import Provider, Reply, get_provider, provider_names, register_provider
from valuecsv_ray.collect.providers import base as providers_base
from valuecsv_ray.collect.requester import Gate, Outcome, ask
from valuecsv_ray.collect.schema import BAD_RESPONSE, EMPTY, HTTP_ERROR, OK, TRUNCATED
from valuecsv_ray.settings import ConfigError
from valuecsv_ray.testing.llm_stub import StubLLM, reply_text

KEY = "sk-stub"
PROMPT = "诚信对社会有什么意义？"


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch):
    monkeypatch.setattr(requester, "RETRY", dataclasses.replace(requester.RETRY, base_delay_s=0.01))


def ask_one(ep: Endpoint, key: str | None = KEY, sample: int = 0) -> Outcome:
    async def main() -> Outcome:
        async with aiohttp.ClientSession() as session:
            return await ask(session, ep, key, PROMPT, Gate(4), random.Random(0), sample)

    return asyncio.run(main())


def completions(llm: StubLLM, **settings) -> Endpoint:
    provider = "openai-completions"
    return Endpoint(name="base", base_url=llm.base_url, model="stub-a", provider=provider, **settings)


def expected(prompt: str = PROMPT, seed: int | None = None) -> str:
    return reply_text("stub-a", [{"role": "user", "content": prompt}], seed)


def test_the_table_is_the_modules_of_the_folder_and_names_what_it_has():
    folder = Path(providers.__file__).parent
    modules = {m.name for m in pkgutil.iter_modules([str(folder)])} - {"base"}
    assert provider_names() == ["openai-chat", "openai-completions"]
    assert {type(get_provider(n)).__module__.rsplit(".", 1)[1] for n in provider_names()} == modules
    available = "available: openai-chat, openai-completions"
    with pytest.raises(ConfigError, match=f"unknown provider 'anthropic'; {available}"):
        get_provider("anthropic")


def test_completions_ask_the_completions_route_with_the_prompt_alone():
    with StubLLM() as llm:
        out = ask_one(completions(llm, temperature=0.5, max_tokens=300, seed=4), sample=1)
        (record,) = llm.requests()
    assert record.path == "/v1/completions" and record.authorized
    sampling = {"temperature": 0.5, "max_tokens": 300, "seed": 5}  # seed + sample
    assert record.body == {"model": "stub-a", "prompt": PROMPT, **sampling}
    assert (out.status, out.response, out.finish_reason, out.attempts) == (OK, expected(seed=5), "stop", 1)
    assert (out.prompt_tokens, out.completion_tokens) == (len(PROMPT), len(out.response))
    assert out.total_tokens == out.prompt_tokens + out.completion_tokens


@pytest.mark.parametrize("faults, status, attempts", [
    (["429", "html", "malformed"], OK, 4),  # retried like chat: a rate limit, pages that are no answer
    (["length"], TRUNCATED, 1),
    (["null"], EMPTY, 1),
    (["400"], HTTP_ERROR, 1),
    (["html"] * 5, BAD_RESPONSE, 4),
])
def test_completions_statuses_and_retries(faults, status, attempts):
    with StubLLM(faults={PROMPT: faults}, retry_after_s=0) as llm:
        out = ask_one(completions(llm, max_attempts=4))
        assert len(llm.requests()) == attempts and {r.path for r in llm.requests()} == {"/v1/completions"}
    assert (out.status, out.attempts) == (status, attempts)
    if status == TRUNCATED:
        assert out.response == expected()[: len(expected()) // 2]
    if status == BAD_RESPONSE:
        assert out.error.startswith("not a text completion") and "502 Bad Gateway" in out.error
    if status == HTTP_ERROR:
        assert out.error == "HTTP 400: Invalid prompt: it can never succeed."


def test_completions_redact_a_key_the_server_echoes():
    key = "sk-live-" + "0123456789abcdef" * 20 + "/XYZ"
    with StubLLM(api_key=key, faults={PROMPT: ["echo_key"] * 9}) as llm:
        out = ask_one(completions(llm, max_attempts=2), key=key)
        assert [r.status for r in llm.requests()] == [500, 500]
    echoed = f"Authorization: Bearer {requester.REDACTED}"
    assert out.error == f"HTTP 500: Upstream refused the request ({echoed})."
    assert not any(key[i : i + 8] in repr(out) for i in range(len(key) - 8))


def test_a_provider_registered_elsewhere_is_used_by_ask(monkeypatch):
    """The seam as a user fills it: a Provider subclass with its path, body and reading of the
    answer, registered under a name; the collector's retries and statuses come with it."""
    monkeypatch.setattr(providers_base, "_PROVIDERS", dict(providers_base._PROVIDERS))

    @register_provider("shouting-chat")
    class ShoutingChat(Provider):
        path = "/chat/completions"
        answer = "a shouted chat completion"

        def payload(self, endpoint, prompt, sample):
            return {"model": endpoint.model, "messages": [{"role": "user", "content": prompt + "!"}]}

        def reply(self, body):
            return Reply(body["choices"][0]["message"]["content"] + "!", "stop", total_tokens=7)

    assert "shouting-chat" in provider_names()
    with StubLLM(faults={PROMPT + "!": ["503"]}) as llm:
        ep = Endpoint(name="loud", base_url=llm.base_url, model="stub-a", provider="shouting-chat")
        assert ep.problems() == []
        out = ask_one(ep)
    assert (out.status, out.attempts, out.total_tokens) == (OK, 2, 7)
    assert out.response == expected(PROMPT + "!") + "!"
