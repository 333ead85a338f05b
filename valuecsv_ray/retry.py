"""One retry policy for every HTTP client of the package: bounded attempts, exponential backoff
with full jitter, the server's Retry-After honoured, and which failures are worth another try.

    policy = RetryPolicy(attempts=5)
    answer = policy.call(lambda: fetch(url))                            # sync (scoring.client)
    answer = await policy.call_async(send, rng=random.Random(0))        # asyncio (collect.requester)

A function asks for another try by raising `Transient` (carrying the server's Retry-After, if it
sent one); any other exception, or a result, ends the call at once. After the last attempt the
last `Transient` is raised to the caller, which turns it into its own error or record.

The loop is tenacity's (`Retrying` and `AsyncRetrying`: one configuration serves the sync client
and the asyncio collector, and the sleep is injectable, so tests record the waits asked for
instead of timing them). What tenacity has no strategy for is here, in `delay` and `gives_up`:
the wait is full jitter in [0, base * 2^(n-1)] capped at max_delay_s (clients that failed together
spread out over the whole window), but never shorter than the server's Retry-After; a Retry-After
longer than retry_after_max_s is not waited for, and the call gives up with that failure rather
than retry before the server asked. Retry-After parsing is hand-written too (ten lines of
`email.utils`; urllib3's parser refuses fractional seconds and raises on garbage).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

T = TypeVar("T")
TRANSIENT_STATUSES = frozenset({408, 409, 429})  # and every 5xx: see transient_status


def transient_status(status: int) -> bool:
    """Whether an HTTP status is worth another try: timeout, conflict, rate limit, server errors."""
    return status in TRANSIENT_STATUSES or status >= 500


class Transient(Exception):
    """A failure worth another try; `retry_after` is the server's Retry-After in seconds (None
    when it sent none). Callers subclass it to carry what they keep of the failure."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: bounded attempts, exponential backoff with full jitter, Retry-After honoured."""

    attempts: int = 5  # tries in all, the first included
    base_delay_s: float = 0.5  # backoff window before the second try; doubles with each try
    max_delay_s: float = 30.0  # widest backoff window
    retry_after_max_s: float = 120.0  # a server asking to wait longer is not retried (the call gives up)

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed try number `attempt` (1-based): uniform in the backoff
        window [0, min(max_delay_s, base_delay_s * 2^(attempt-1))], never less than Retry-After."""
        window = min(self.max_delay_s, self.base_delay_s * 2 ** min(attempt - 1, 64))
        return max((rng or random).uniform(0, window), retry_after or 0.0)

    def gives_up(self, error: BaseException) -> bool:
        """Whether a failure asks to wait longer than this policy waits (its Retry-After)."""
        retry_after = getattr(error, "retry_after", None)
        return retry_after is not None and retry_after > self.retry_after_max_s

    def call(
        self,
        fn: Callable[[], T],
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[Transient, int, float], None] | None = None,
    ) -> T:
        """fn(), tried again after each `Transient` it raises; `on_retry(error, attempt, wait)` is
        told before each wait (e.g. to log it)."""
        return tenacity.Retrying(sleep=sleep, **self._loop(rng, on_retry))(fn)

    async def call_async(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        on_retry: Callable[[Transient, int, float], None] | None = None,
    ) -> T:
        """await fn(), tried again after each `Transient` it raises; no slot or lock of the caller's
        is held during a wait, as fn() holds them only while it runs."""
        retrying = tenacity.AsyncRetrying(sleep=sleep or asyncio.sleep, **self._loop(rng, on_retry))
        return await retrying(fn)

    def _loop(self, rng: random.Random | None, on_retry: Callable | None) -> dict:
        """tenacity's settings for this policy (a fresh set per call: its statistics are per object)."""

        def wait(state: tenacity.RetryCallState) -> float:
            return self.delay(state.attempt_number, state.outcome.exception().retry_after, rng)

        def told(state: tenacity.RetryCallState) -> None:
            if on_retry is not None:
                on_retry(state.outcome.exception(), state.attempt_number, state.upcoming_sleep)

        def asks_too_long(state: tenacity.RetryCallState) -> bool:
            return self.gives_up(state.outcome.exception())

        return {
            "stop": tenacity.stop_after_attempt(self.attempts) | asks_too_long,
            "wait": wait,
            "retry": tenacity.retry_if_exception_type(Transient),
            "before_sleep": told,
            "reraise": True,
        }


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
