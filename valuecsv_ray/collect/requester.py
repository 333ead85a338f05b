"""Ask one LLM endpoint for one answer: caps, retries, backoff, and a final status.

    async with aiohttp.ClientSession() as session:
        gate = Gate(max_in_flight=16, requests_per_second=None)
        outcome = await ask(session, endpoint, key, "你好", gate, random.Random(0))

The request's shape (URL, headers, body) and how a 2xx body is read are the endpoint's provider's
(`collect.providers`: OpenAI-compatible chat by default); the rest is the same for every provider.
Retried under the one retry policy (`valuecsv_ray.retry`: full-jitter exponential backoff, never
sooner than the server's `Retry-After`), up to the endpoint's `max_attempts`: connection errors,
timeouts, HTTP 408, 409, 429 and 5xx, and a 2xx whose body is not the provider's answer (a
proxy's error page); the last one's failure is the row's status. Any other 4xx, or a Retry-After
beyond RETRY.retry_after_max_s, is recorded at once, not retried. An answer ends the row: `ok`,
`empty` (null or blank text), or `truncated` (finish_reason "length"; the partial text is kept).
A slot of the cap is held only while a request is on the wire, never during a backoff. The API
key goes into the provider's headers and nowhere else: every text a server sends back (or an
error about the connection) has it replaced by REDACTED before anything keeps it.
Plain asyncio + aiohttp, no Ray: the collect actors call it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import aiohttp

from valuecsv_ray.collect.config import Endpoint
from valuecsv_ray.collect.providers import DEFAULT_PROVIDER, NotAReply, Provider, Reply, get_provider
from valuecsv_ray.collect.schema import BAD_RESPONSE, EMPTY, HTTP_ERROR, OK, TIMEOUT, TRUNCATED
from valuecsv_ray.retry import RetryPolicy, Transient, parse_retry_after, transient_status

log = logging.getLogger(__name__)
RETRY = RetryPolicy(base_delay_s=0.5, max_delay_s=30.0, retry_after_max_s=120.0)  # attempts: the endpoint's
REDACTED = "[API key]"  # what replaces the key wherever a server echoed it
NOT_ASKED = "not_asked"  # the run stopped (e.g. at its budget) before the row's next request: never written
_ERROR_CHARS = 300


@dataclass(frozen=True)
class Outcome:
    """The final result of one row: RESPONSE_SCHEMA's request columns."""

    status: str
    response: str | None = None
    error: str | None = None
    http_status: int | None = None
    attempts: int = 1
    latency_s: float = 0.0
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None


class _Failed(Transient):
    """An attempt worth another; its outcome is the row's if it was the last."""

    def __init__(self, outcome: Outcome, retry_after: float | None = None):
        super().__init__(outcome.error or outcome.status, retry_after)
        self.outcome = outcome


class Gate:
    """The cap on requests in flight to one endpoint, and an optional start rate."""

    def __init__(self, max_in_flight: int, requests_per_second: float | None = None):
        self._slots = asyncio.Semaphore(max_in_flight)
        self._interval = 1.0 / requests_per_second if requests_per_second else 0.0
        self._next_start = 0.0

    async def __aenter__(self) -> Gate:
        await self._slots.acquire()
        if self._interval:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
            await asyncio.sleep(start - now)
        return self

    async def __aexit__(self, *exc) -> None:
        self._slots.release()


async def ask(
    session: aiohttp.ClientSession,
    endpoint: Endpoint,
    api_key: str | None,
    prompt: str,
    gate: Gate,
    rng: random.Random,
    sample: int = 0,
    may_start: Callable[[], Awaitable[bool]] | None = None,
) -> Outcome:
    """One row's answer, retrying what is worth retrying; never raises for a server's fault.
    `may_start` is asked before every request (first or retry): when it answers False the row
    ends NOT_ASKED, and the run leaves it for a later one."""
    provider = get_provider(endpoint.provider)
    url, body = provider.url(endpoint), provider.payload(endpoint, prompt, sample)
    start, sent = time.monotonic(), 0

    async def attempt() -> Outcome:
        nonlocal sent
        async with gate:
            if may_start is not None and not await may_start():
                return Outcome(NOT_ASKED, error="the run stopped before this request")
            sent += 1
            return await _post(session, endpoint, provider, url, body, api_key)

    def retrying(error: Transient, attempt: int, wait: float) -> None:
        _note_retry(endpoint, error, attempt, wait)

    try:
        outcome = await replace(RETRY, attempts=endpoint.max_attempts).call_async(
            attempt, rng=rng, on_retry=retrying
        )
    except _Failed as e:
        outcome = e.outcome
    return _finish(outcome, sent, start)


