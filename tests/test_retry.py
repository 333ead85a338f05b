"""The one retry policy (valuecsv_ray.retry): what it asked for (attempts, order, waits), never
how long the machine took.

Usage: python -m pytest tests/test_retry.py -q
"""

from __future__ import annotations

import asyncio
import email.utils
import random
from datetime import datetime, timedelta, timezone

import pytest

from valuecsv_ray.retry import RetryPolicy, Transient, parse_retry_after, transient_status


class Script:
    """A function that fails with the scripted Transients (Retry-After values), then answers."""

    def __init__(self, *retry_afters: float | None, then: object = "answer"):
        self.failures, self.then, self.calls = list(retry_afters), then, 0

    def __call__(self) -> object:
        self.calls += 1
        if self.failures:
            raise Transient(f"failure {self.calls}", self.failures.pop(0))
        if isinstance(self.then, BaseException):
            raise self.then
        return self.then


def test_delays_fill_the_full_jitter_window_and_never_undercut_retry_after():
    policy, rng = RetryPolicy(base_delay_s=0.5, max_delay_s=30.0), random.Random(0)
    for attempt in range(1, 12):
        window = min(30.0, 0.5 * 2 ** (attempt - 1))
        waits = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert all(0 <= w <= window for w in waits)
        assert min(waits) < 0.2 * window and max(waits) > 0.8 * window  # spread over the window
        assert all(policy.delay(attempt, 3.0, rng) >= 3.0 for _ in range(200))
    assert policy.delay(2000, None, rng) <= 30.0  # any attempt: no overflow, capped


def test_call_retries_transients_in_order_with_the_waits_it_asked_for():
    policy, slept, told = RetryPolicy(attempts=4, base_delay_s=1.0), [], []
    fn = Script(None, 2.5)
    answer = policy.call(fn, rng=random.Random(1), sleep=slept.append,
                         on_retry=lambda e, n, w: told.append((e.reason, n, w)))
    assert answer == "answer" and fn.calls == 3
    assert [(reason, n) for reason, n, _ in told] == [("failure 1", 1), ("failure 2", 2)]
    assert slept == [w for _, _, w in told]  # what on_retry was told is what was slept
    assert 0 <= slept[0] <= 1.0 and slept[1] >= 2.5


def test_call_gives_up_after_its_attempts_with_the_last_failure():
    slept = []
    with pytest.raises(Transient, match="failure 3"):
        RetryPolicy(attempts=3, base_delay_s=0.01).call(Script(None, None, None, None), sleep=slept.append)
    assert len(slept) == 2  # no wait after the last attempt


def test_a_retry_after_beyond_the_policy_ends_the_call_at_once():
    slept, fn = [], Script(121.0)
    with pytest.raises(Transient) as e:
        RetryPolicy(attempts=5, retry_after_max_s=120.0).call(fn, sleep=slept.append)
    assert fn.calls == 1 and slept == [] and e.value.retry_after == 121.0


def test_other_errors_are_not_retried():
    fn = Script(None, then=KeyError("not transient"))
    with pytest.raises(KeyError):
        RetryPolicy(attempts=5, base_delay_s=0.01).call(fn, sleep=lambda s: None)
    assert fn.calls == 2


def test_call_async_retries_like_call():
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    script = Script(None, 4.0)

    async def fn() -> object:
        return script()

    policy = RetryPolicy(attempts=3, base_delay_s=0.5)
    assert asyncio.run(policy.call_async(fn, rng=random.Random(0), sleep=sleep)) == "answer"
    assert script.calls == 3 and len(slept) == 2 and 0 <= slept[0] <= 0.5 and slept[1] >= 4.0


def test_transient_statuses():
    statuses = (200, 400, 401, 404, 408, 409, 413, 422, 429, 500, 502, 503)
    assert [s for s in statuses if transient_status(s)] == [408, 409, 429, 500, 502, 503]


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
