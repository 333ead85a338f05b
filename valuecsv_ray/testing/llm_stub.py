"""A real OpenAI-compatible server (/v1/chat/completions and /v1/completions) for offline tests,
demos and benchmarks.

It listens on 127.0.0.1 (an ephemeral port by default) in a background thread with its own
asyncio loop, answers deterministically in Chinese, and injects faults on request (the table in
`valuecsv_ray.testing.stub_faults`), so a collector can be exercised end to end without a network or an
API bill.

Usage:
    with StubLLM(latency_s=0.2, faults={"问题": ["429", "slow"]}) as llm:
        client = OpenAI(base_url=llm.base_url, api_key="sk-stub")
    python -m valuecsv_ray.testing.llm_stub --port 8000 --latency 0.2 \
        [--api-key K | --no-auth] [--rate-429 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from valuecsv_ray.testing import stub_faults
from valuecsv_ray.testing.irt_stub import IrtStub
from valuecsv_ray.testing.stub_answers import (
    CHOICES,
    SENTENCES,
    chat_completion,
    digest,
    invalid,
    last_user,
    prompt_of,
    reply_text,
    text_completion,
)
from valuecsv_ray.testing.stub_faults import FAULTS, dumps, error_response

_UNAUTHORIZED = (401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
__all__ = ["CHOICES", "FAULTS", "SENTENCES", "RequestRecord", "StubLLM", "last_user", "main", "reply_text"]


@dataclass(frozen=True)
class RequestRecord:
    """One request to /v1/chat/completions or /v1/completions, as the stub saw and answered it."""

    t_start: float  # time.monotonic() on arrival
    t_end: float  # time.monotonic() when answered, dropped or cancelled
    model: str | None
    prompt: str | None  # content of the last user message (chat), or the prompt (completions)
    attempt: int  # 1-based count for this (model, prompt); 0 if rejected before (401/400/404)
    fault: str | None  # fault applied; None for a normal reply
    status: int  # HTTP status sent; 0 when none was (drop, client gone, server stopped)
    authorized: bool
    body: dict | None  # parsed JSON body; None if unparseable
    path: str = "/v1/chat/completions"  # the route asked


class StubLLM:
    """An OpenAI-compatible server on a background thread; start() / stop() or `with`. A text
    completion (/v1/completions) gets the text a chat request gets with its prompt as the only
    message, in `choices[0].text`; faults apply to both routes (`parts` only to chat).

    Faults (`valuecsv_ray.testing.stub_faults`, the table there): error faults (429, 500, 503, 400,
    echo_key) answer at once, like a gateway; normal replies and the other faults wait latency_s
    ("slow" waits slow_s). Attempts count only requests that pass the key,
    body and model checks, so a 401 does not use up a prompt's fault sequence.
    """

    def __init__(self, *, api_key: str | None = "sk-stub",
                 models: tuple[str, ...] = ("stub-a", "stub-b", "stub-c"),
                 latency_s: float = 0.0, faults: Mapping[str, Sequence[str]] | None = None,
                 rate_429: float = 0.0, retry_after_s: float = 1.0, slow_s: float = 30.0,
                 host: str = "127.0.0.1", port: int = 0, irt: IrtStub | None = None) -> None:
        bad = {f for seq in (faults or {}).values() for f in seq} - set(FAULTS)
        if bad:
            raise ValueError(f"unknown fault(s) {sorted(bad)} in faults=; known: {', '.join(FAULTS)}")
        if not 0.0 <= rate_429 <= 1.0:
            raise ValueError(f"rate_429={rate_429} must lie in [0, 1]")
        self.api_key, self.models, self.latency_s = api_key, tuple(models), latency_s
        self.faults = {p: tuple(seq) for p, seq in (faults or {}).items()}
        self.rate_429, self.retry_after_s, self.slow_s = rate_429, retry_after_s, slow_s
        self.host, self.port = host, port
        self.irt = irt  # IRT examinees and an item writer (testing.irt_stub); their models are added
        self.models += tuple(m for m in (irt.names if irt else ()) if m not in self.models)
        self.in_flight = self.max_in_flight = 0
        self._log: list[RequestRecord] = []
        self._attempts: dict[tuple[str, str | None], int] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None  # set in the loop thread by _serve()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def requests(self) -> list[RequestRecord]:
        """A copy of the request log (both completion routes), in arrival order."""
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        """Forget the log, the in-flight high-water mark and the per-prompt attempt counts."""
        with self._lock:
            self._log.clear()
            self._attempts.clear()
            self.max_in_flight = self.in_flight

    def start(self) -> StubLLM:
        """Start serving; returns self once the socket listens."""
        if self._thread is not None:
            raise RuntimeError("StubLLM already started")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="llm-stub", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop serving; requests still in flight are cancelled within a second."""
        loop, thread, self._thread = self._loop, self._thread, None
        if loop is None or thread is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(timeout=30)
            self._runner = None
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
        self._loop = None

    def __enter__(self) -> StubLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def _authorized(self, request: web.Request) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return error_response(*_UNAUTHORIZED)
        data = [{"id": m, "object": "model", "owned_by": "stub"} for m in self.models]
        return web.json_response({"object": "list", "data": data}, dumps=dumps)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        t_start, rec = time.monotonic(), {"status": 0, "fault": None, "attempt": 0, "body": None,
                                          "path": request.path}
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            resp = await self._handle(request, rec)
            rec["status"] = resp.status if resp is not None else 0
            return resp if resp is not None else web.Response()
        finally:
            record = RequestRecord(t_start=t_start, t_end=time.monotonic(), **rec)
            with self._lock:
                self.in_flight -= 1
                self._log.append(record)

    async def _handle(self, request: web.Request, rec: dict) -> web.StreamResponse | None:
        rec["authorized"] = self._authorized(request)
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        rec["body"] = body = body if isinstance(body, dict) else None
        chat = request.path.endswith("/chat/completions")
        model = body.get("model") if body is not None else None
        rec["model"] = model if isinstance(model, str) else None
        rec["prompt"] = prompt_of(body, chat)
        if not rec["authorized"]:
            return error_response(*_UNAUTHORIZED)
        problem = invalid(body, chat)
        if problem is not None:
            return error_response(400, problem, "invalid_request_error", None)
        if model not in self.models:
            msg = f"The model '{model}' does not exist."
            return error_response(404, msg, "invalid_request_error", "model_not_found")
        with self._lock:
            key = (model, rec["prompt"])
            rec["attempt"] = self._attempts[key] = self._attempts.get(key, 0) + 1
        rec["fault"] = self._fault(model, rec["prompt"], rec["attempt"])
        return await self._respond(request, body, rec["fault"])

    def _fault(self, model: str, prompt: str | None, attempt: int) -> str | None:
        """The fault for this attempt: the faults= sequence, else the rate_429 draw on attempt 1."""
        seq = self.faults.get(prompt, ()) if prompt is not None else ()
        if "400" in seq:
            return "400"
        if attempt <= len(seq):
            return seq[attempt - 1]
        if attempt == 1 and self.rate_429 > 0:
            draw = int.from_bytes(digest("rate_429", model, "\0", prompt or "")[:8], "big") / 2**64
            return "429" if draw < self.rate_429 else None
        return None

    async def _respond(self, request: web.Request, body: dict, fault: str | None) -> web.Response | None:
        error = stub_faults.immediate(fault, request, self.retry_after_s)
        if error is not None:
            return error
        await asyncio.sleep(self.slow_s if fault == "slow" else self.latency_s)
        if fault == "drop":
            if request.transport is not None:
                request.transport.close()
            return None
        broken = stub_faults.not_a_completion(fault)
        if broken is not None:
            return broken
        chat = request.path.endswith("/chat/completions")
        answer = (chat_completion if chat else text_completion)(body, fault, self._reply)
        return web.json_response(answer, dumps=dumps)

    def _reply(self, model: str, messages: list, seed: Any) -> str:
        """The answer text: the IRT stub's for its models, else the scripted one."""
        if self.irt is not None and model in self.irt.names:
            return self.irt.reply(model, last_user(messages) or "", seed)
        return reply_text(model, messages, seed)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until Ctrl-C (SIGINT) or SIGTERM, printing the base URL."""
    ap = argparse.ArgumentParser(prog="python -m valuecsv_ray.testing.llm_stub",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default 8000)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds each reply waits (default 0)")
    auth = ap.add_mutually_exclusive_group()
    auth.add_argument("--api-key", default="sk-stub", help="Bearer key clients send (default sk-stub)")
    auth.add_argument("--no-auth", action="store_true", help="accept requests without a key")
    ap.add_argument("--rate-429", type=float, default=0.0, help="share of prompts 429'd on first attempt")
    ap.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds on 429 (default 1)")
    args = ap.parse_args(argv)
    stub = StubLLM(api_key=None if args.no_auth else args.api_key, latency_s=args.latency,
                   rate_429=args.rate_429, retry_after_s=args.retry_after, host=args.host, port=args.port)
    # Ctrl-C and SIGTERM stop it, even when started from a shell that ignores SIGINT (a background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with stub:
        key = "no key needed" if stub.api_key is None else f"api key {stub.api_key}"
        print(f"stub LLM serving at {stub.base_url} ({key}; models {', '.join(stub.models)}); Ctrl-C stops",
              flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
