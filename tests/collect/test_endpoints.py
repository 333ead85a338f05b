"""The endpoints file: valid entries load, every problem is reported at once, keys stay out of it.

Usage: python -m pytest tests/collect/test_endpoints.py -q
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from valuecsv_ray.collect.config import Endpoint, load_collect_config, load_endpoints
from valuecsv_ray.settings import ConfigError

QWEN = {"name": "qwen-7b", "base_url": "http://127.0.0.1:8000/v1", "model": "Qwen/Qwen2.5-7B-Instruct",
        "api_key_env": "VLLM_KEY", "max_in_flight": 32, "requests_per_second": 5, "timeout_s": 90,
        "max_attempts": 4, "temperature": 0.7, "max_tokens": 512, "seed": 1,
        "system_prompt": "你是一个助手。", "samples": 3}
GPT = {"name": "gpt-4o", "base_url": "https://api.openai.com/v1", "model": "gpt-4o"}


def write(tmp_path: Path, entries: list) -> Path:
    path = tmp_path / "endpoints.yaml"
    path.write_text(yaml.safe_dump({"endpoints": entries}, allow_unicode=True), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    """The lines of the ConfigError load_endpoints raises for `path`."""
    with pytest.raises(ConfigError) as e:
        load_endpoints(path)
    first, *lines = str(e.value).splitlines()
    assert first == "invalid endpoints file:"
    return [line.strip() for line in lines]


def test_valid_file_loads_with_defaults_for_what_is_left_out(tmp_path):
    qwen, gpt = load_endpoints(write(tmp_path, [QWEN, GPT]))
    assert qwen == Endpoint(**QWEN)
    assert gpt == Endpoint(name="gpt-4o", base_url="https://api.openai.com/v1", model="gpt-4o")
    defaults = (gpt.api_key_env, gpt.max_in_flight, gpt.timeout_s, gpt.max_attempts, gpt.samples)
    assert defaults == (None, 8, 60.0, 5, 1)
    assert gpt.api_key() is None  # no api_key_env: no key, no Authorization header


def test_every_problem_in_a_bad_file_is_reported_at_once(tmp_path):
    bad_url = {**GPT, "name": "one", "base_url": "api.openai.com/v1", "max_in_flight": 0}
    typo = {**GPT, "name": "two", "temprature": 0.5}
    path = write(tmp_path, [QWEN, bad_url, typo])
    lines = problems(path)
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{path} endpoints[1] (one): base_url must start with http://")
    assert lines[1].startswith(f"{path} endpoints[1] (one): max_in_flight must be a positive integer, got 0")
    assert lines[2].startswith(f"{path} endpoints[2] (two): unknown setting 'temprature'")
    assert "did you mean 'temperature'?" in lines[2]


def test_every_invalid_value_names_its_key(tmp_path):
    entry = {"name": "has space", "base_url": "ftp://x", "model": "", "api_key_env": "sk-abc123",
             "max_attempts": 0, "samples": 1.5, "timeout_s": -1, "requests_per_second": 0, "max_tokens": 0,
             "temperature": -0.1, "seed": -1, "max_in_flight": True, "input_price_per_million": -1,
             "output_price_per_million": "cheap"}
    lines = problems(write(tmp_path, [entry]))
    keys = ["name", "base_url", "model", "api_key_env", "max_in_flight", "max_attempts", "samples",
            "timeout_s", "requests_per_second", "max_tokens", "temperature", "seed",
            "input_price_per_million", "output_price_per_million"]
    assert len(lines) == len(keys), lines
    for key in keys:
        assert any(f"endpoints[0] (has space): {key} " in line for line in lines), key
    assert any("never put the key itself in the file" in line for line in lines)


@pytest.mark.parametrize("key", ["api_key", "key", "token"])
def test_a_key_in_the_file_is_refused_without_echoing_it(tmp_path, key):
    path = write(tmp_path, [GPT, {**QWEN, key: "sk-secret-123"}])
    lines = problems(path)
    assert lines == [f"{path} endpoints[1] (qwen-7b): API keys must not be in the file; set api_key_env to "
                     "the NAME of an environment variable that holds the key"]
    assert not any("sk-secret-123" in line for line in lines)


def test_collect_settings_of_budgets_and_writes_name_their_key():
    run = {"suites": ["quest100"], "endpoints": "e.yaml", "out": "o"}
    bad = {"max_total_tokens": 0, "max_cost": -1, "flush_s": 0, "redo_failed": "yes"}
    with pytest.raises(ConfigError) as e:
        load_collect_config(None, {**run, **bad})
    lines = str(e.value).splitlines()[1:]
    assert [line.split()[0] for line in lines] == list(bad)
    cfg = load_collect_config(None, {**run, "max_cost": 2.5})
    assert (cfg.max_cost, cfg.max_total_tokens, cfg.flush_s, cfg.redo_failed) == (2.5, None, 2.0, False)
    priced = Endpoint(**QWEN, input_price_per_million=0.5, output_price_per_million=1.5)
    assert cfg.unpriced([priced]) == [] and "'gpt-4o'" in cfg.unpriced([priced, Endpoint(**GPT)])[0]
    assert priced.params_json() == Endpoint(**QWEN).params_json()  # a price changes no answer


def test_a_duplicated_name_is_refused(tmp_path):
    path = write(tmp_path, [GPT, QWEN, {**GPT, "base_url": "http://other/v1"}])
    assert problems(path) == [
        f"{path}: endpoint name 'gpt-4o' is used twice; names label the LLMs in every table"]


@pytest.mark.parametrize("text", ["endpoints: []\n", "endpoints:\n  name: x\n", "other: 1\n"])
def test_a_file_without_a_list_of_endpoints_is_refused(tmp_path, text):
    path = tmp_path / "endpoints.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="expected a non-empty list under `endpoints:`"):
        load_endpoints(path)


def test_an_entry_that_is_not_a_mapping_is_reported_with_the_others(tmp_path):
    path = write(tmp_path, ["gpt-4o", {**GPT, "model": ""}])
    lines = problems(path)
    assert lines[0] == f"{path} endpoints[0]: expected a mapping of endpoint settings"
    assert lines[1].startswith(f"{path} endpoints[1] (gpt-4o): model is required")


def test_a_number_where_text_belongs_is_a_config_error(tmp_path):
    path = write(tmp_path, [{**GPT, "name": 2024}])
    assert any("name" in line for line in problems(path))


def test_api_key_reads_the_variable_and_names_it_when_unset(monkeypatch):
    endpoint = Endpoint(**QWEN)
    monkeypatch.setenv("VLLM_KEY", "sk-from-env")
    assert endpoint.api_key() == "sk-from-env"
    for unset in (monkeypatch.delenv, lambda name: monkeypatch.setenv(name, "")):
        unset("VLLM_KEY")
        with pytest.raises(ConfigError) as e:
            endpoint.api_key()
        assert "qwen-7b" in str(e.value) and "VLLM_KEY is not set" in str(e.value)
        assert "export VLLM_KEY=" in str(e.value)


def test_params_hold_what_decides_an_answer_and_are_stable():
    endpoint = Endpoint(**QWEN)
    assert endpoint.params() == {"temperature": 0.7, "max_tokens": 512, "seed": 1,
                                 "system_prompt": "你是一个助手。"}
    text = endpoint.params_json()
    assert json.loads(text) == endpoint.params() and "你是一个助手。" in text  # readable, not \u-escaped
    assert text == Endpoint(**dict(reversed(QWEN.items()))).params_json()
    # runtime knobs change no answer, so they leave params alone; sampling settings do not
    knobs = replace(endpoint, max_in_flight=1, requests_per_second=None, timeout_s=5, max_attempts=1)
    assert knobs.params_json() == text
    assert replace(endpoint, temperature=0.0).params_json() != text
    assert replace(endpoint, seed=None).params_json() != text
    assert Endpoint(**GPT).params_json() == (
        '{"max_tokens": null, "seed": null, "system_prompt": null, "temperature": null}')


def test_provider_defaults_to_openai_chat_and_is_checked_with_the_other_problems(tmp_path):
    assert Endpoint(**GPT).provider == "openai-chat"
    base = {**GPT, "name": "base", "provider": "openai-completions"}
    assert load_endpoints(write(tmp_path, [base]))[0].provider == "openai-completions"
    typo = {**GPT, "name": "typo", "provider": "openai-chatt"}
    chatty = {**base, "name": "chatty", "system_prompt": "你是助手。"}
    path = write(tmp_path, [typo, chatty, {**GPT, "name": "bad", "max_attempts": 0}])
    assert problems(path) == [
        f"{path} endpoints[0] (typo): provider: unknown provider 'openai-chatt'; "
        "available: openai-chat, openai-completions",
        f"{path} endpoints[1] (chatty): system_prompt: openai-completions sends the prompt alone (a "
        "completion has no system message); remove system_prompt, or use provider openai-chat",
        f"{path} endpoints[2] (bad): max_attempts must be a positive integer, got 0",
    ]


def test_a_provider_other_than_the_default_is_in_params_and_so_in_row_ids():
    """Chat and completions answer differently, so they are different rows; the default is left
    out of params, so rows asked before providers existed keep their ids."""
    chat = Endpoint(**GPT)
    base = replace(chat, provider="openai-completions")
    assert "provider" not in chat.params()
    assert base.params() == {**chat.params(), "provider": "openai-completions"}


def test_the_shipped_endpoints_file_loads():
    shipped = Path(__file__).resolve().parents[2] / "configs" / "collect" / "endpoints-stub.yaml"
    endpoints = load_endpoints(shipped)
    assert [e.name for e in endpoints] == ["stub-a", "stub-b", "stub-c"]
    assert all(e.api_key_env == "STUB_API_KEY" for e in endpoints) and endpoints[2].samples == 2

