"""ask() against a real HTTP server (the stub LLM) with scripted faults: statuses, retries, caps.

Usage: python -m pytest tests/collect/test_requester.py -q
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from types import SimpleNamespace

import aiohttp
import pytest

from valuecsv_ray.collect import requester
from valuecsv_ray.collect.config import Endpoint
from valuecsv_ray.collect.requester import Gate, Outcome, ask, parse_completion
from valuecsv_ray.collect.schema import BAD_RESPONSE, EMPTY, HTTP_ERROR, OK, STATUSES, TIMEOUT, TRUNCATED
from valuecsv_ray.testing.llm_stub import StubLLM, reply_text

KEY = "sk-stub"
PROMPT = "诚信对社会有什么意义？"


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch):
    """Backoff windows of 10 ms, so retries cost no test time (Retry-After still counts in full)."""
    monkeypatch.setattr(requester, "RETRY", dataclasses.replace(requester.RETRY, base_delay_s=0.01))


def endpoint(llm: StubLLM, **settings) -> Endpoint:
    return Endpoint(name="stub", base_url=llm.base_url, model="stub-a", **settings)


def ask_all(ep: Endpoint, prompts: list[str], *, key: str | None = KEY, max_in_flight: int | None = None,
            requests_per_second: float | None = None, sample: int = 0) -> list[Outcome]:
    """ask() every prompt concurrently through one Gate and one session, as a collect actor does."""

    async def main() -> list[Outcome]:
        gate = Gate(max_in_flight or ep.max_in_flight, requests_per_second)
        async with aiohttp.ClientSession() as session:
            return await asyncio.gather(*(ask(session, ep, key, p, gate, random.Random(i), sample)
                                          for i, p in enumerate(prompts)))

    return asyncio.run(main())


def ask_one(llm: StubLLM, *, key: str | None = KEY, sample: int = 0, **settings) -> Outcome:
    (outcome,) = ask_all(endpoint(llm, **settings), [PROMPT], key=key, sample=sample)
    assert outcome.status in STATUSES
    return outcome


def settled_log(llm: StubLLM, n: int, within_s: float = 60.0) -> list:
    """The stub's log once it holds n requests: a request the client gave up on is logged
    only when the server notices the closed connection, a moment after ask() returned.
    (`within_s` only stops a broken test from hanging; the wait ends as soon as n are logged.)"""
    deadline = time.monotonic() + within_s
    while len(llm.requests()) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return llm.requests()


@pytest.fixture
def waits(monkeypatch) -> list[tuple[int, float | None, float]]:
    """(attempt, Retry-After, seconds asked for) of every backoff ask() takes: what the retry code
    decided, whatever the machine's speed."""
    asked: list[tuple[int, float | None, float]] = []
    real = requester._note_retry

    def recorded(endpoint, error, attempt: int, wait: float) -> None:
        asked.append((attempt, error.retry_after, wait))
        real(endpoint, error, attempt, wait)

    monkeypatch.setattr(requester, "_note_retry", recorded)
    return asked


def expected_reply(prompt: str = PROMPT, seed: int | None = None) -> str:
    return reply_text("stub-a", [{"role": "user", "content": prompt}], seed)


def test_ok_answer_carries_text_usage_and_finish_reason():
    with StubLLM(latency_s=0.05) as llm:
        t0 = time.monotonic()
        out = ask_one(llm)
        elapsed = time.monotonic() - t0
        (record,) = llm.requests()
    assert out.status == OK and out.error is None and out.http_status == 200 and out.attempts == 1
    assert out.response == expected_reply() and out.finish_reason == "stop"
    assert (out.prompt_tokens, out.completion_tokens) == (len(PROMPT), len(out.response))
    assert out.total_tokens == out.prompt_tokens + out.completion_tokens
    assert 0.05 <= out.latency_s <= elapsed  # the server's latency, timed within this one call
    assert record.authorized
    assert record.body == {"model": "stub-a", "messages": [{"role": "user", "content": PROMPT}]}


def test_body_carries_system_prompt_sampling_and_seed_per_sample():
    with StubLLM() as llm:
        out = ask_one(llm, temperature=0.7, max_tokens=400, seed=10, system_prompt="你是助手。", sample=2)
        (record,) = llm.requests()
    assert record.body == {"model": "stub-a", "temperature": 0.7, "max_tokens": 400, "seed": 12,
                           "messages": [{"role": "system", "content": "你是助手。"},
                                        {"role": "user", "content": PROMPT}]}
    assert out.status == OK and KEY not in str(record.body)


