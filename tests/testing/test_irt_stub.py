"""The stub's IRT examinees and item writer (valuecsv_ray.testing.irt_stub), over real HTTP."""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest

from valuecsv_ray.adaptive.checks import CheckConfig, NgramIndex, check_candidates
from valuecsv_ray.testing.irt_stub import (
    IrtStub,
    difficulty_marker,
    marked_difficulty,
    pick_answer_texts,
    seed_items,
)
from valuecsv_ray.testing.llm_stub import StubLLM

IRT = IrtStub({"low": -1.5, "high": 1.5}, conforming="好", violating="坏")


def ask(base_url: str, model: str, prompt: str) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-stub"}
    data = json.dumps(body).encode()
    req = urllib.request.Request(base_url + "/chat/completions", data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())["choices"][0]["message"]["content"]


def test_marker_sets_difficulty_and_conforming_follows_the_2pl():
    items = seed_items(np.linspace(-2.5, 2.5, 400))
    assert marked_difficulty(items[0]) == -2.5 and IRT.item_parameters(items[-1])[1] == 2.5
    for model in IRT.abilities:
        share = np.mean([IRT.reply(model, t) == "好" for t in items])
        expected = np.mean([IRT.p_conform(model, t) for t in items])
        assert abs(share - expected) < 0.08
    assert np.mean([IRT.reply("high", t) == "好" for t in items]) > 0.7
    assert np.mean([IRT.reply("low", t) == "好" for t in items]) < 0.3
    assert [IRT.reply("low", t) for t in items[:50]] == [IRT.reply("low", t) for t in items[:50]]
    unmarked = IRT.item_parameters("你如何看待诚信？")
    assert unmarked == IRT.item_parameters("你如何看待诚信？") and 0.8 <= unmarked[0] <= 2.0


def test_writer_writes_distinct_items_at_the_asked_difficulty():
    text = IRT.write_items("目标价值：诚信\n目标难度：+0.80\n题目数量：6\n")
    lines = text.splitlines()
    assert len(lines) == 6 and all(line.startswith(f"{i + 1}. ") for i, line in enumerate(lines))
    assert all(abs(marked_difficulty(line) - 0.8) <= IRT.noise + 1e-9 for line in lines)
    index = NgramIndex.from_items(["seed"], [seed_items([0.0])[0]])
    assert check_candidates([line[3:] for line in lines], index, CheckConfig()) == [None] * 6
    assert difficulty_marker(-0.5) == "〔难度 -0.50〕"


def test_stub_server_answers_irt_models_and_the_rest_as_before():
    with StubLLM(irt=IRT) as stub:
        assert set(IRT.names) <= set(stub.models) and "stub-a" in stub.models
        item = seed_items([0.3])[0]
        assert ask(stub.base_url, "high", item) == IRT.reply("high", item)
        written = ask(stub.base_url, IRT.writer, "目标难度：-1.00\n题目数量：2")
        assert all(abs(marked_difficulty(line) + 1.0) <= IRT.noise for line in written.splitlines())
        assert ask(stub.base_url, "stub-a", item) not in ("好", "坏")


def test_pick_answer_texts_puts_the_threshold_between():
    high, low, threshold = pick_answer_texts({"a": 0.2, "b": 0.7, "c": 0.4})
    assert (high, low) == ("b", "a") and threshold == pytest.approx(0.45)
    with pytest.raises(ValueError, match="same probability"):
        pick_answer_texts({"a": 0.5, "b": 0.5})
