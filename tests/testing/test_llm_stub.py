"""The stub LLM server, spoken to over real HTTP (urllib), as a collector would.

Usage: python -m pytest tests/testing/test_llm_stub.py -q
"""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from valuecsv_ray.testing.llm_stub import CHOICES, StubLLM, reply_text

KEY = "sk-stub"
MC = "哪个回复更好？\n[回复1] 应该遵守法律。\n[回复2] 法律无所谓。{}"


def call(url: str, body: Any = None, *, key: str | None = KEY, path: str = "/chat/completions",
         timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """POST body (GET when None) and return (status, headers, raw body), errors included."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    if key is not None:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def chat(url: str, prompt: str, model: str = "stub-a", **extra: Any) -> tuple[int, dict[str, str], Any]:
    messages = [{"role": "user", "content": prompt}]
    status, headers, raw = call(url, {"model": model, "messages": messages, **extra})
    return status, headers, json.loads(raw)


def content(url: str, prompt: str, model: str = "stub-a", **extra: Any) -> str | None:
    status, _, body = chat(url, prompt, model, **extra)
    assert status == 200, body
    return body["choices"][0]["message"]["content"]


@pytest.fixture
def stub():
    with StubLLM() as s:
        yield s


def test_auth_is_required_and_checked(stub):
    body = {"model": "stub-a", "messages": [{"role": "user", "content": "你好"}]}
    for key in (None, "sk-wrong"):
        status, _, raw = call(stub.base_url, body, key=key)
        assert status == 401
        assert json.loads(raw)["error"]["code"] == "invalid_api_key"
        assert call(stub.base_url, key=key, path="/models")[0] == 401
    assert call(stub.base_url, body)[0] == 200
    assert [(r.authorized, r.status, r.attempt) for r in stub.requests()] == [
        (False, 401, 0), (False, 401, 0), (True, 200, 1)]
    with StubLLM(api_key=None) as open_stub:
        assert call(open_stub.base_url, body, key=None)[0] == 200


def test_reply_has_openai_shape(stub):
    messages = [{"role": "system", "content": "你是助手"}, {"role": "user", "content": "谈谈诚信"}]
    status, headers, raw = call(stub.base_url, {"model": "stub-b", "messages": messages})
    body = json.loads(raw)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert isinstance(body["created"], int) and body["model"] == "stub-b"
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert body["usage"] == {"prompt_tokens": 8, "completion_tokens": len(choice["message"]["content"]),
                             "total_tokens": 8 + len(choice["message"]["content"])}


def test_models_lists_the_configured_models(stub):
    status, _, raw = call(stub.base_url, path="/models")
    assert status == 200
    assert json.loads(raw) == {"object": "list", "data": [
        {"id": m, "object": "model", "owned_by": "stub"} for m in ("stub-a", "stub-b", "stub-c")]}


def test_replies_are_deterministic_and_differ_by_model_and_seed(stub):
    prompts = [f"问题{i}：你怎么看待公平？" for i in range(20)]
    first = [content(stub.base_url, p) for p in prompts]
    assert first == [content(stub.base_url, p) for p in prompts]
    with StubLLM() as other:  # stable across servers, not only within one
        assert first == [content(other.base_url, p) for p in prompts]
    assert sum(a != content(stub.base_url, p, "stub-b") for a, p in zip(first, prompts, strict=True)) >= 15
    assert sum(a != content(stub.base_url, p, seed=7) for a, p in zip(first, prompts, strict=True)) >= 15
    assert len(set(first)) >= 15


@pytest.mark.parametrize(("body", "status"), [
    (b"{not json", 400), ({"messages": [{"role": "user", "content": "x"}]}, 400),
    ({"model": "stub-a"}, 400), ({"model": "stub-a", "messages": []}, 400),
    ({"model": "stub-a", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}, 400),
    ({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}, 404)])
def test_bad_requests_get_error_bodies(stub, body, status):
    got, _, raw = call(stub.base_url, body)
    assert got == status
    assert json.loads(raw)["error"]["message"]
    (rec,) = stub.requests()
    assert rec.status == status and rec.attempt == 0 and rec.fault is None
    assert rec.body == (None if isinstance(body, bytes) else body)
    if status == 404:
        assert json.loads(raw)["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(("retry_after", "header"), [(2.0, "2"), (0.5, "0.5")])
def test_429_carries_retry_after_then_succeeds(retry_after, header):
    with StubLLM(faults={"p": ["429", "429"]}, retry_after_s=retry_after) as s:
        for _ in range(2):
            status, headers, body = chat(s.base_url, "p")
            assert (status, headers["Retry-After"]) == (429, header)
            assert body["error"]["code"] == "rate_limit_exceeded"
        assert chat(s.base_url, "p")[0] == 200
        assert chat(s.base_url, "p", "stub-b")[0] == 429  # attempts count per (model, prompt)
        assert chat(s.base_url, "other")[0] == 200
        assert [(r.model, r.prompt, r.attempt, r.fault, r.status) for r in s.requests()] == [
            ("stub-a", "p", 1, "429", 429), ("stub-a", "p", 2, "429", 429), ("stub-a", "p", 3, None, 200),
            ("stub-b", "p", 1, "429", 429), ("stub-a", "other", 1, None, 200)]


@pytest.mark.parametrize("fault", ["500", "503"])
def test_server_errors_then_recovery(fault):
    with StubLLM(faults={"p": [fault]}) as s:
        status, _, body = chat(s.base_url, "p")
        assert status == int(fault) and body["error"]["type"] == "server_error"
        assert chat(s.base_url, "p")[0] == 200


def test_400_is_permanent():
    with StubLLM(faults={"p": ["503", "400"]}) as s:
        for _ in range(4):
            status, _, body = chat(s.base_url, "p")
            assert status == 400 and body["error"]["type"] == "invalid_request_error"
        assert [r.attempt for r in s.requests()] == [1, 2, 3, 4]


def test_slow_outlasts_a_client_timeout():
    with StubLLM(faults={"p": ["slow"]}, slow_s=5.0) as s:
        body = {"model": "stub-a", "messages": [{"role": "user", "content": "p"}]}
        with pytest.raises(TimeoutError):
            call(s.base_url, body, timeout=0.3)
        assert call(s.base_url, body)[0] == 200
        slow, ok = s.requests()
        assert (slow.fault, slow.status, ok.attempt) == ("slow", 0, 2)  # cancelled when the client left
        assert ok.fault is None  # the second attempt is answered at the normal latency, not slow_s


def test_malformed_null_and_length():
    with StubLLM(faults={"m": ["malformed"], "n": ["null"], "l": ["length"]}) as s, StubLLM() as clean:
        malformed = {"model": "stub-a", "messages": [{"role": "user", "content": "m"}]}
        status, headers, raw = call(s.base_url, malformed)
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        with pytest.raises(json.JSONDecodeError):
            json.loads(raw)
        status, _, body = chat(s.base_url, "n")
        assert status == 200 and body["choices"][0]["message"]["content"] is None
        assert body["usage"]["completion_tokens"] == 0
        full = content(clean.base_url, "l")
        status, _, body = chat(s.base_url, "l")
        assert body["choices"][0]["message"]["content"] == full[: len(full) // 2]
        assert body["choices"][0]["finish_reason"] == "length"
        assert [r.fault for r in s.requests()] == ["malformed", "null", "length"]


def test_parts_html_and_echo_key():
    faults = {"p": ["parts"], "h": ["html"], "k": ["echo_key", "echo_key"]}
    with StubLLM(faults=faults) as s, StubLLM() as clean:
        status, _, body = chat(s.base_url, "p")
        parts = body["choices"][0]["message"]["content"]
        assert status == 200 and [p["type"] for p in parts] == ["text", "text"]
        assert "".join(p["text"] for p in parts) == content(clean.base_url, "p")
        assert body["usage"]["completion_tokens"] == len(content(clean.base_url, "p"))
        html = {"model": "stub-a", "messages": [{"role": "user", "content": "h"}]}
        status, headers, raw = call(s.base_url, html)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert b"502 Bad Gateway" in raw
        for _ in range(2):  # a retryable server error that repeats the key it was sent
            status, _, body = chat(s.base_url, "k")
            assert status == 500 and f"Bearer {KEY}" in body["error"]["message"]
        assert chat(s.base_url, "k")[0] == 200
        assert [r.fault for r in s.requests()] == ["parts", "html", "echo_key", "echo_key", None]


def test_drop_closes_without_a_response():
    with StubLLM(faults={"d": ["drop"]}) as s:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
            chat(s.base_url, "d")
        assert chat(s.base_url, "d")[0] == 200
        assert [(r.fault, r.status) for r in s.requests()] == [("drop", 0), (None, 200)]


def test_max_tokens_truncates(stub):
    full = content(stub.base_url, "谈谈环境保护")
    status, _, body = chat(stub.base_url, "谈谈环境保护", max_tokens=5)
    assert body["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": full[:5]},
                                  "finish_reason": "length"}
    assert body["usage"]["completion_tokens"] == 5
    status, _, body = chat(stub.base_url, "谈谈环境保护", max_tokens=len(full))
    assert (body["choices"][0]["message"]["content"], body["choices"][0]["finish_reason"]) == (full, "stop")


def test_multi_choice_questions_get_a_verdict(stub):
    answers = [content(stub.base_url, MC.format(i), m) for i in range(30) for m in ("stub-a", "stub-b")]
    assert set(answers) <= {a for a, _ in CHOICES}
    one = sum(a.startswith(("回复1比", "我会选择回复1", "回复1更好", "回复2不是")) for a in answers)
    two = sum(a.startswith(("回复2比", "我会选择回复2", "回复2更好", "回复1不是")) for a in answers)
    assert one >= 10 and two >= 10 and one + two >= 0.7 * len(answers)
    assert content(stub.base_url, "[回复1] 只有一个") not in {a for a, _ in CHOICES}


def test_concurrent_requests_overlap():
    n, latency = 64, 2.0
    start = threading.Barrier(n)  # every client sends at once, however busy the machine is

    def send(i: int) -> int:
        start.wait()
        return chat(s.base_url, f"并发{i}")[0]

    with StubLLM(latency_s=latency) as s:
        with ThreadPoolExecutor(n) as pool:
            statuses = list(pool.map(send, range(n)))
        assert statuses == [200] * n
        assert s.max_in_flight == n and s.in_flight == 0  # all 64 held at once: none waited for another
        assert all(r.t_end - r.t_start >= latency - 0.01 for r in s.requests())


def test_rate_429_hits_a_stable_share_on_first_attempt_only():
    prompts = [f"基准{i}" for i in range(200)]
    with StubLLM(rate_429=0.25, retry_after_s=3) as s:
        first = [chat(s.base_url, p)[0] for p in prompts]
        assert 30 <= first.count(429) <= 70 and set(first) == {200, 429}
        assert {chat(s.base_url, p)[0] for p in prompts} == {200}
        assert all(r.status == 429 for r in s.requests() if r.fault == "429")
    with StubLLM(rate_429=0.25) as again:
        assert [chat(again.base_url, p)[0] for p in prompts] == first


def test_request_log_and_reset():
    with StubLLM(faults={"p": ["500"]}, latency_s=0.05) as s:
        chat(s.base_url, "p", temperature=0.5)
        chat(s.base_url, "q")
        a, b = s.requests()
        assert a.t_start <= a.t_end <= b.t_start <= b.t_end
        assert (a.prompt, a.fault, a.status, a.body["temperature"]) == ("p", "500", 500, 0.5)
        assert (b.prompt, b.fault, b.status, b.model) == ("q", None, 200, "stub-a")
        assert s.max_in_flight == 1
        s.reset()
        assert s.requests() == [] and s.max_in_flight == 0
        assert chat(s.base_url, "p")[0] == 500  # attempt counts start over
        assert [r.attempt for r in s.requests()] == [1]


def test_unknown_fault_names_are_refused():
    with pytest.raises(ValueError, match="timeout"):
        StubLLM(faults={"p": ["timeout"]})


def test_module_entry_point_serves_until_interrupted():
    cmd = [sys.executable, "-m", "valuecsv_ray.testing.llm_stub", "--port", "0", "--no-auth"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            line = proc.stdout.readline()
            url = line.split()[4]
            assert url.startswith("http://127.0.0.1:") and url.endswith("/v1"), line
            body = {"model": "stub-c", "messages": [{"role": "user", "content": "hi"}]}
            assert call(url, body, key=None)[0] == 200
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=60) == 0
        finally:
            proc.kill()


def test_text_completions_route_answers_the_prompt_in_choices_text(stub):
    """/v1/completions: `prompt` in, `choices[0].text` out, the same text chat gives that prompt
    as its only message; usage counts characters; the log says which route was asked."""
    status, headers, raw = call(stub.base_url, {"model": "stub-a", "prompt": "谈谈诚信", "seed": 3},
                                path="/completions")
    body = json.loads(raw)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion"
    assert body["model"] == "stub-a"
    (choice,) = body["choices"]
    assert choice["text"] == content(stub.base_url, "谈谈诚信", seed=3) and choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": len(choice["text"]),
                             "total_tokens": 4 + len(choice["text"])}
    first, second = stub.requests()
    assert (first.path, first.prompt, first.status) == ("/v1/completions", "谈谈诚信", 200)
    assert second.path == "/v1/chat/completions"


def test_text_completions_check_the_body_and_take_faults():
    def complete(s: StubLLM, **body: Any) -> tuple[int, dict]:
        status, _, raw = call(s.base_url, {"model": "stub-a", **body}, path="/completions")
        return status, json.loads(raw)

    full = reply_text("stub-a", [{"role": "user", "content": "p"}])
    with StubLLM(faults={"p": ["429", "length"]}) as s:
        for bad in ({}, {"prompt": ["p"]}, {"messages": [{"role": "user", "content": "p"}]}):
            status, body = complete(s, **bad)
            assert status == 400 and "'prompt' is required" in body["error"]["message"], body
        assert complete(s, prompt="p")[0] == 429
        status, body = complete(s, prompt="p")
        assert (status, body["choices"][0]["finish_reason"]) == (200, "length")
        assert body["choices"][0]["text"] == full[: len(full) // 2]
        status, body = complete(s, prompt="p", max_tokens=2)
        assert (body["choices"][0]["text"], body["choices"][0]["finish_reason"]) == (full[:2], "length")