def test_wrong_key_is_an_http_error_at_once():
    with StubLLM() as llm:
        out = ask_one(llm, key="sk-wrong", max_attempts=5)
        assert [(r.status, r.authorized) for r in llm.requests()] == [(401, False)]
    assert (out.status, out.http_status, out.attempts, out.response) == (HTTP_ERROR, 401, 1, None)
    assert out.error == "HTTP 401: Incorrect API key provided." and "sk-wrong" not in out.error


def test_permanent_400_is_not_retried():
    with StubLLM(faults={PROMPT: ["400"]}) as llm:
        out = ask_one(llm, max_attempts=5)
        assert len(llm.requests()) == 1
    assert (out.status, out.http_status, out.attempts) == (HTTP_ERROR, 400, 1)
    assert out.error == "HTTP 400: Invalid prompt: it can never succeed."


def test_429_waits_at_least_retry_after_then_succeeds(waits):
    with StubLLM(faults={PROMPT: ["429"]}, retry_after_s=1.0) as llm:
        out = ask_one(llm)
        first, second = llm.requests()
    assert (out.status, out.attempts, out.http_status) == (OK, 2, 200)
    assert (first.status, first.fault, second.status, second.attempt) == (429, "429", 200, 2)
    ((attempt, retry_after, wait),) = waits
    assert (attempt, retry_after) == (1, 1.0) and wait >= 1.0
    assert second.t_start - first.t_end >= 1.0
    assert out.latency_s >= 1.0


def test_two_503s_then_ok():
    with StubLLM(faults={PROMPT: ["503", "503"]}) as llm:
        out = ask_one(llm, max_attempts=5)
        assert [r.status for r in llm.requests()] == [503, 503, 200]
    assert (out.status, out.attempts, out.response) == (OK, 3, expected_reply())


def test_503_forever_stops_at_max_attempts():
    with StubLLM(faults={PROMPT: ["503"] * 10}) as llm:
        out = ask_one(llm, max_attempts=3)
        assert [r.status for r in llm.requests()] == [503, 503, 503]
    assert (out.status, out.http_status, out.attempts, out.response) == (HTTP_ERROR, 503, 3, None)
    assert out.error == "HTTP 503: The server is overloaded or not ready yet."


def test_slow_answers_time_out_on_every_attempt(waits):
    """Each attempt gives up at its timeout: the stub never sent its (5 s late) answer to either
    (status 0: the client had left), and the row says why, after one backoff between them."""
    with StubLLM(faults={PROMPT: ["slow", "slow"]}, slow_s=5) as llm:
        out = ask_one(llm, timeout_s=0.3, max_attempts=2)
        log = settled_log(llm, 2)
        assert [(r.attempt, r.fault, r.status) for r in log] == [(1, "slow", 0), (2, "slow", 0)]
    assert (out.status, out.http_status, out.attempts, out.response) == (TIMEOUT, None, 2, None)
    assert out.error == "no answer within 0.3 s"
    assert out.latency_s >= 2 * 0.3 and [(a, r) for a, r, _ in waits] == [(1, None)]


def test_a_timeout_then_an_answer_is_ok():
    with StubLLM(faults={PROMPT: ["slow"]}, slow_s=5) as llm:
        out = ask_one(llm, timeout_s=0.5, max_attempts=2)
    assert (out.status, out.attempts) == (OK, 2)


def test_a_body_that_is_not_a_completion_is_retried_like_a_server_error():
    with StubLLM(faults={PROMPT: ["malformed", "html"]}) as llm:
        out = ask_one(llm, max_attempts=5)
        log = [(r.fault, r.status) for r in llm.requests()]
        assert log == [("malformed", 200), ("html", 200), (None, 200)]
    assert (out.status, out.attempts, out.response) == (OK, 3, expected_reply())


def test_a_body_that_is_never_a_completion_is_bad_response_after_max_attempts():
    with StubLLM(faults={PROMPT: ["malformed", "html", "html", "html"]}) as llm:
        out = ask_one(llm, max_attempts=3)
        assert len(llm.requests()) == 3
    assert (out.status, out.http_status, out.attempts, out.response) == (BAD_RESPONSE, 200, 3, None)
    assert out.error.startswith("not a chat completion") and "502 Bad Gateway" in out.error


def test_content_parts_are_an_answer():
    with StubLLM(faults={PROMPT: ["parts"]}) as llm:
        out = ask_one(llm)
    assert (out.status, out.attempts, out.response, out.error) == (OK, 1, expected_reply(), None)
    assert out.completion_tokens == len(expected_reply())