def _note_retry(endpoint: Endpoint, error: Transient, attempt: int, wait: float) -> None:
    """Log one retry (the reason is a redacted server text); tests record the waits here."""
    log.debug("%s: %s; try %d of %d in %.2f s", endpoint.name, error.reason, attempt + 1,
              endpoint.max_attempts, wait)


async def _post(session: aiohttp.ClientSession, endpoint: Endpoint, provider: Provider, url: str,
                body: dict, api_key: str | None) -> Outcome:
    """One request: the row's outcome, or _Failed when another attempt may do better. Every text
    from the server (or about the connection) has the key redacted."""
    try:
        async with session.post(url, json=body, headers=provider.headers(api_key),
                                timeout=aiohttp.ClientTimeout(total=endpoint.timeout_s)) as resp:
            text = redact(await resp.text(errors="replace"), api_key)
            status, retry_after = resp.status, parse_retry_after(resp.headers.get("Retry-After"))
    except asyncio.TimeoutError:
        raise _Failed(Outcome(TIMEOUT, error=f"no answer within {endpoint.timeout_s:g} s")) from None
    except aiohttp.ClientError as e:
        error = redact(f"connection failed: {type(e).__name__}: {e}", api_key)[:_ERROR_CHARS]
        raise _Failed(Outcome(TIMEOUT, error=error)) from None
    if 200 <= status < 300:
        outcome = parse_completion(text, status, provider)
        if outcome.status == BAD_RESPONSE:  # e.g. a proxy's error page
            raise _Failed(outcome)
        return outcome
    error = f"HTTP {status}: {provider.error_message(text)}"[:_ERROR_CHARS]
    outcome = Outcome(HTTP_ERROR, error=error, http_status=status)
    if transient_status(status):
        raise _Failed(outcome, retry_after)
    return outcome


def redact(text: str, api_key: str | None) -> str:
    """`text` without the API key (as sent, or JSON-escaped) wherever a server echoed it."""
    if not api_key:
        return text
    for form in dict.fromkeys((api_key, json.dumps(api_key)[1:-1], api_key.replace("/", "\\/"))):
        text = text.replace(form, REDACTED)
    return text


def parse_completion(text: str, http_status: int = 200, provider: Provider | None = None) -> Outcome:
    """A 2xx body as an Outcome (ok, empty, truncated or bad_response), read by `provider`
    (default: OpenAI-compatible chat)."""
    try:
        reply = (provider or get_provider(DEFAULT_PROVIDER)).parse(text)
    except NotAReply as e:
        return Outcome(BAD_RESPONSE, error=str(e), http_status=http_status)
    return _outcome(reply, http_status)


def _outcome(reply: Reply, http_status: int) -> Outcome:
    tokens = {k: getattr(reply, k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    common = {"http_status": http_status, "finish_reason": reply.finish_reason, **tokens}
    if reply.text is None or not reply.text.strip():
        return Outcome(EMPTY, error="the answer has no content", **common)
    if reply.finish_reason == "length":
        cut = "cut at max_tokens (finish_reason 'length')"
        return Outcome(TRUNCATED, response=reply.text, error=cut, **common)
    return Outcome(OK, response=reply.text, **common)


def _finish(outcome: Outcome, attempt: int, start: float) -> Outcome:
    return Outcome(**{**outcome.__dict__, "attempts": attempt, "latency_s": time.monotonic() - start})
