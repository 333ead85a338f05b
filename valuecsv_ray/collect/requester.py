"""Ask one OpenAI-compatible endpoint for one answer: caps, retries, backoff, and a final status.

    async with aiohttp.ClientSession() as session:
        gate = Gate(max_in_flight=16, requests_per_second=None)
        outcome = await ask(session, endpoint, key, "你好", gate, random.Random(0))

Retried (with jittered exponential backoff, at least as long as the server's `Retry-After`):
connection errors, timeouts, HTTP 408, 409, 429 and 5xx, and a 2xx whose body is not a chat
completion (a proxy's error page), up to the endpoint's `max_attempts`; the last one's failure
is the row's status. Any other 4xx is recorded at once, not retried. A chat completion ends the
row: `ok`, `empty` (null or blank content), or `truncated` (finish_reason "length"; the partial
text is kept); content given as a list of content parts counts as its text parts joined. A slot
of the cap is held only while a request is on the wire, never during a backoff. The API key goes
into the Authorization header and nowhere else: every text a server sends back (or an error
about the connection) has it replaced by REDACTED before anything keeps it.
Plain asyncio + aiohttp, no Ray: the collect actors call it.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from valuecsv_ray.collect.config import Endpoint
from valuecsv_ray.collect.schema import BAD_RESPONSE, EMPTY, HTTP_ERROR, OK, TIMEOUT, TRUNCATED

RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx
BACKOFF_BASE_S = 0.5  # first backoff window; doubles per attempt (full jitter within the window)
BACKOFF_MAX_S = 30.0
RETRY_AFTER_MAX_S = 120.0  # a longer Retry-After is cut to this (the row would stall the run)
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


@dataclass(frozen=True)
class _Try:
    """One request's result before the retry decision."""

    outcome: Outcome  # the row's outcome if this is its last attempt
    retry: bool  # a failure worth another attempt
    retry_after: float | None = None


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


def request_body(endpoint: Endpoint, prompt: str, sample: int) -> dict:
    """The chat-completions body: the prompt as the user message, the endpoint's parameters.
    With a seed, sample k sends seed + k, so samples differ but stay reproducible."""
    messages = [{"role": "system", "content": endpoint.system_prompt}] if endpoint.system_prompt else []
    body: dict = {"model": endpoint.model, "messages": [*messages, {"role": "user", "content": prompt}]}
    for key in ("temperature", "max_tokens"):
        if getattr(endpoint, key) is not None:
            body[key] = getattr(endpoint, key)
    if endpoint.seed is not None:
        body["seed"] = endpoint.seed + sample
    return body


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
    body = request_body(endpoint, prompt, sample)
    start = time.monotonic()
    for attempt in range(1, endpoint.max_attempts + 1):
        async with gate:
            if may_start is not None and not await may_start():
                stopped = Outcome(NOT_ASKED, error="the run stopped before this request")
                return _finish(stopped, attempt - 1, start)
            result = await _post(session, endpoint, body, api_key)
        if not result.retry or attempt == endpoint.max_attempts:
            break
        await asyncio.sleep(backoff_s(attempt, result.retry_after, rng))
    return _finish(result.outcome, attempt, start)


def backoff_s(attempt: int, retry_after: float | None, rng: random.Random) -> float:
    """Seconds before the next attempt: full jitter in [0, base * 2^(attempt-1)] (capped), but
    never less than the server's Retry-After (capped at RETRY_AFTER_MAX_S)."""
    jittered = rng.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(attempt - 1, 32)))
    if retry_after is None:
        return jittered
    return max(min(retry_after, RETRY_AFTER_MAX_S), jittered)


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


async def _post(session: aiohttp.ClientSession, endpoint: Endpoint, body: dict, api_key: str | None) -> _Try:
    """One request; every text from the server (or about the connection) has the key redacted."""
    url = endpoint.base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        async with session.post(
            url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=endpoint.timeout_s)
        ) as resp:
            text = redact(await resp.text(errors="replace"), api_key)
            status, retry_after = resp.status, parse_retry_after(resp.headers.get("Retry-After"))
    except asyncio.TimeoutError:
        return _Try(Outcome(TIMEOUT, error=f"no answer within {endpoint.timeout_s:g} s"), retry=True)
    except aiohttp.ClientError as e:
        error = redact(f"connection failed: {type(e).__name__}: {e}", api_key)[:_ERROR_CHARS]
        return _Try(Outcome(TIMEOUT, error=error), retry=True)
    if 200 <= status < 300:
        outcome = parse_completion(text, status)
        return _Try(outcome, retry=outcome.status == BAD_RESPONSE)  # e.g. a proxy's error page
    error = f"HTTP {status}: {_error_message(text)}"[:_ERROR_CHARS]
    retry = status in RETRY_STATUSES or status >= 500
    return _Try(Outcome(HTTP_ERROR, error=error, http_status=status), retry=retry, retry_after=retry_after)


def redact(text: str, api_key: str | None) -> str:
    """`text` without the API key (as sent, or JSON-escaped) wherever a server echoed it."""
    if not api_key:
        return text
    for form in dict.fromkeys((api_key, json.dumps(api_key)[1:-1], api_key.replace("/", "\\/"))):
        text = text.replace(form, REDACTED)
    return text


def parse_completion(text: str, http_status: int = 200) -> Outcome:
    """A 2xx body as an Outcome: ok, empty, truncated or bad_response. Content given as a list
    of content parts counts as the text of its text parts, joined."""
    try:
        payload = json.loads(text)
        choice = payload["choices"][0]
        content = _content_text(choice["message"].get("content"))
        usage = payload.get("usage") or {}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        return Outcome(
            BAD_RESPONSE,
            error=f"not a chat completion ({type(e).__name__}): {text[:200]!r}",
            http_status=http_status,
        )
    finish = choice.get("finish_reason")
    tokens = {
        k: usage.get(k) if isinstance(usage.get(k), int) else None
        for k in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    if content is None or not content.strip():
        return Outcome(
            EMPTY, error="the answer has no content", http_status=http_status, finish_reason=finish, **tokens
        )
    if finish == "length":
        return Outcome(
            TRUNCATED,
            response=content,
            error="cut at max_tokens (finish_reason 'length')",
            http_status=http_status,
            finish_reason=finish,
            **tokens,
        )
    return Outcome(OK, response=content, http_status=http_status, finish_reason=finish, **tokens)


def _content_text(content: object) -> str | None:
    """A message's content as text: a string, None, or the text parts of a list joined; a
    TypeError for anything else."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        return "".join(
            p["text"] for p in content if p.get("type", "text") == "text" and isinstance(p.get("text"), str)
        )
    raise TypeError(f"message content is {type(content).__name__}, not text or a list of content parts")


def _error_message(text: str) -> str:
    """The message of an OpenAI-style error body, else the start of the body."""
    try:
        error = json.loads(text).get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    except (ValueError, AttributeError):
        pass
    return text.strip()[:200] or "(empty body)"


def _finish(outcome: Outcome, attempt: int, start: float) -> Outcome:
    return Outcome(**{**outcome.__dict__, "attempts": attempt, "latency_s": time.monotonic() - start})
