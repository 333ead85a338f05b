"""Serve's HTTP proxy, answering in the API's error shape (installed through controller options).

    serve.start(controller_options=controller_options())      # or `controller_options:` in YAML

Ray 2.60's proxy sends nothing for a request whose replica died mid-flight (uvicorn then answers
a bare 500) and answers its own 408/503 in plain text. `ProxyErrors` turns the first into a 503
with Retry-After and the others into `Error` bodies.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from valuecsv_ray.serve.api import error_response

RETRY_AFTER_S = 2  # Retry-After of the proxy's 503s (a replica restarts in seconds); clients back off
CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"


class ProxyErrors:
    """ASGI middleware for Serve's HTTP proxy (installed by `proxy_middlewares`).

    Ray 2.60's proxy sends nothing for a request whose replica died mid-flight (uvicorn then
    answers a bare 500): answer 503 with Retry-After instead, as Serve is restarting the replica.
    The proxy's own plain-text 408 and 503 (queue full) become `Error` bodies, keeping their
    headers; a 503 without Retry-After gets one.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, held, chunks = False, None, []

        async def relay(message: Message) -> None:
            nonlocal started, held
            if message["type"] == "http.response.start":
                started = True
                headers = {bytes(k).lower(): bytes(v) for k, v in message.get("headers", [])}
                if message["status"] in (408, 503) and headers.get(b"content-type", b"").startswith(b"text/"):
                    held = message
                    return
            elif held is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    kept = {bytes(k).decode().lower(): bytes(v).decode() for k, v in held.get("headers", [])
                            if bytes(k).lower() not in (b"content-type", b"content-length")}
                    if held["status"] == 503:
                        kept.setdefault("retry-after", str(RETRY_AFTER_S))
                    text = b"".join(chunks).decode(errors="replace").strip().rstrip(".") or "unavailable"
                    answer = error_response(held["status"], f"{text}; retry later", headers=kept)
                    await answer(scope, receive, send)
                return
            await send(message)

        await self.app(scope, receive, relay)
        if not started:
            await error_response(
                503, "the replica serving this request stopped and Serve is restarting it: retry after "
                     "Retry-After seconds", headers={"Retry-After": str(RETRY_AFTER_S)},
            )(scope, receive, send)


def proxy_middlewares() -> list[Middleware]:
    """Serve's HTTP proxy callback (RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH): see `ProxyErrors`."""
    return [Middleware(ProxyErrors)]


def controller_options() -> dict:
    """`serve.start(controller_options=...)` (or `controller_options:` in a Serve YAML) that
    installs `proxy_middlewares` in the proxies the controller starts."""
    callback = f"{__name__}:{proxy_middlewares.__name__}"
    return {"runtime_env": {"env_vars": {CALLBACK_ENV: callback}}}
