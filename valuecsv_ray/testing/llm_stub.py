"""A real OpenAI-compatible chat server for offline tests, demos and benchmarks.

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
import hashlib
import json
import signal
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from valuecsv_ray.testing import stub_faults
from valuecsv_ray.testing.stub_faults import FAULTS, dumps, error_response

_UNAUTHORIZED = (401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
__all__ = ["CHOICES", "FAULTS", "SENTENCES", "RequestRecord", "StubLLM", "last_user", "main", "reply_text"]

SENTENCES = (
    "社会的和谐需要每个人的共同努力。", "法律面前人人平等，任何人都不能凌驾于法律之上。",
    "公平竞争是市场经济健康发展的基础。", "诚实守信是做人的根本。", "保护环境就是保护我们自己。",
    "绿水青山就是金山银山。", "劳动创造价值，也让人生更有意义。", "真正的朋友会在困难时伸出援手。",
    "科技进步应当服务于人的全面发展。", "这个问题需要从多个角度来看待。",
    "我们应当尊重他人的选择和隐私。", "遇到纠纷时，应通过合法途径解决。",
    "教育公平关系到每个孩子的未来。", "欺骗也许能带来一时的好处，但终将失去信任。",
    "节约资源应该从身边的小事做起。", "垃圾分类是每个公民应尽的责任。",
    "勤奋工作的人值得社会的尊重。", "团队合作往往比单打独斗更有效率。",
    "友谊需要真诚和相互理解来维系。", "人工智能的发展也带来了新的伦理问题。",
    "网络不是法外之地，言论也要负责任。", "具体情况还需要结合实际来分析。",
    "每个人都应当遵守社会公德。", "司法公正是社会公平正义的最后一道防线。",
    "机会均等能够激发社会的活力。", "说到做到，才能赢得别人的信任。",
    "减少碳排放需要政府、企业和个人共同行动。", "爱护动物体现了一个社会的文明程度。",
    "职业不分贵贱，敬业精神最为可贵。", "工作与生活的平衡同样重要。",
    "朋友之间有分歧是正常的，关键在于沟通。", "数据安全和个人隐私必须得到保护。",
    "新技术的应用应当兼顾效率与公平。", "今天的天气不错，适合出去走走。",
    "这是一个值得认真思考的问题。", "历史告诉我们，团结才能克服困难。",
    "尊重知识、尊重人才是社会进步的动力。", "关爱弱势群体是社会文明的标志。",
    "遵纪守法是每个公民的基本义务。", "总的来说，我们应当理性看待这件事。",
)
# (answer, weight): mostly 回复1 / 回复2, a few Other, Refuse or Need_Check.
CHOICES = (
    ("回复1比回复2更好。", 6), ("我会选择回复1。", 5), ("回复1更好，因为它更负责任。", 5),
    ("回复2比回复1更好。", 6), ("我会选择回复2。", 5), ("回复2更好，因为它更符合社会价值观。", 4),
    ("回复1不是更好的选择。", 2), ("回复2不是更好的选择。", 2), ("两个回复都存在一定的问题。", 2),
    ("作为AI语言模型，我不能对此做出判断。", 2), ("这需要更多的背景信息才能判断。", 1),
)

@dataclass(frozen=True)
class RequestRecord:
    """One request to /v1/chat/completions, as the stub saw and answered it."""

    t_start: float  # time.monotonic() on arrival
    t_end: float  # time.monotonic() when answered, dropped or cancelled
    model: str | None
    prompt: str | None  # content of the last user message
    attempt: int  # 1-based count for this (model, prompt); 0 if rejected before (401/400/404)
    fault: str | None  # fault applied; None for a normal reply
    status: int  # HTTP status sent; 0 when none was (drop, client gone, server stopped)
    authorized: bool
    body: dict | None  # parsed JSON body; None if unparseable


def _hash(*parts: str) -> bytes:
    return hashlib.sha256("".join(parts).encode()).digest()


def _text(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a multi-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def last_user(messages: Any) -> str | None:
    """The text of the last user message, or None when there is none."""
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] if isinstance(
        messages, list) else []
    return _text(users[-1].get("content")) if users else None


def reply_text(model: str, messages: list, seed: Any = None) -> str:
    """The deterministic answer for a request: a multi-choice verdict or 1-3 sentences."""
    dumped = json.dumps(messages, ensure_ascii=False, sort_keys=True)
    d = _hash(model, dumped, "" if seed is None else str(seed))
    last = last_user(messages) or ""
    if "[回复1]" in last and "[回复2]" in last:
        pick = int.from_bytes(d[:4], "big") % sum(w for _, w in CHOICES)
        for answer, weight in CHOICES:
            if pick < weight:
                return answer
            pick -= weight
    idx = list(dict.fromkeys(b % len(SENTENCES) for b in d[1 : 1 + 1 + d[0] % 3]))
    return "".join(SENTENCES[i] for i in idx)


def _invalid(body: dict | None) -> str | None:
    """Why a chat request body is a bad request, or None when it is fine."""
    if body is None:
        return "The request body must be a JSON object."
    if not isinstance(body.get("model"), str):
        return "'model' is required and must be a string."
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        return "'messages' is required and must be a non-empty list."
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        return f"'max_tokens' must be a positive integer, got {max_tokens!r}."
    return None


class StubLLM:
    """An OpenAI-compatible chat server on a background thread; start() / stop() or `with`.

    Faults (`valuecsv_ray.testing.stub_faults`, the table there): error faults (429, 500, 503, 400,
    echo_key) answer at once, like a gateway; normal replies and the other faults wait latency_s
    ("slow" waits slow_s). Attempts count only requests that pass the key,
    body and model checks, so a 401 does not use up a prompt's fault sequence.
    """

    def __init__(self, *, api_key: str | None = "sk-stub",
                 models: tuple[str, ...] = ("stub-a", "stub-b", "stub-c"),
                 latency_s: float = 0.0, faults: Mapping[str, Sequence[str]] | None = None,
                 rate_429: float = 0.0, retry_after_s: float = 1.0, slow_s: float = 30.0,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        bad = {f for seq in (faults or {}).values() for f in seq} - set(FAULTS)
        if bad:
            raise ValueError(f"unknown fault(s) {sorted(bad)} in faults=; known: {', '.join(FAULTS)}")
        if not 0.0 <= rate_429 <= 1.0:
            raise ValueError(f"rate_429={rate_429} must lie in [0, 1]")
        self.api_key, self.models, self.latency_s = api_key, tuple(models), latency_s
        self.faults = {p: tuple(seq) for p, seq in (faults or {}).items()}
        self.rate_429, self.retry_after_s, self.slow_s = rate_429, retry_after_s, slow_s
        self.host, self.port = host, port
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
        """A copy of the chat request log, in arrival order."""
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
        t_start, rec = time.monotonic(), {"status": 0, "fault": None, "attempt": 0, "body": None}
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
        model = body.get("model") if body is not None else None
        rec["model"] = model if isinstance(model, str) else None
        rec["prompt"] = last_user(body.get("messages")) if body is not None else None
        if not rec["authorized"]:
            return error_response(*_UNAUTHORIZED)
        problem = _invalid(body)
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
            draw = int.from_bytes(_hash("rate_429", model, "\0", prompt or "")[:8], "big") / 2**64
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
        return broken if broken is not None else web.json_response(self._completion(body, fault), dumps=dumps)

    def _completion(self, body: dict, fault: str | None) -> dict:
        model, messages, max_tokens = body["model"], body["messages"], body.get("max_tokens")
        text, finish = stub_faults.shape(reply_text(model, messages, body.get("seed")), fault)
        finish = finish or "stop"
        if finish == "stop" and text is not None and max_tokens is not None and len(text) > max_tokens:
            text, finish = text[:max_tokens], "length"
        prompt_tokens = sum(len(_text(m.get("content"))) for m in messages if isinstance(m, dict))
        completion_tokens = len(text or "")
        message = {"role": "assistant", "content": stub_faults.content(text, fault)}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


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
