"""ask() against a real HTTP server (the stub LLM) with scripted faults: statuses, retries, caps.

Usage: python -m pytest tests/collect/test_requester.py -q
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from valuecsv_ray.collect import requester
from valuecsv_ray.collect.config import Endpoint
from valuecsv_ray.collect.requester import Gate, Outcome, ask, backoff_s, parse_completion, parse_retry_after
from valuecsv_ray.collect.schema import BAD_RESPONSE, EMPTY, HTTP_ERROR, OK, STATUSES, TIMEOUT, TRUNCATED
from valuecsv_ray.llm_stub import StubLLM, reply_text

KEY = "sk-stub"
PROMPT = "诚信对社会有什么意义？"


@pytest.fixture(autouse=True)
def short_backoff(monkeypatch):
    """Backoff windows of 10 ms, so retries cost no test time (Retry-After still counts in full)."""
    monkeypatch.setattr(requester, "BACKOFF_BASE_S", 0.01)


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


def settled_log(llm: StubLLM, n: int, within_s: float = 3.0) -> list:
    """The stub's log once it holds n requests: a request the client gave up on is logged
    only when the server notices the closed connection, a moment after ask() returned."""
    deadline = time.monotonic() + within_s
    while len(llm.requests()) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return llm.requests()


def expected_reply(prompt: str = PROMPT, seed: int | None = None) -> str:
    return reply_text("stub-a", [{"role": "user", "content": prompt}], seed)


def test_ok_answer_carries_text_usage_and_finish_reason():
    with StubLLM(latency_s=0.05) as llm:
        out = ask_one(llm)
        (record,) = llm.requests()
    assert out.status == OK and out.error is None and out.http_status == 200 and out.attempts == 1
    assert out.response == expected_reply() and out.finish_reason == "stop"
    assert (out.prompt_tokens, out.completion_tokens) == (len(PROMPT), len(out.response))
    assert out.total_tokens == out.prompt_tokens + out.completion_tokens
    assert 0.05 <= out.latency_s < 2
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


def test_429_waits_at_least_retry_after_then_succeeds():
    with StubLLM(faults={PROMPT: ["429"]}, retry_after_s=1.0) as llm:
        out = ask_one(llm)
        first, second = llm.requests()
    assert (out.status, out.attempts, out.http_status) == (OK, 2, 200)
    assert (first.status, first.fault, second.status, second.attempt) == (429, "429", 200, 2)
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


def test_slow_answers_time_out_on_every_attempt():
    with StubLLM(faults={PROMPT: ["slow", "slow"]}, slow_s=5) as llm:
        t0 = time.monotonic()
        out = ask_one(llm, timeout_s=0.3, max_attempts=2)
        elapsed = time.monotonic() - t0
        log = settled_log(llm, 2)
        assert [(r.attempt, r.fault, r.status) for r in log] == [(1, "slow", 0), (2, "slow", 0)]
    assert (out.status, out.http_status, out.attempts, out.response) == (TIMEOUT, None, 2, None)
    assert out.error == "no answer within 0.3 s"
    assert 0.6 <= out.latency_s < 2 and elapsed < 3


def test_a_timeout_then_an_answer_is_ok():
    with StubLLM(faults={PROMPT: ["slow"]}, slow_s=5) as llm:
        out = ask_one(llm, timeout_s=0.5, max_attempts=2)
    assert (out.status, out.attempts) == (OK, 2)


def test_malformed_body_is_bad_response():
    with StubLLM(faults={PROMPT: ["malformed"]}) as llm:
        out = ask_one(llm, max_attempts=5)
        assert len(llm.requests()) == 1  # a 2xx ends the row
    assert (out.status, out.http_status, out.attempts, out.response) == (BAD_RESPONSE, 200, 1, None)
    assert out.error.startswith("not a chat completion") and '{"choices": [' in out.error


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
    prompts = [f"问题{i}" for i in range(40)]
    with StubLLM(latency_s=0.2) as llm:
        t0 = time.monotonic()
        outcomes = ask_all(endpoint(llm), prompts, max_in_flight=5)
        elapsed = time.monotonic() - t0
        assert llm.max_in_flight == 5 and len(llm.requests()) == 40
    assert [o.status for o in outcomes] == [OK] * 40
    assert [o.response for o in outcomes] == [expected_reply(p) for p in prompts]
    assert 40 / 5 * 0.2 <= elapsed < 5  # eight waves, not one and not forty


def test_a_backoff_holds_no_slot():
    """One slot: while the first prompt waits out its 1 s Retry-After, the second is answered."""
    with StubLLM(faults={"first": ["429"]}, retry_after_s=1.0) as llm:
        outcomes = ask_all(endpoint(llm), ["first", "second"], max_in_flight=1)
        log = llm.requests()
    assert [(o.status, o.attempts) for o in outcomes] == [(OK, 2), (OK, 1)]
    assert [(r.prompt, r.status) for r in log] == [("first", 429), ("second", 200), ("first", 200)]
    assert log[1].t_start - log[0].t_end < 0.5


def test_gate_spreads_starts_at_the_requested_rate():
    """10 per second: the k-th request reaches the server no sooner than k * 0.1 s after ask() began.
    (A bound on the k-th arrival, not on each gap: a busy CPU can delay one arrival and bunch the
    next few, but it can never bring a request forward; without the rate all ten land at once.)"""
    with StubLLM() as llm:
        began = time.monotonic()  # the stub logs time.monotonic() of this same process
        outcomes = ask_all(endpoint(llm), [f"问题{i}" for i in range(10)], max_in_flight=10,
                           requests_per_second=10)
        starts = sorted(r.t_start for r in llm.requests())
    assert [o.status for o in outcomes] == [OK] * 10
    assert all(t - began >= k * 0.1 - 1e-3 for k, t in enumerate(starts)), [t - began for t in starts]
    assert starts[-1] - began < 0.9 + 2.0  # spread at the rate, not serialised by anything slower


def test_backoff_never_below_retry_after_and_capped(monkeypatch):
    monkeypatch.setattr(requester, "BACKOFF_BASE_S", 0.5)
    rng = random.Random(0)
    for attempt in range(1, 12):
        waits = [backoff_s(attempt, None, rng) for _ in range(200)]
        window = min(requester.BACKOFF_MAX_S, 0.5 * 2 ** (attempt - 1))
        assert all(0 <= w <= window for w in waits)
        assert max(waits) > 0.5 * window  # jittered across the window, not stuck at its start
        assert all(backoff_s(attempt, 3.0, rng) >= 3.0 for _ in range(200))
    assert all(backoff_s(a, 10_000.0, rng) == requester.RETRY_AFTER_MAX_S for a in (1, 8, 20))
    assert backoff_s(40, None, rng) <= requester.BACKOFF_MAX_S


def test_backoff_is_capped_for_any_attempt():
    assert backoff_s(2000, None, random.Random(0)) <= requester.BACKOFF_MAX_S


def test_parse_retry_after():
    assert parse_retry_after("5") == 5.0 and parse_retry_after("0.25") == 0.25
    assert parse_retry_after("-3") == 0.0
    soon = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert 27 <= parse_retry_after(email.utils.format_datetime(soon, usegmt=True)) <= 31
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    assert parse_retry_after(email.utils.format_datetime(past, usegmt=True)) == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    for garbage in (None, "", "soon", "Wed, 99 Foo 2015"):
        assert parse_retry_after(garbage) is None, garbage


@pytest.mark.parametrize("text, status", [
    ('{"choices": []}', BAD_RESPONSE),
    ('{"choices": [{"message": {"content": 5}}]}', BAD_RESPONSE),
    ('["not", "a", "completion"]', BAD_RESPONSE),
    ('{"choices": [{"message": {"content": "  "}, "finish_reason": "stop"}]}', EMPTY),
    ('{"choices": [{"message": {"content": "好"}, "finish_reason": "stop"}], "usage": {"total_tokens": "x"}}',
     OK),
])
def test_parse_completion_edge_bodies(text, status):
    out = parse_completion(text)
    assert out.status == status and out.http_status == 200
    assert (out.response is not None) == (status == OK) and out.total_tokens is None
