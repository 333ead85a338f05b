"""What the stub LLM server (`valuecsv_ray.testing.llm_stub`) answers: deterministic Chinese text
for a prompt, in the shape of a chat completion or a text completion.

    text = reply_text("stub-a", [{"role": "user", "content": "你好"}])
    body = chat_completion({"model": "stub-a", "messages": [...]}, fault=None)

A multi-choice question ("[回复1] ... [回复2] ...") gets a verdict drawn from CHOICES, anything else
1-3 sentences of SENTENCES, chosen by a hash of the model, the messages and the seed. A text
completion gets the text a chat request with its prompt as the only message gets.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from valuecsv_ray.testing import stub_faults

Reply = Callable[[str, list, Any], str]  # (model, messages, seed) -> the answer's text

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


def digest(*parts: str) -> bytes:
    """sha256 of the parts joined: the stub's deterministic choices."""
    return hashlib.sha256("".join(parts).encode()).digest()


def content_text(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a multi-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def prompt_of(body: dict | None, chat: bool) -> str | None:
    """The prompt of a request: the last user message's text (chat), or `prompt` (completions)."""
    if body is None:
        return None
    if chat:
        return last_user(body.get("messages"))
    return body["prompt"] if isinstance(body.get("prompt"), str) else None


def last_user(messages: Any) -> str | None:
    """The text of the last user message, or None when there is none."""
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"] if isinstance(
        messages, list) else []
    return content_text(users[-1].get("content")) if users else None


def reply_text(model: str, messages: list, seed: Any = None) -> str:
    """The deterministic answer for a request: a multi-choice verdict or 1-3 sentences."""
    dumped = json.dumps(messages, ensure_ascii=False, sort_keys=True)
    d = digest(model, dumped, "" if seed is None else str(seed))
    last = last_user(messages) or ""
    if "[回复1]" in last and "[回复2]" in last:
        pick = int.from_bytes(d[:4], "big") % sum(w for _, w in CHOICES)
        for answer, weight in CHOICES:
            if pick < weight:
                return answer
            pick -= weight
    idx = list(dict.fromkeys(b % len(SENTENCES) for b in d[1 : 1 + 1 + d[0] % 3]))
    return "".join(SENTENCES[i] for i in idx)


def invalid(body: dict | None, chat: bool) -> str | None:
    """Why a chat (or text completion) request body is a bad request, or None when it is fine."""
    if body is None:
        return "The request body must be a JSON object."
    if not isinstance(body.get("model"), str):
        return "'model' is required and must be a string."
    if chat and (not isinstance(body.get("messages"), list) or not body["messages"]):
        return "'messages' is required and must be a non-empty list."
    if not chat and not isinstance(body.get("prompt"), str):
        return "'prompt' is required and must be a string."
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
        return f"'max_tokens' must be a positive integer, got {max_tokens!r}."
    return None


def text_completion(body: dict, fault: str | None, reply: Reply = reply_text) -> dict:
    """A /v1/completions answer: the chat answer to the prompt alone, as `choices[0].text`."""
    chat = chat_completion({**body, "messages": [{"role": "user", "content": body["prompt"]}]}, None, reply)
    text, finish = stub_faults.shape(chat["choices"][0]["message"]["content"], fault)
    finish = finish or chat["choices"][0]["finish_reason"]
    completion_tokens = len(text or "")
    usage = {**chat["usage"], "completion_tokens": completion_tokens,
             "total_tokens": chat["usage"]["prompt_tokens"] + completion_tokens}
    return {
        "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": chat["created"],
        "model": body["model"],
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }


def chat_completion(body: dict, fault: str | None, reply: Reply = reply_text) -> dict:
    """A /v1/chat/completions answer with the text `reply` gives, shaped by the fault (`length`,
    `null`, `parts`)."""
    model, messages, max_tokens = body["model"], body["messages"], body.get("max_tokens")
    text, finish = stub_faults.shape(reply(model, messages, body.get("seed")), fault)
    finish = finish or "stop"
    if finish == "stop" and text is not None and max_tokens is not None and len(text) > max_tokens:
        text, finish = text[:max_tokens], "length"
    prompt_tokens = sum(len(content_text(m.get("content"))) for m in messages if isinstance(m, dict))
    completion_tokens = len(text or "")
    message = {"role": "assistant", "content": stub_faults.content(text, fault)}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
