"""Query a running valuecsv-ray endpoint, retrying while it is busy or restarting.

    results = score_texts("http://127.0.0.1:8000", ["一段文本"], token=os.environ.get("VALUECSV_SERVE_TOKEN"))
    taxonomy = request_json("http://127.0.0.1:8000/v1/values", token=token)

A 503 (queue full, replica restarting) or a refused or dropped connection is tried again after a
jittered exponential backoff, never sooner than the server's Retry-After, up to `RetryPolicy.attempts`
tries; any other answer, or the last failed try, raises `EndpointError` naming the URL and what to
do. Standard library only (no torch, no Ray), so `valuecsv-ray score --url` starts fast.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from valuecsv_ray.errors import ValuecsvError

logger = logging.getLogger(__name__)

_ADVICE = {
    400: "send the texts as UTF-8 JSON",
    401: "pass the server's token with --token or $VALUECSV_SERVE_TOKEN",
    404: "check the URL: it should be the server's root, e.g. http://127.0.0.1:8000",
    408: "the server took too long: try again later, or send fewer texts",
    413: "send fewer or shorter texts (the server's limits are in its /openapi.json)",
    422: "the request did not match the server's schema (see its /openapi.json)",
}
_START = ("start it with `valuecsv-ray serve --registry DIR` or `serve run serve_configs/ensemble.yaml`, "
          "or score locally with --registry DIR")
_BUSY = ("the server is overloaded or restarting: try again later, or have its operator add replicas "
         "or raise max_queued_requests")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: bounded attempts, exponential backoff with jitter."""

    attempts: int = 6  # tries in all, the first included
    base_delay_s: float = 0.5  # backoff before the second try; doubles with each try
    max_delay_s: float = 30.0  # longest wait; a server asking for more (Retry-After) is not retried
    timeout_s: float = 120.0  # per try

    def delay(self, retry: int, retry_after: float | None, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number `retry` (0-based): half the backoff plus a random
        half (clients that failed together spread out), and never less than Retry-After."""
        backoff = min(self.max_delay_s, self.base_delay_s * 2**retry)
        return max(backoff * (0.5 + rng() / 2), retry_after or 0.0)


class EndpointError(ValuecsvError, RuntimeError):
    """The endpoint did not answer; the message names the URL and what to do. `status` is the HTTP
    status of the last answer (503 when retries ran out on it), None when there was none."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class _Transient(Exception):
    """A failure worth retrying: 503 or a refused/dropped connection."""

    def __init__(self, reason: str, advice: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(reason)
        self.reason, self.advice, self.retry_after, self.status = reason, advice, retry_after, status


def score_texts(url: str, texts: Sequence[str], token: str | None = None,
                retry: RetryPolicy = RetryPolicy()) -> list[dict]:
    """Per text, the server's scores (probs, labels, groups, windows), in input order."""
    return request_json(url.rstrip("/") + "/v1/score", {"texts": list(texts)}, token, retry)["results"]


def request_json(url: str, body: dict | None = None, token: str | None = None,
                 retry: RetryPolicy = RetryPolicy()) -> dict:
    """GET `url` (or POST `body` as JSON) and decode the JSON answer, retrying transient failures."""
    started, attempt = time.monotonic(), 1
    while True:
        try:
            return _once(url, body, token, retry.timeout_s)
        except _Transient as e:
            spent = time.monotonic() - started
            if attempt == retry.attempts:
                raise EndpointError(f"{url}: {e.reason}, {attempt} times over {spent:.1f} s; "
                                    f"{e.advice}", e.status) from None
            if e.retry_after is not None and e.retry_after > retry.max_delay_s:
                raise EndpointError(f"{url}: {e.reason} and asks to retry after {e.retry_after:.0f} s; "
                                    f"{e.advice}", e.status) from None
            wait = retry.delay(attempt - 1, e.retry_after)
            attempt += 1
            logger.warning("%s: %s; retrying in %.1f s (try %d of %d)", url, e.reason, wait, attempt,
                           retry.attempts)
            time.sleep(wait)


def _once(url: str, body: dict | None, token: str | None, timeout_s: float) -> dict:
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json",
                                                              "Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        message = _error_message(e.read())
        if e.code == 503:
            retry_after = _retry_after(e.headers.get("Retry-After"))
            raise _Transient(f"answered 503 ({message})", _BUSY, retry_after, 503) from e
        advice = _ADVICE.get(e.code, "see the server's log" if e.code >= 500 else "see the message")
        raise EndpointError(f"{url} answered {e.code}: {message}; {advice}", e.code) from None
    except urllib.error.URLError as e:  # raised while connecting or sending
        if isinstance(e.reason, ConnectionError):
            raise _Transient(f"cannot connect ({e.reason})", _START) from e
        raise EndpointError(f"cannot reach {url} ({e.reason}); check the URL, or {_START}") from None
    except (ConnectionError, http.client.BadStatusLine, http.client.IncompleteRead) as e:  # dropped
        raise _Transient(f"connection dropped ({type(e).__name__}: {e})", _BUSY) from e
    except TimeoutError:
        raise EndpointError(f"{url} did not answer within {timeout_s:.0f} s; "
                            f"{_ADVICE[408]}") from None
    except json.JSONDecodeError as e:
        raise EndpointError(f"{url} answered something that is not JSON ({e}); is it a valuecsv-ray "
                            "server?") from None


def _error_message(payload: bytes) -> str:
    """The server's error message: `Error` ({status, message, errors}), else its first 300 characters."""
    text = payload.decode(errors="replace")
    try:
        error = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()[:300] or "no message"
    if not isinstance(error, dict) or "message" not in error:
        return text.strip()[:300]
    where = [f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in error.get("errors", [])[:3]]
    return "; ".join([str(error["message"]), *where])


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, from delay-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
