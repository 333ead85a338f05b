"""Query a running valuecsv-ray endpoint, retrying while it is busy or restarting.

    results = score_texts("http://127.0.0.1:8000", ["一段文本"], token=os.environ.get("VALUECSV_SERVE_TOKEN"))
    taxonomy = request_json("http://127.0.0.1:8000/v1/values", token=token)

A transient answer (503: queue full or replica restarting; 408, 409, 429 and other 5xx) or a refused
or dropped connection is tried again under the package's one retry policy (`valuecsv_ray.retry`:
full-jitter exponential backoff, never sooner than the server's Retry-After), up to
`RetryPolicy.attempts` tries; any other answer, the last failed try, or a Retry-After longer than the
policy waits raises `EndpointError` naming the URL and what to do. Standard library and tenacity
only (no torch, no Ray), so `valuecsv-ray score --url` starts fast.
"""

from __future__ import annotations

import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.retry import RetryPolicy, Transient, parse_retry_after, transient_status

__all__ = ["DEFAULT_RETRY", "EndpointError", "RetryPolicy", "request_json", "score_texts"]

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


DEFAULT_RETRY = RetryPolicy(attempts=6)  # about 30 s of backoff in all (more when the server asks)
TIMEOUT_S = 120.0  # per try


class EndpointError(ValuecsvError, RuntimeError):
    """The endpoint did not answer; the message names the URL and what to do. `status` is the HTTP
    status of the last answer (503 when retries ran out on it), None when there was none."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class _Busy(Transient):
    """A failure worth retrying: a transient status, or a refused/dropped connection."""

    def __init__(self, reason: str, advice: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(reason, retry_after)
        self.advice, self.status = advice, status


def score_texts(url: str, texts: Sequence[str], token: str | None = None,
                retry: RetryPolicy = DEFAULT_RETRY, timeout_s: float = TIMEOUT_S) -> list[dict]:
    """Per text, the server's scores (probs, labels, groups, windows), in input order."""
    body = {"texts": list(texts)}
    return request_json(url.rstrip("/") + "/v1/score", body, token, retry, timeout_s)["results"]


def request_json(url: str, body: dict | None = None, token: str | None = None,
                 retry: RetryPolicy = DEFAULT_RETRY, timeout_s: float = TIMEOUT_S) -> dict:
    """GET `url` (or POST `body` as JSON) and decode the JSON answer, retrying transient failures."""
    started, tries = time.monotonic(), 0

    def once() -> dict:
        nonlocal tries
        tries += 1
        return _once(url, body, token, timeout_s)

    def retrying(e: Transient, attempt: int, wait: float) -> None:
        logger.warning("%s: %s; retrying in %.1f s (try %d of %d)", url, e.reason, wait, attempt + 1,
                       retry.attempts)

    try:
        return retry.call(once, on_retry=retrying)
    except _Busy as e:
        if retry.gives_up(e):
            raise EndpointError(f"{url}: {e.reason} and asks to retry after {e.retry_after:.0f} s; "
                                f"{e.advice}", e.status) from None
        raise EndpointError(f"{url}: {e.reason}, {tries} times over {time.monotonic() - started:.1f} s; "
                            f"{e.advice}", e.status) from None


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
        advice = _ADVICE.get(e.code, "see the server's log" if e.code >= 500 else "see the message")
        if transient_status(e.code):
            retry_after = parse_retry_after(e.headers.get("Retry-After"))
            raise _Busy(f"answered {e.code} ({message})", _BUSY if e.code == 503 else advice, retry_after,
                        e.code) from e
        raise EndpointError(f"{url} answered {e.code}: {message}; {advice}", e.code) from None
    except urllib.error.URLError as e:  # raised while connecting or sending
        if isinstance(e.reason, ConnectionError):
            raise _Busy(f"cannot connect ({e.reason})", _START) from e
        raise EndpointError(f"cannot reach {url} ({e.reason}); check the URL, or {_START}") from None
    except (ConnectionError, http.client.BadStatusLine, http.client.IncompleteRead) as e:  # dropped
        raise _Busy(f"connection dropped ({type(e).__name__}: {e})", _BUSY) from e
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

