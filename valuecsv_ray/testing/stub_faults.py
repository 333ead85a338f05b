"""The faults the stub LLM server (`valuecsv_ray.testing.llm_stub`) injects, and the answers they give.

    StubLLM(faults={"问题": ["429", "html", "parts"]})   # attempt 1, 2, 3 of that prompt; then normal

Each fault imitates something a real endpoint or a proxy in front of it does:

| fault | answer |
| --- | --- |
| `429` | 429 with `Retry-After`, an OpenAI rate-limit error |
| `503`, `500` | server errors (OpenAI-style JSON bodies) |
| `400` | a permanent invalid-request error (every later attempt too) |
| `echo_key` | 500 whose error message repeats the request's Authorization header (the API key) |
| `slow` | the normal answer after `slow_s` seconds (outlasts a client's timeout) |
| `drop` | the connection closed without an answer |
| `malformed` | 200 with a cut-off JSON body |
| `html` | 200 with a proxy's HTML error page |
| `null` | a completion whose content is null |
| `length` | a completion cut in half, finish_reason "length" |
| `parts` | a completion whose content is a list of content parts (`[{"type": "text", ...}]`) |
"""

from __future__ import annotations

import functools
import json

from aiohttp import web

FAULTS = (
    "429", "503", "500", "400", "echo_key", "slow", "drop", "malformed", "html", "null", "length", "parts",
)

# fault -> (status, message, type, code) of the OpenAI-style error it answers with at once
ERRORS = {
    "429": (429, "Rate limit reached for requests. Please retry later.", "requests", "rate_limit_exceeded"),
    "503": (503, "The server is overloaded or not ready yet.", "server_error", None),
    "500": (500, "The server had an error while processing your request.", "server_error", None),
    "400": (400, "Invalid prompt: it can never succeed.", "invalid_request_error", "invalid_prompt"),
    "echo_key": (500, "Upstream refused the request (Authorization: {authorization}).", "server_error", None),
}

HTML_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)

dumps = functools.partial(json.dumps, ensure_ascii=False)  # UTF-8 bodies, as OpenAI sends


def error_response(status: int, message: str, type_: str, code: str | None, **headers: str) -> web.Response:
    """An OpenAI-style error body."""
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers or None, dumps=dumps)


def immediate(fault: str | None, request: web.Request, retry_after_s: float) -> web.Response | None:
    """The answer of a fault that answers at once (an error, like a gateway's), else None."""
    if fault not in ERRORS:
        return None
    status, message, type_, code = ERRORS[fault]
    headers = {"Retry-After": _seconds(retry_after_s)} if fault == "429" else {}
    message = message.format(authorization=request.headers.get("Authorization", ""))
    return error_response(status, message, type_, code, **headers)


def not_a_completion(fault: str | None) -> web.Response | None:
    """A 200 whose body is not a chat completion (`malformed`, `html`), else None."""
    if fault == "malformed":
        return web.Response(status=200, text='{"choices": [', content_type="application/json")
    if fault == "html":
        return web.Response(status=200, text=HTML_PAGE, content_type="text/html")
    return None


def shape(text: str | None, fault: str | None) -> tuple[str | None, str | None]:
    """The answer text and finish_reason after a completion fault (`length`, `null`); finish None
    leaves the caller's."""
    if fault == "length" and text is not None:
        return text[: len(text) // 2], "length"
    if fault == "null":
        return None, None
    return text, None


def content(text: str | None, fault: str | None) -> str | list | None:
    """The message content: the text, or for `parts` the text split into two text parts."""
    if fault != "parts" or text is None:
        return text
    half = len(text) // 2
    return [{"type": "text", "text": text[:half]}, {"type": "text", "text": text[half:]}]


def _seconds(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)