def test_a_key_echoed_by_the_server_is_redacted_and_retries_stay_bounded():
    """A key long enough that the error's 300-character cut would fall inside it: it is redacted
    before anything is cut, so not even a prefix is kept."""
    key = "sk-live-" + "0123456789abcdef" * 20 + "/XYZ"
    with StubLLM(api_key=key, faults={PROMPT: ["echo_key"] * 9}) as llm:
        out = ask_one(llm, key=key, max_attempts=4)
        assert [r.status for r in llm.requests()] == [500] * 4
    assert (out.status, out.http_status, out.attempts) == (HTTP_ERROR, 500, 4)
    echoed = f"Authorization: Bearer {requester.REDACTED}"
    assert out.error == f"HTTP 500: Upstream refused the request ({echoed})."
    assert not any(key[i : i + 8] in repr(out) for i in range(len(key) - 8))


def test_redact_covers_json_escaped_forms():
    key = "sk-a/b\\c"
    json_escaped, slash_escaped = key.replace("\\", "\\\\"), key.replace("/", "\\/")
    body = '{"error": {"message": "bad key ' + json_escaped + " and " + slash_escaped + '"}}'
    assert "sk-a" not in requester.redact(body, key) and "sk-a" not in requester.redact(key, key)
    assert requester.redact("no key here", key) == "no key here" == requester.redact("no key here", None)


def test_may_start_false_sends_nothing_and_the_row_is_not_asked():
    async def closed() -> bool:
        return False

    with StubLLM() as llm:
        ep = endpoint(llm)

        async def main() -> Outcome:
            async with aiohttp.ClientSession() as session:
                return await ask(session, ep, KEY, PROMPT, Gate(1), random.Random(0), may_start=closed)

        out = asyncio.run(main())
        assert llm.requests() == []
    assert (out.status, out.attempts, out.response) == (requester.NOT_ASKED, 0, None)


def test_a_retry_is_not_started_once_may_start_says_no():
    calls = []

    async def once() -> bool:
        calls.append(1)
        return len(calls) == 1

    with StubLLM(faults={PROMPT: ["503"]}) as llm:
        ep = endpoint(llm, max_attempts=5)

        async def main() -> Outcome:
            async with aiohttp.ClientSession() as session:
                return await ask(session, ep, KEY, PROMPT, Gate(1), random.Random(0), may_start=once)

        out = asyncio.run(main())
        assert [r.status for r in llm.requests()] == [503]
    assert (out.status, out.attempts) == (requester.NOT_ASKED, 1)


def test_null_content_is_empty():
    with StubLLM(faults={PROMPT: ["null"]}) as llm:
        out = ask_one(llm)
    assert (out.status, out.response, out.finish_reason, out.attempts) == (EMPTY, None, "stop", 1)
    assert out.completion_tokens == 0 and out.prompt_tokens == len(PROMPT)


