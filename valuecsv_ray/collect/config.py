"""The settings of response collection, declared once: each endpoint, and the collect run.

    endpoints = load_endpoints("endpoints.yaml")     # [Endpoint(name="qwen", ...), ...]
    cfg = load_collect_config(None, {"suites": ["quest100"], "endpoints": "endpoints.yaml", "out": "c1"})

An endpoints file is YAML with a list `endpoints:`; each entry names any OpenAI-compatible server
(vLLM, OpenAI, DeepSeek, Qwen ...) by its `base_url` (ending in /v1), and the request shape it
speaks by its `provider` (`collect.providers`: openai-chat, the default, or openai-completions).
API keys are never in the file: `api_key_env` names the environment variable that holds the key.
Every problem in the file is reported at once, naming the entry and the key.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from valuecsv_ray.collect.providers.base import DEFAULT_PROVIDER, get_provider
from valuecsv_ray.settings import ConfigError, build, is_int, is_number, load_settings, read_yaml, setting
from valuecsv_ray.tables import SUPPORTED

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Endpoint:
    """One LLM behind an HTTP endpoint, asked through its provider (by default OpenAI-compatible chat)."""

    name: str = setting("", "label of this LLM in every output table (unique per file)")
    base_url: str = setting("", "server root ending in /v1, e.g. http://127.0.0.1:8000/v1")
    model: str = setting("", "the `model` sent in each request")
    provider: str = setting(
        DEFAULT_PROVIDER,
        "request shape: openai-chat (/chat/completions) or openai-completions (/completions); "
        "more in valuecsv_ray/collect/providers/",
    )
    api_key_env: str | None = setting(
        None,
        "NAME of the environment variable holding the API key "
        "(never the key itself); none: no Authorization header",
    )
    max_in_flight: int = setting(8, "requests in flight at once to this endpoint", identity=False)
    requests_per_second: float | None = setting(None, "cap on requests started per second", identity=False)
    timeout_s: float = setting(
        60.0, "seconds to wait for one answer before it counts as a timeout", identity=False
    )
    max_attempts: int = setting(
        5, "requests per row at most (retries on timeouts, 408, 409, 429, 5xx)", identity=False
    )
    temperature: float | None = setting(None, "sampling temperature; none: the server's default")
    max_tokens: int | None = setting(None, "answer length cap in tokens; none: the server's default")
    seed: int | None = setting(None, "sampling seed sent to servers that support it")
    system_prompt: str | None = setting(None, "system message put before each prompt")
    samples: int = setting(1, "answers collected per prompt")
    input_price_per_million: float | None = setting(
        None, "price of a million prompt tokens (any currency): the cost in the summary", identity=False
    )
    output_price_per_million: float | None = setting(
        None, "price of a million completion tokens", identity=False
    )

    def problems(self) -> list[str]:
        texts = ("name", "base_url", "model", "provider", "api_key_env", "system_prompt")
        wrong = [k for k in texts if getattr(self, k) is not None and not isinstance(getattr(self, k), str)]
        if wrong:  # the checks below need text
            return [f"{k} must be text, got {getattr(self, k)!r}; quote it in the YAML" for k in wrong]
        out = (
            []
            if _NAME.fullmatch(self.name or "")
            else [f"name must be letters, digits, '.', '_' or '-', got {self.name!r}"]
        )
        if not re.match(r"https?://", self.base_url or ""):
            out.append(f"base_url must start with http:// or https://, got {self.base_url!r}")
        out += [] if self.model else ["model is required (the model name the server expects)"]
        if self.api_key_env is not None and not _ENV.fullmatch(self.api_key_env):
            out.append(
                f"api_key_env must be an environment variable NAME (e.g. OPENAI_API_KEY), got "
                f"{self.api_key_env!r}; never put the key itself in the file"
            )
        out += [
            f"{k} must be a positive integer, got {getattr(self, k)!r}"
            for k in ("max_in_flight", "max_attempts", "samples")
            if not is_int(getattr(self, k), 1)
        ]
        out += [
            f"{k} must be a positive number, got {getattr(self, k)!r}"
            for k in ("timeout_s",)
            if not (is_number(self.timeout_s, 0) and self.timeout_s > 0)
        ]
        if self.requests_per_second is not None and not (
            is_number(self.requests_per_second, 0) and self.requests_per_second > 0
        ):
            out.append(f"requests_per_second must be a positive number, got {self.requests_per_second!r}")
        if self.max_tokens is not None and not is_int(self.max_tokens, 1):
            out.append(f"max_tokens must be a positive integer, got {self.max_tokens!r}")
        if self.temperature is not None and not is_number(self.temperature, 0):
            out.append(f"temperature must be a number >= 0, got {self.temperature!r}")
        if self.seed is not None and not is_int(self.seed, 0):
            out.append(f"seed must be an integer >= 0, got {self.seed!r}")
        out += [
            f"{k} must be a number >= 0, got {getattr(self, k)!r}"
            for k in ("input_price_per_million", "output_price_per_million")
            if getattr(self, k) is not None and not is_number(getattr(self, k), 0)
        ]
        return out + self._provider_problems()

    def _provider_problems(self) -> list[str]:
        try:
            return get_provider(self.provider).problems(self)
        except ConfigError as e:  # unknown provider X; available: ...
            return [f"provider: {e}"]

    def priced(self) -> bool:
        return self.input_price_per_million is not None and self.output_price_per_million is not None

    def params(self) -> dict:
        """What decides an answer besides the prompt: recorded with every row and in its id. The
        provider is there unless it is the default, so the ids of rows asked before providers
        existed still hold (a resumed run does not ask them again)."""
        params = {k: getattr(self, k) for k in ("temperature", "max_tokens", "seed", "system_prompt")}
        return params if self.provider == DEFAULT_PROVIDER else {**params, "provider": self.provider}

    def params_json(self) -> str:
        return json.dumps(self.params(), ensure_ascii=False, sort_keys=True)

    def api_key(self) -> str | None:
        """The key from the environment; EndpointConfigError naming the variable when it is unset."""
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ConfigError(
                f"endpoint {self.name!r}: environment variable {self.api_key_env} is not set; "
                f"export {self.api_key_env}=<your key> before collecting"
            )
        return key


def load_endpoints(path: str | Path) -> list[Endpoint]:
    """The endpoints of a YAML file; ConfigError listing every problem (entry, key, fix)."""
    raw = read_yaml(path).get("endpoints")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            f"{path}: expected a non-empty list under `endpoints:` "
            "(each with name, base_url, model; see configs/collect/endpoints-stub.yaml)"
        )
    endpoints, errors = [], []
    for i, entry in enumerate(raw):
        where = f"{path} endpoints[{i}]" + (f" ({entry.get('name')})" if isinstance(entry, dict) else "")
        if not isinstance(entry, dict):
            errors.append(f"{where}: expected a mapping of endpoint settings")
            continue
        if any(k in entry for k in ("api_key", "key", "token")):
            errors.append(
                f"{where}: API keys must not be in the file; set api_key_env to the NAME of "
                "an environment variable that holds the key"
            )
            continue
        try:
            endpoints.append(build(Endpoint, "endpoint", entry, where=f" in {where}"))
        except ConfigError as e:
            errors += [f"{where}: {line.strip()}" for line in str(e).splitlines()[1:]]
    names = [e.name for e in endpoints]
    errors += [
        f"{path}: endpoint name {n!r} is used twice; names label the LLMs in every table"
        for n in sorted({n for n in names if names.count(n) > 1})
    ]
    if errors:
        raise ConfigError("invalid endpoints file:\n  " + "\n  ".join(errors))
    return endpoints


@dataclass(frozen=True)
class CollectConfig:
    """A collect run (`valuecsv-ray collect`, jobs/collect.py)."""

    suites: list = setting(
        [],
        "prompt suites: quest100, cvalues-responsibility, NAME=PATH, or a table file "
        f"({SUPPORTED}) with an id and a prompt column",
        cli=False,
    )
    endpoints: str = setting("", "YAML file listing the LLM endpoints")
    out: str = setting(
        "",
        "output folder, a path or an s3://, gs:// URI: responses/ (Parquet), collect.json, summary.json; "
        "re-running resumes",
        identity=False,
    )
    data_dir: str = setting("data", "folder holding the built-in suites' files", identity=False)
    actors: int = setting(
        1, "request actors (each keeps its share of every endpoint's cap in flight)", identity=False
    )
    batch_size: int | None = setting(
        None, "rows per actor call; default twice the largest cap", identity=False
    )
    limit: int | None = setting(None, "ask only the first N prompts of each suite (a trial run)")
    redo_failed: bool = setting(
        False,
        "ask again the rows whose status is not ok (their old rows move to superseded/); ok rows stay",
        identity=False,
    )
    max_total_tokens: int | None = setting(
        None,
        "budget of this run in tokens (prompt + completion): no request starts once its answers used "
        "this many; re-running resumes",
        identity=False,
    )
    max_cost: float | None = setting(
        None,
        "budget of this run in money (every endpoint needs its prices per million tokens): no request "
        "starts once its answers cost this much; re-running resumes",
        identity=False,
    )
    flush_s: float = setting(
        2.0, "seconds at most an answer waits before it is written (what a kill can lose)", identity=False
    )

    def problems(self) -> list[str]:
        out = (
            []
            if isinstance(self.suites, list) and self.suites
            else ["suites: give at least one prompt suite (--suite)"]
        )
        out += [f"{k} is required" for k in ("endpoints", "out") if not getattr(self, k)]
        out += [] if is_int(self.actors, 1) else [f"actors must be a positive integer, got {self.actors!r}"]
        for k in ("batch_size", "limit", "max_total_tokens"):
            if getattr(self, k) is not None and not is_int(getattr(self, k), 1):
                out.append(f"{k} must be a positive integer, got {getattr(self, k)!r}")
        for k in ("max_cost", "flush_s"):
            value = getattr(self, k)
            if value is not None and not (is_number(value, 0) and value > 0):
                out.append(f"{k} must be a positive number, got {value!r}")
        if not isinstance(self.redo_failed, bool):
            out.append(f"redo_failed must be true or false, got {self.redo_failed!r}")
        return out

    def unpriced(self, endpoints: list[Endpoint]) -> list[str]:
        """Why max_cost cannot be kept with these endpoints (empty when it can)."""
        if self.max_cost is None:
            return []
        return [
            f"max_cost needs input_price_per_million and output_price_per_million on endpoint "
            f"{e.name!r}; add them to {self.endpoints}, or budget in tokens with max_total_tokens"
            for e in endpoints
            if not e.priced()
        ]

    def to_dict(self) -> dict:
        return asdict(self)


def load_collect_config(path: str | Path | None = None, overrides: dict | None = None) -> CollectConfig:
    return load_settings(CollectConfig, "collect", path, overrides)