def test_length_is_truncated_and_keeps_the_partial_text():
    with StubLLM(faults={PROMPT: ["length"]}) as llm:
        out = ask_one(llm)
    full = expected_reply()
    assert (out.status, out.finish_reason, out.attempts) == (TRUNCATED, "length", 1)
    assert out.response == full[: len(full) // 2] and out.response
    assert out.error == "cut at max_tokens (finish_reason 'length')"


def test_a_dropped_connection_is_retried():
    with StubLLM(faults={PROMPT: ["drop"]}) as llm:
        out = ask_one(llm)
        assert [(r.fault, r.status) for r in llm.requests()] == [("drop", 0), (None, 200)]
    assert (out.status, out.attempts, out.response) == (OK, 2, expected_reply())


def test_dropped_every_time_is_a_timeout_without_http_status():
    with StubLLM(faults={PROMPT: ["drop"] * 3}) as llm:
        out = ask_one(llm, max_attempts=3)
    assert (out.status, out.http_status, out.attempts) == (TIMEOUT, None, 3)
    assert out.error.startswith("connection failed:")


def test_gate_holds_exactly_max_in_flight():
    """Forty 0.2 s answers through five slots: the server sees five at once, never more, so the
    forty take at least eight rounds (the stub's high-water mark says "not one and not forty")."""
    prompts = [f"问题{i}" for i in range(40)]
    with StubLLM(latency_s=0.2) as llm:
        t0 = time.monotonic()
        outcomes = ask_all(endpoint(llm), prompts, max_in_flight=5)
        elapsed = time.monotonic() - t0
        assert llm.max_in_flight == 5 and len(llm.requests()) == 40
    assert [o.status for o in outcomes] == [OK] * 40
    assert [o.response for o in outcomes] == [expected_reply(p) for p in prompts]
    assert elapsed >= 40 / 5 * 0.2


def test_a_backoff_holds_no_slot(waits):
    """One slot: while the first prompt waits out its 1 s Retry-After, the second is answered.
    (A slot held through the wait would put "second" after the first's retry.)"""
    with StubLLM(faults={"first": ["429"]}, retry_after_s=1.0) as llm:
        outcomes = ask_all(endpoint(llm), ["first", "second"], max_in_flight=1)
        log = llm.requests()
    assert [(o.status, o.attempts) for o in outcomes] == [(OK, 2), (OK, 1)]
    assert [(r.prompt, r.status) for r in log] == [("first", 429), ("second", 200), ("first", 200)]
    assert log[0].t_end <= log[1].t_start and log[1].t_end <= log[2].t_start  # one on the wire at a time
    assert [(a, r) for a, r, _ in waits] == [(1, 1.0)]


def test_gate_spreads_starts_at_the_requested_rate():
    """10 per second: the k-th request reaches the server no sooner than k * 0.1 s after ask() began.
    (A bound on the k-th arrival, not on each gap: a busy CPU can delay one arrival and bunch the
    next few, but it can never bring a request forward; without the rate all ten land at once.
    That the gate waits no longer than the rate asks is the next test's, on a stopped clock.)"""
    with StubLLM() as llm:
        began = time.monotonic()  # the stub logs time.monotonic() of this same process
        outcomes = ask_all(endpoint(llm), [f"问题{i}" for i in range(10)], max_in_flight=10,
                           requests_per_second=10)
        starts = sorted(r.t_start for r in llm.requests())
    assert [o.status for o in outcomes] == [OK] * 10
    assert all(t - began >= k * 0.1 - 1e-3 for k, t in enumerate(starts)), [t - began for t in starts]


def test_gate_asks_the_kth_start_to_wait_k_intervals(monkeypatch):
    """Ten requests at one instant (a stopped clock), 10 per second: the gate asks the k-th to wait
    exactly k * 0.1 s, so it spreads them at the rate and serialises them behind nothing slower."""
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr(requester, "time", SimpleNamespace(monotonic=lambda: 1000.0))
    monkeypatch.setattr(requester, "asyncio", SimpleNamespace(Semaphore=asyncio.Semaphore, sleep=sleep))

    async def main() -> None:
        gate = Gate(max_in_flight=10, requests_per_second=10)

        async def one() -> None:
            async with gate:
                pass

        await asyncio.gather(*(one() for _ in range(10)))

    asyncio.run(main())
    assert asked == pytest.approx([k * 0.1 for k in range(10)])


def test_a_retry_after_beyond_the_policy_is_not_waited_for(waits):
    """A 429 asking for more than RETRY.retry_after_max_s: the row ends with it at once, rather
    than retry before the server asked (and stall the run)."""
    with StubLLM(faults={PROMPT: ["429"]}, retry_after_s=3600) as llm:
        out = ask_one(llm, max_attempts=5)
        assert [r.status for r in llm.requests()] == [429]
    assert (out.status, out.http_status, out.attempts) == (HTTP_ERROR, 429, 1) and waits == []


@pytest.mark.parametrize("text, status", [
    ('{"choices": []}', BAD_RESPONSE),
    ('{"choices": [{"message": {"content": 5}}]}', BAD_RESPONSE),
    ('["not", "a", "completion"]', BAD_RESPONSE),
    ('{"choices": [{"message": {"content": "  "}, "finish_reason": "stop"}]}', EMPTY),
    ('{"choices": [{"message": {"content": [{"type": "image_url", "image_url": {}}]}}]}', EMPTY),
    ('{"choices": [{"message": {"content": ["text"]}}]}', BAD_RESPONSE),
    ('{"choices": [{"message": {"content": [{"type": "reasoning", "text": "想"}, {"text": "好"}]}}]}', OK),
    ('{"choices": [{"message": {"content": "好"}, "finish_reason": "stop"}], "usage": {"total_tokens": "x"}}',
     OK),
])
def test_parse_completion_edge_bodies(text, status):
    out = parse_completion(text)
    assert out.status == status and out.http_status == 200
    assert (out.response is not None) == (status == OK) and out.total_tokens is None
    assert out.response in (None, "好")  # text parts only: reasoning is not the answer
